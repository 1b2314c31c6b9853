"""The examples' compiled outputs, checked by the real parts that consume them:
KFP's PipelineSpec protobuf, the official SageMaker schema, ZenML's run-configuration
models, the Kubernetes OpenAPI schemas and KServe's CRD, and vLLM's own parser."""

from __future__ import annotations

import json
from functools import cache
from pathlib import Path

import pytest
import yaml

from specops.build.compile import compile_repo
from specops.checks import analyze

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = ["churn", "support-assistant"]


@cache
def files(name: str) -> dict[str, bytes]:
    resolved = analyze(ROOT / "examples" / name)
    return compile_repo(resolved, cache_dir=None).files()


def of(suffix: str) -> list[tuple[str, str]]:
    return [(n, p) for n in EXAMPLES for p in files(n) if p.endswith(suffix)]


@pytest.mark.parametrize("name,path", of("/pipeline.yaml"))
def test_kfp_pipelines_parse_into_pipelinespec(name: str, path: str) -> None:
    from google.protobuf import json_format
    from kfp.pipeline_spec import pipeline_spec_pb2

    from specops.backends.kfp import check_references

    doc = yaml.safe_load(files(name)[path])
    json_format.ParseDict(doc, pipeline_spec_pb2.PipelineSpec())  # strict: unknown fields raise
    assert check_references(doc) == []


@pytest.mark.parametrize("name,path", of("/definition.json"))
def test_sagemaker_definitions_validate_against_the_official_schema(name: str, path: str) -> None:
    from specops.backends.sagemaker_schema import validate_definition

    assert validate_definition(json.loads(files(name)[path])) == []


@pytest.mark.parametrize("name,path", of("/run.yaml"))
def test_zenml_run_configs_are_strictly_valid(name: str, path: str) -> None:
    from specops.backends.zenml import validate_run_config

    assert validate_run_config(yaml.safe_load(files(name)[path])) == []


def test_kubernetes_manifests_validate() -> None:
    from specops.backends.kubernetes import validate_manifests

    k8s = {p: b for n in EXAMPLES for p, b in files(n).items()
           if "/serving/" in p and p.endswith(".yaml") and not p.endswith(("vllm.yaml", "inferenceservice.yaml", "values.yaml"))}
    assert validate_manifests(k8s) == []


def test_inferenceservice_validates_against_kserve_crd() -> None:
    from specops.backends.kserve import validate_inferenceservice

    schema = json.loads((ROOT / "tests/fixtures/kserve/inferenceservice-v1beta1.schema.json").read_text())["openAPIV3Schema"]
    docs = [yaml.safe_load(b) for p, b in files("support-assistant").items() if p.endswith("inferenceservice.yaml")]
    assert docs
    for doc in docs:
        assert validate_inferenceservice(doc, schema) == []


def test_vllm_configs_parse_with_vllms_own_parser(tmp_path: Path) -> None:
    from specops.backends import vllm

    python = vllm.default_vllm_python()
    if python is None:
        pytest.skip("no vLLM virtualenv (.venv-vllm): run tools/setup_vllm_venv.sh; the flag-list checks still ran")
    paths = []
    for i, (name, p) in enumerate(of("/vllm.yaml")):
        f = tmp_path / f"{i}.yaml"
        f.write_bytes(files(name)[p])
        paths.append(f)
    assert paths
    results = vllm.live_check_many(paths, python=python)
    assert results and all(not problems for problems in results.values()), results
