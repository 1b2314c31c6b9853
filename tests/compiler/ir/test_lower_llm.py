"""Lowering of LLM Models: a serve-only model has no fine-tune step on any backend, the pinned
base revision reaches the fine-tune step and every serving artifact."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import yaml

from specops.build.compile import compile_repo
from specops.checks import analyze
from specops.ir.lower import lower_env

ROOT = Path(__file__).resolve().parents[3]
REV = "0e9e39f249a16976918f6564b8830bc894c89659"


def _repo(tmp_path: Path, finetune: bool, gated: bool = True) -> Path:
    repo = tmp_path / "repo"
    shutil.copytree(ROOT / "examples" / "support-assistant", repo, ignore=shutil.ignore_patterns("build", ".specops"))
    model = repo / "models" / "support-llm.yaml"
    doc = yaml.safe_load(model.read_text())
    if not finetune:
        del doc["spec"]["llm"]["finetune"]
        del doc["spec"]["datasets"]
        st = repo / "serving" / "support-llm.yaml"
        sdoc = yaml.safe_load(st.read_text())
        sdoc["spec"]["adapters"] = []  # nothing trained to serve as an adapter
        st.write_text(yaml.safe_dump(sdoc, sort_keys=False))
    model.write_text(yaml.safe_dump(doc, sort_keys=False))
    if not gated:
        for f in (repo / "gates").glob("*.yaml"):
            f.unlink()
        st = repo / "serving" / "support-llm.yaml"
        sdoc = yaml.safe_load(st.read_text())
        sdoc["spec"]["gates"] = []
        sdoc["overrides"]["prod"].pop("gates")
        st.write_text(yaml.safe_dump(sdoc, sort_keys=False))
        proj = repo / "specops.yaml"
        pdoc = yaml.safe_load(proj.read_text())
        for env in pdoc["spec"]["environments"].values():
            env.get("policy", {}).pop("requireGates", None)
        # an ungated prod target on purpose: the built-in rule that refuses it is off
        pdoc["spec"]["rules"] = {"disable": ["prod-serving-names-gates"]}
        proj.write_text(yaml.safe_dump(pdoc, sort_keys=False))
    return repo


def test_finetune_step_carries_the_pinned_revision(tmp_path: Path) -> None:
    resolved = analyze(_repo(tmp_path, finetune=True))
    assert not resolved.diagnostics.has_errors, [d.headline() for d in resolved.diagnostics.sorted()]
    for env in resolved.envs:
        (p,) = lower_env(resolved, env)[0]
        ft = p.step("finetune")
        assert ft.params["revision"] == REV
        assert ft.params["lora"]["r"] == 16


@pytest.mark.parametrize("gated", [True, False])
def test_model_without_finetune_has_no_finetune_step_on_any_backend(tmp_path: Path, gated: bool) -> None:
    resolved = analyze(_repo(tmp_path, finetune=False, gated=gated))
    assert not resolved.diagnostics.has_errors, [d.headline() for d in resolved.diagnostics.sorted()]
    build = compile_repo(resolved)
    assert not build.diagnostics.has_errors, [d.headline() for d in build.diagnostics.sorted()]
    files = build.files()
    pipeline_files = [p for p in files if "/serving/" not in p and "/monitors/" not in p and p != "manifest.json"]
    for path in pipeline_files:
        assert b"finetune" not in files[path], path
    if gated:
        # Evaluate, gate and register the published base: three orchestrators, no training.
        assert {p.split("/")[1] for p in pipeline_files} == {"zenml", "kfp", "sagemaker"}
        for env in resolved.envs:
            (p,) = lower_env(resolved, env)[0]
            assert [s.kind for s in p.steps][:2] == ["data_check", "evaluate"]
            assert p.step("evaluate").params["revision"] == REV
            assert p.step("register").params["base_model"] == "models/llama-3.1-8b"
    else:
        assert pipeline_files == []  # nothing to run: served as published
    # The pin still reaches serving.
    assert f"revision: {REV}".encode() in files["staging/serving/support-llm/vllm.yaml"]
    assert f"--model_revision={REV}".encode() in files["staging/serving/support-llm/inferenceservice.yaml"]


def test_full_finetune_has_no_lora_params(tmp_path: Path) -> None:
    repo = _repo(tmp_path, finetune=True)
    model = repo / "models" / "support-llm.yaml"
    doc = yaml.safe_load(model.read_text())
    doc["spec"]["llm"]["finetune"]["method"] = "full"
    model.write_text(yaml.safe_dump(doc, sort_keys=False))
    resolved = analyze(repo)
    (p,) = lower_env(resolved, "dev")[0]
    assert (p.step("finetune").params["method"], p.step("finetune").params["lora"]) == ("full", None)


def test_project_vllm_version_serves_a_target_that_names_none(tmp_path: Path) -> None:
    """A ServingTarget without `engine.version` is checked and deployed as the Project's
    `defaults.vllmVersion`: the version of its lowered node (which its serve config is checked
    against) and the version label of what is deployed (staging's KServe InferenceService)
    follow the Project."""
    repo = tmp_path / "repo"
    shutil.copytree(ROOT / "examples" / "support-assistant", repo, ignore=shutil.ignore_patterns("build", ".specops"))
    st = repo / "serving" / "support-llm.yaml"
    st.write_text(st.read_text().replace("    version: 0.32.0\n", "", 1))
    proj = repo / "specops.yaml"
    text = proj.read_text()
    labels = {}
    for version in ("0.32.0", "0.11.0"):
        proj.write_text(text.replace("vllmVersion: 0.32.0", f"vllmVersion: {version}"))
        resolved = analyze(repo)
        assert not resolved.diagnostics.has_errors, [d.headline() for d in resolved.diagnostics.sorted()]
        serving = {s.name: s for s in lower_env(resolved, "staging")[1]}
        assert serving["support-llm"].engine_version == version
        files = compile_repo(resolved, ["staging"]).files()
        isvc = yaml.safe_load(files["staging/serving/support-llm/inferenceservice.yaml"])
        labels[version] = isvc["metadata"]["labels"]["app.kubernetes.io/version"]
    assert labels == {"0.32.0": "0.32.0", "0.11.0": "0.11.0"}
