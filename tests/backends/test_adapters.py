"""Adapters reach every engine artifact: vLLM's lora-modules, production-stack's loraAdapters with
its LoRA controller, KServe and plain Kubernetes (init containers fetching into the volume the
server reads), SageMaker through LMI's adapters/ folder (trained adapters staged from S3; a Hub
adapter is a capability diagnostic at its line); max-lora-rank is the smallest value vLLM allows
that holds the largest adapter."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import yaml

from specops.build.compile import compile_repo
from specops.checks import analyze

ROOT = Path(__file__).resolve().parents[2]
BASE_REV = "0e9e39f249a16976918f6564b8830bc894c89659"
ADAPTER_REV = "a" * 40


def make_repo(tmp_path: Path, *, platform: str, rank: int = 8, max_lora_rank: int | None = None,
              store: str | None = None) -> Path:
    """support-assistant, staging on `platform`, serving its trained adapter plus a published one."""
    repo = tmp_path / "repo"
    shutil.copytree(ROOT / "examples" / "support-assistant", repo, ignore=shutil.ignore_patterns("build", ".specops"))
    (repo / "models" / "published.yaml").write_text(yaml.safe_dump({
        "apiVersion": "specops.dev/v1alpha1", "kind": "Model", "metadata": {"name": "topic-guard"},
        "spec": {"type": "llm", "llm": {
            "base": {"model": "meta-llama/Llama-3.1-8B-Instruct", "revision": BASE_REV, "path": "models/llama-3.1-8b"},
            "adapter": {"model": "nvidia/llama-3.1-nemoguard-8b-topic-control", "revision": ADAPTER_REV,
                        "rank": rank}}},
    }, sort_keys=False))
    st = repo / "serving" / "support-llm.yaml"
    doc = yaml.safe_load(st.read_text())
    doc["spec"]["adapters"] = ["support-llm", "topic-guard"]
    args = doc["spec"]["engine"]["args"]
    args.pop("max-lora-rank")
    if max_lora_rank is not None:
        args["max-lora-rank"] = max_lora_rank
    doc["spec"]["platform"] = platform
    st.write_text(yaml.safe_dump(doc, sort_keys=False))
    if store is not None:
        proj = repo / "specops.yaml"
        pdoc = yaml.safe_load(proj.read_text())
        pdoc["spec"]["targets"]["gcp-staging"]["artifactStore"] = store
        proj.write_text(yaml.safe_dump(pdoc, sort_keys=False))
    return repo


def compiled(repo: Path, envs: list[str] | None = None):
    resolved = analyze(repo)
    assert not resolved.diagnostics.has_errors, [d.headline() for d in resolved.diagnostics.sorted()]
    build = compile_repo(resolved, envs or ["staging"])
    return build


def files_of(build) -> dict[str, object]:
    assert not build.diagnostics.has_errors, [d.headline() for d in build.diagnostics.sorted()]
    return {p: yaml.safe_load(data) for p, data in build.files().items() if p.endswith(".yaml")}


def test_vllm_config_loads_every_adapter_with_the_smallest_rank_that_holds_them(tmp_path: Path) -> None:
    files = files_of(compiled(make_repo(tmp_path, platform="kubernetes", rank=20)))
    cfg = files["staging/serving/support-llm/vllm.yaml"]
    root = "/root/.cache/huggingface/adapters"
    assert cfg["lora-modules"] == [f"support-llm={root}/support-llm", f"topic-guard={root}/topic-guard"]
    assert cfg["max-lora-rank"] == 32  # ranks 16 and 20: the smallest allowed value holding 20
    assert cfg["enable-lora"] is True


def test_kubernetes_fetches_each_adapter_into_the_model_cache(tmp_path: Path) -> None:
    files = files_of(compiled(make_repo(tmp_path, platform="kubernetes")))
    pod = files["staging/serving/support-llm/deployment.yaml"]["spec"]["template"]["spec"]
    inits = {tuple(c["command"][:2]): c for c in pod["initContainers"]}
    hub = inits[("hf", "download")]
    assert hub["command"] == ["hf", "download", "nvidia/llama-3.1-nemoguard-8b-topic-control", "--revision",
                              ADAPTER_REV, "--local-dir", "/root/.cache/huggingface/adapters/topic-guard"]
    store = inits[("gcloud", "storage")]
    assert store["command"][-2:] == ["gs://acme-ml-staging-artifacts/support/staging/support-llm/adapter",
                                     "/root/.cache/huggingface/adapters/support-llm"]
    for c in pod["initContainers"]:
        assert {"mountPath": "/root/.cache/huggingface", "name": "model-cache"} in c["volumeMounts"]


def test_kserve_passes_adapters_as_args_and_fetches_them(tmp_path: Path) -> None:
    files = files_of(compiled(make_repo(tmp_path, platform="kserve")))
    pred = files["staging/serving/support-llm/inferenceservice.yaml"]["spec"]["predictor"]
    args = pred["model"]["args"]
    i = args.index("--lora-modules")
    assert args[i + 1:i + 3] == ["support-llm=/root/.cache/huggingface/adapters/support-llm",
                                 "topic-guard=/root/.cache/huggingface/adapters/topic-guard"]
    assert "--max-lora-rank=16" in args
    assert len(pred["initContainers"]) == 2
    assert {"emptyDir": {}, "name": "adapters"} in pred["volumes"]


def test_production_stack_lists_adapters_for_its_lora_controller(tmp_path: Path) -> None:
    repo = make_repo(tmp_path, platform="helm")
    st = repo / "serving" / "support-llm.yaml"
    doc = yaml.safe_load(st.read_text())
    doc["spec"]["adapters"] = ["topic-guard"]  # the chart runs one init container per model
    st.write_text(yaml.safe_dump(doc, sort_keys=False))
    values = files_of(compiled(repo))["staging/serving/support-llm/values.yaml"]
    spec = values["servingEngineSpec"]["modelSpec"][0]
    assert spec["enableLoRA"] is True
    assert spec["initContainer"]["command"][:5] == ["hf", "download", "nvidia/llama-3.1-nemoguard-8b-topic-control",
                                                   "--revision", ADAPTER_REV]
    assert values["loraController"]["enableLoraController"] is True
    (entry,) = values["loraAdapters"]
    assert entry["baseModel"] == "support-llm"
    assert entry["adapterSource"] == {"type": "local", "adapterName": "topic-guard",
                                      "adapterPath": "/data/lora-adapters/topic-guard"}
    assert "--lora-modules" not in spec["vllmConfig"].get("extraArgs", [])


def test_rank_above_what_vllm_allows_is_an_error_at_the_adapter(tmp_path: Path) -> None:
    resolved = analyze(make_repo(tmp_path, platform="kubernetes", rank=600))
    errs = [d for d in resolved.diagnostics.sorted() if d.severity == "error"]
    assert errs and errs[0].code == "value" and "rank 600" in errs[0].message
    line = (tmp_path / "repo/serving/support-llm.yaml").read_text().splitlines()[errs[0].pos.line - 1]
    assert line.strip() == "- topic-guard"


def test_too_small_max_lora_rank_is_an_error_at_its_line(tmp_path: Path) -> None:
    resolved = analyze(make_repo(tmp_path, platform="kubernetes", max_lora_rank=8))
    errs = [d for d in resolved.diagnostics.sorted() if d.severity == "error"]
    assert errs and all("max-lora-rank 8 is below" in d.message for d in errs)
    line = (tmp_path / "repo/serving/support-llm.yaml").read_text().splitlines()[errs[0].pos.line - 1]
    assert "max-lora-rank" in line


@pytest.mark.parametrize("platform", ["kubernetes", "kserve"])
def test_an_adapter_no_init_step_can_fetch_is_an_error_at_its_line(tmp_path: Path, platform: str) -> None:
    build = compiled(make_repo(tmp_path, platform=platform, store="file://.specops/artifacts"))
    errs = [d for d in build.diagnostics.sorted() if d.severity == "error"]
    assert len(errs) == 1 and "adapter 'support-llm'" in errs[0].message
    line = (tmp_path / "repo/serving/support-llm.yaml").read_text().splitlines()[errs[0].pos.line - 1]
    assert "support-llm" in line and line.strip().startswith("-")


def test_sagemaker_stages_trained_adapters_for_lmi_and_reports_hub_ones_at_their_line(tmp_path: Path) -> None:
    build = compile_repo(analyze(make_repo(tmp_path, platform="sagemaker", rank=20)), ["prod"])
    files = build.files()
    reqs = json.loads(files["prod/serving/support-llm/endpoint.json"])
    env = reqs["CreateModel"]["PrimaryContainer"]["Environment"]
    # The spec gives max-lora-rank 16 in the example; popped here, so vLLM's rule sizes it: 20 -> 32.
    assert env["OPTION_ENABLE_LORA"] == "true" and env["OPTION_MAX_LORA_RANK"] == "32"
    prefix = reqs["CreateModel"]["PrimaryContainer"]["ModelDataSource"]["S3DataSource"]["S3Uri"]
    plan = json.loads(files["prod/serving/support-llm/adapters.json"])["Copies"]
    assert plan == [{"Adapter": "support-llm", "Source": "s3://acme-ml-prod-artifacts/support/prod/support-llm/adapter/",
                     "Destination": f"{prefix}adapters/support-llm/"}]
    # The Hub adapter LMI cannot fetch is the one warning, at its line.
    warns = [d for d in build.diagnostics.sorted() if "adapter" in d.message]
    assert [(d.severity, d.message.split("'")[1]) for d in warns] == [("warning", "topic-guard")]
    lines = (tmp_path / "repo/serving/support-llm.yaml").read_text().splitlines()
    assert lines[warns[0].pos.line - 1].strip() == "- topic-guard"
