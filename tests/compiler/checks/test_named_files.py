"""Files a serving spec names ship with the artifact: a chat template committed in the repo is
inlined into the serve config (vLLM reads --chat-template as a path or as the template), so it
reaches vLLM, Kubernetes' ConfigMap, KServe's args, the chart's extraArgs and LMI's env alike."""

from __future__ import annotations

import shutil
from pathlib import Path

import yaml

from specops.build.compile import compile_repo
from specops.checks import analyze

ROOT = Path(__file__).resolve().parents[3]
TEMPLATE = "{% for m in messages %}<|{{ m['role'] }}|>{{ m['content'] }}\n{% endfor %}<|assistant|>"


def test_chat_template_file_ships_inside_every_artifact(tmp_path: Path) -> None:
    repo = tmp_path / "repo"
    shutil.copytree(ROOT / "examples" / "support-assistant", repo, ignore=shutil.ignore_patterns("build", ".specops"))
    (repo / "templates").mkdir()
    (repo / "templates" / "chat.jinja").write_text(TEMPLATE, encoding="utf-8")
    st = repo / "serving" / "support-llm.yaml"
    doc = yaml.safe_load(st.read_text())
    doc["spec"]["engine"]["args"]["chat-template"] = "templates/chat.jinja"
    st.write_text(yaml.safe_dump(doc, sort_keys=False))
    resolved = analyze(repo)
    assert not resolved.diagnostics.has_errors, [d.headline() for d in resolved.diagnostics.sorted()]
    files = compile_repo(resolved).files()
    for env in ("staging", "prod"):
        assert yaml.safe_load(files[f"{env}/serving/support-llm/vllm.yaml"])["chat-template"] == TEMPLATE
    isvc = yaml.safe_load(files["staging/serving/support-llm/inferenceservice.yaml"])
    assert f"--chat-template={TEMPLATE}" in isvc["spec"]["predictor"]["model"]["args"]
    assert "templates/chat.jinja" not in files["staging/serving/support-llm/inferenceservice.yaml"].decode()
