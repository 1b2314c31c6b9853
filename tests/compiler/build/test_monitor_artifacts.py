"""What monitors compile to: `<env>/monitors/<name>/monitor.json` (the params the monitor step
and the scheduled job run) and, for serving SLOs, the alerting rules and dashboard."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import yaml

from specops.build.compile import compile_repo
from specops.checks import analyze

ROOT = Path(__file__).resolve().parents[3]


def _copy(tmp_path: Path, example: str) -> Path:
    repo = tmp_path / example
    shutil.copytree(ROOT / "examples" / example, repo, ignore=shutil.ignore_patterns(".specops", "build"))
    return repo


def _edit(path: Path, fn) -> None:
    doc = yaml.safe_load(path.read_text(encoding="utf-8"))
    fn(doc)
    path.write_text(yaml.safe_dump(doc, sort_keys=False), encoding="utf-8")


def _files(repo: Path) -> dict[str, bytes]:
    resolved = analyze(repo)
    assert not resolved.diagnostics.has_errors, [d.headline() for d in resolved.diagnostics.sorted()]
    build = compile_repo(resolved)
    assert not build.diagnostics.has_errors
    return build.files()


def test_renaming_a_watched_serving_target_moves_its_artifacts(tmp_path: Path) -> None:
    """ServingTarget:metadata.name with the Monitor that watches it renamed along (two edits)."""
    repo = _copy(tmp_path, "support-assistant")
    before = _files(repo)
    _edit(repo / "serving" / "support-llm.yaml", lambda d: d["metadata"].update(name="support-llm-2"))
    _edit(repo / "monitors" / "support-live.yaml", lambda d: d["spec"]["watch"].update(serving="support-llm-2"))
    after = _files(repo)
    assert "staging/serving/support-llm/vllm.yaml" in before and "staging/serving/support-llm/vllm.yaml" not in after
    assert "staging/serving/support-llm-2/vllm.yaml" in after
    assert json.loads(after["staging/monitors/support-live/monitor.json"])["serving"] == "support-llm-2"


def test_monitor_params_name_the_reference_split_the_model_trains_on(tmp_path: Path) -> None:
    files = _files(_copy(tmp_path, "churn"))
    p = json.loads(files["dev/monitors/churn-drift/monitor.json"])
    assert p["reference"]["split"] == "train" and p["reference"]["dataset"]["name"] == "customers"
    assert p["reference"]["dataset"]["splits"] == {"train": 0.8, "test": 0.2}
    assert p["current"] == {"dataset": p["current"]["dataset"], "split": "window"}
    assert p["current"]["dataset"]["splits"] == {"window": 1.0} and p["current"]["dataset"]["checks"] == []
    assert p["columns"] == ["tenure_months", "monthly_charges", "contract", "support_tickets"]
    assert p["schedule"] == "0 6 * * *" and p["on_breach"] == {"notify": [], "retrain": {"data": "window"}}
