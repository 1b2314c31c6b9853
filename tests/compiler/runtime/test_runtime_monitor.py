"""The monitor step on real files: Evidently's drift preset on the churn example's windows,
quality on labelled feedback, LLM assertions on sampled traffic, and bad input as one error
naming the monitor (never a breach)."""

from __future__ import annotations

import csv
import json
import shutil
from pathlib import Path

import pytest

from specops.checks import analyze
from specops.ir.monitors import monitor_params
from specops.runtime import ParamError, run_step

ROOT = Path(__file__).resolve().parents[3]


def _params(repo: Path, env: str, name: str) -> dict:
    resolved = analyze(repo)
    assert not resolved.diagnostics.has_errors, resolved.diagnostics
    view = resolved.envs[env]
    return monitor_params(resolved, view, view.get("Monitor", name))


@pytest.fixture(scope="module")
def churn(tmp_path_factory: pytest.TempPathFactory) -> Path:
    repo = tmp_path_factory.mktemp("churn") / "repo"
    shutil.copytree(ROOT / "examples" / "churn", repo, ignore=shutil.ignore_patterns(".specops", "build"))
    return repo


def shifted(src: Path, dst: Path, tenure: float = 0.4, charges: float = 25.0) -> Path:
    """The production window with shorter tenure and higher charges (the other columns as they were)."""
    with open(src, newline="", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    with open(dst, "w", newline="", encoding="utf-8") as f:
        w = csv.DictWriter(f, fieldnames=list(rows[0]), lineterminator="\n")
        w.writeheader()
        for r in rows:
            r["tenure_months"] = str(max(1, int(int(r["tenure_months"]) * tenure)))
            r["monthly_charges"] = f"{float(r['monthly_charges']) + charges:.2f}"
            w.writerow(r)
    return dst


def _run(repo: Path, params: dict, out: Path) -> dict:
    return run_step("monitor", params, inputs={}, output_dir=str(out), repo_root=str(repo))


def test_unshifted_window_does_not_breach(churn: Path, tmp_path: Path) -> None:
    r = _run(churn, _params(churn, "dev", "churn-drift"), tmp_path)
    assert r["breached"] is False
    share = next(c for c in r["checks"] if c["name"] == "drift:share")
    assert share["passed"] and share["value"] < 0.5
    assert {c["name"] for c in r["checks"]} >= {"drift:tenure_months", "drift:monthly_charges", "drift:contract",
                                               "drift:support_tickets", "quality:auc"}
    # Evidently's own reports, and ours.
    assert "<html" in (tmp_path / "drift.html").read_text(encoding="utf-8")[:2000].lower()
    assert json.loads((tmp_path / "drift.json").read_text(encoding="utf-8"))["metrics"]
    assert json.loads((tmp_path / "report.json").read_text(encoding="utf-8"))["window"]["rows"] == 500


def test_shifted_tenure_and_charges_breach(churn: Path, tmp_path: Path) -> None:
    shifted(churn / "data" / "production.csv", churn / "data" / "shifted.csv")
    params = dict(_params(churn, "dev", "churn-drift"), current_uri="file://data/shifted.csv")
    r = _run(churn, params, tmp_path)
    assert r["breached"] is True
    by = {c["name"]: c for c in r["checks"]}
    assert by["drift:share"]["passed"] is False and by["drift:share"]["value"] == 0.5
    assert by["drift:tenure_months"]["drifted"] and by["drift:monthly_charges"]["drifted"]
    assert not by["drift:contract"]["drifted"] and not by["drift:support_tickets"]["drifted"]
    # The spec's per-column test is the one Evidently ran.
    assert "wasserstein" in by["drift:monthly_charges"]["method"].lower()


def test_a_stricter_share_is_not_breached_by_one_column(churn: Path, tmp_path: Path) -> None:
    shifted(churn / "data" / "production.csv", churn / "data" / "charges.csv", tenure=1.0)
    params = _params(churn, "dev", "churn-drift")
    params["current_uri"] = "file://data/charges.csv"
    r = _run(churn, params, tmp_path)
    by = {c["name"]: c for c in r["checks"]}
    assert by["drift:monthly_charges"]["drifted"] and not by["drift:tenure_months"]["drifted"]
    assert by["drift:share"]["value"] == 0.25 and r["breached"] is False


def test_mismatched_columns_are_one_error_naming_the_monitor(churn: Path, tmp_path: Path) -> None:
    src = (churn / "data" / "production.csv").read_text(encoding="utf-8").splitlines()
    (churn / "data" / "narrow.csv").write_text("\n".join(",".join(l.split(",")[:2]) for l in src) + "\n",
                                               encoding="utf-8")
    params = dict(_params(churn, "dev", "churn-drift"), current_uri="file://data/narrow.csv")
    with pytest.raises(ParamError) as e:
        _run(churn, params, tmp_path)
    msg = str(e.value)
    assert msg.startswith("monitor 'churn-drift':") and "\n" not in msg
    assert "monthly_charges" in msg


def test_current_columns_missing_from_an_explicit_list_are_named(churn: Path, tmp_path: Path) -> None:
    params = _params(churn, "dev", "churn-drift")
    params["columns"] = ["tenure_months", "region"]
    with pytest.raises(ParamError, match=r"monitor 'churn-drift': the current data's columns do not match the "
                                         r"reference \(missing in the current data: region; missing in the reference: region\)"):
        _run(churn, params, tmp_path)


def test_empty_window_is_an_error_not_a_breach(churn: Path, tmp_path: Path) -> None:
    header = (churn / "data" / "production.csv").read_text(encoding="utf-8").splitlines()[0]
    (churn / "data" / "empty.csv").write_text(header + "\n", encoding="utf-8")
    params = dict(_params(churn, "dev", "churn-drift"), current_uri="file://data/empty.csv")
    with pytest.raises(ParamError, match=r"^monitor 'churn-drift': the current window is empty \(0 rows"):
        _run(churn, params, tmp_path)
    assert not (tmp_path / "report.json").exists()


def test_quality_breaches_on_wrong_scores(churn: Path, tmp_path: Path) -> None:
    src = churn / "data" / "feedback.csv"
    with open(src, newline="", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    for r in rows:  # the scores inverted: AUC falls to 1 - AUC
        r["score"] = f"{1 - float(r['score']):.4f}"
    with open(src, "w", newline="", encoding="utf-8") as f:
        w = csv.DictWriter(f, fieldnames=list(rows[0]), lineterminator="\n")
        w.writeheader()
        w.writerows(rows)
    try:
        r = _run(churn, _params(churn, "dev", "churn-drift"), tmp_path)
    finally:
        shutil.copy(ROOT / "examples" / "churn" / "data" / "feedback.csv", src)
    auc = next(c for c in r["checks"] if c["name"] == "quality:auc")
    assert auc["passed"] is False and auc["value"] < 0.3 and r["breached"] is True


def test_llm_assertions_on_sampled_traffic(tmp_path: Path) -> None:
    repo = tmp_path / "repo"
    shutil.copytree(ROOT / "examples" / "support-assistant", repo, ignore=shutil.ignore_patterns(".specops", "build"))
    params = _params(repo, "staging", "support-live")
    params["traffic"]["dataset"].pop("credentials", None)
    r = _run(repo, params, tmp_path / "ok")
    llm = next(c for c in r["checks"] if c["name"] == "llm:pass_rate")
    assert llm["passed"] and llm["value"] == 1.0 and "12/12" in llm["message"]  # sample 0.5 of 24 rows
    lines = (repo / "data" / "traffic.jsonl").read_text(encoding="utf-8").splitlines()
    bad = [json.dumps(dict(json.loads(l), response="Refund guaranteed, no questions.")) if i % 4 == 0 else l
           for i, l in enumerate(lines)]
    (repo / "data" / "traffic.jsonl").write_text("\n".join(bad) + "\n", encoding="utf-8")
    r = _run(repo, params, tmp_path / "bad")
    llm = next(c for c in r["checks"] if c["name"] == "llm:pass_rate")
    assert llm["passed"] is False and llm["value"] == 0.5 and r["breached"] is True


def test_scheduled_job_fails_on_breach_after_writing_its_report(churn: Path, tmp_path: Path, capsys) -> None:
    """The scheduled job (`python -m specops.runtime monitor`, what every orchestrator runs) exits
    1 with one line on a breach, so the orchestrator marks the run failed; its report is written
    first. An unshifted window exits 0."""
    from specops.ir.monitors import monitor_job
    from specops.runtime.__main__ import main

    resolved = analyze(churn)
    view = resolved.envs["dev"]
    node = view.get("Monitor", "churn-drift")
    job = monitor_job(resolved, view, node, monitor_params(resolved, view, node))
    (step,) = job.steps
    assert step.kind == "monitor" and step.params["fail_on_breach"] is True
    shifted(churn / "data" / "production.csv", churn / "data" / "shifted-job.csv")
    for uri, want in ((None, 0), ("file://data/shifted-job.csv", 1)):
        params = dict(step.params, **({"current_uri": uri} if uri else {}))
        (tmp_path / "params.json").write_text(json.dumps(params), encoding="utf-8")
        out = tmp_path / f"out-{want}"
        rc = main(["monitor", "--params-json", str(tmp_path / "params.json"), "--output-dir", str(out),
                   "--repo-root", str(churn)])
        captured = capsys.readouterr()
        assert rc == want, captured.err
        assert json.loads((out / "report.json").read_text(encoding="utf-8"))["breached"] is bool(want)
    (line,) = captured.err.splitlines()
    assert line.startswith("monitor 'churn-drift' breached (drift:share 0.5")
