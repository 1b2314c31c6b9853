"""`python -m specops.runtime`: the entry point container images run, exercised via subprocess."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures"


def cli(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "specops.runtime", *args], cwd=cwd,
                          capture_output=True, text=True, timeout=120)


def write_params(path: Path, params: dict) -> str:
    path.write_text(json.dumps(params))
    return str(path)


def test_cli_chain_and_gate_failure(tmp_path):
    repo = tmp_path / "repo"
    (repo / "data").mkdir(parents=True)
    shutil.copy(FIXTURES / "churn.csv", repo / "data" / "churn.csv")
    out = tmp_path / "out"

    r = cli("data_check", "--params-json", write_params(tmp_path / "dc.json", {"dataset": {
        "name": "churn", "uri": "file://data/churn.csv", "checks": [{"type": "unique", "column": "customer_id"}],
        # Half the rows to test: AUC over 40 test rows swings with the seed (0.66-0.92).
        "splits": {"train": 0.5, "test": 0.5}}}),
            "--output-dir", str(out / "data"), "--repo-root", str(repo), cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["splits"] == {"test": 100, "train": 100}

    r = cli("train", "--params-json", write_params(tmp_path / "tr.json", {
        "algorithm": "logistic_regression", "task": "classification", "target": "churned",
        "features": ["tenure_months", "monthly_charges", "contract", "support_tickets"]}),
            "--input", f"data={out / 'data'}", "--output-dir", str(out / "model"), "--repo-root", str(repo),
            cwd=tmp_path)
    assert r.returncode == 0, r.stderr

    r = cli("evaluate", "--params-json", write_params(tmp_path / "ev.json", {"task": "classification",
                                                                             "metrics": ["auc"]}),
            "--input", f"model={out / 'model'}", "--input", f"data={out / 'data'}",
            "--output-dir", str(out / "eval"), cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    auc = json.loads(r.stdout)["metrics"]["auc"]
    assert auc > 0.7

    gate = {"gate": "churn-auc", "metrics": [{"metric": "auc", "raw": ">= 0.7"}]}
    r = cli("gate", "--params-json", write_params(tmp_path / "g1.json", gate),
            "--input", f"metrics={out / 'eval'}", "--output-dir", str(out / "gate"), cwd=tmp_path)
    assert r.returncode == 0 and json.loads(r.stdout)["passed"] is True

    gate["metrics"][0]["raw"] = ">= 0.99"
    r = cli("gate", "--params-json", write_params(tmp_path / "g2.json", gate),
            "--input", f"metrics={out / 'eval'}", "--output-dir", str(out / "gate2"), cwd=tmp_path)
    assert r.returncode == 1
    assert r.stdout == ""
    assert r.stderr.startswith("gate 'churn-auc' failed: auc = 0.")
    assert r.stderr.endswith("< 0.99 (threshold '>= 0.99')\n")
    assert r.stderr.count("\n") == 1 and "Traceback" not in r.stderr
    assert json.loads((out / "gate2" / "decision.json").read_text())["passed"] is False


def test_cli_bad_params_and_usage(tmp_path):
    r = cli("train", "--params-json", write_params(tmp_path / "p.json", {"algorithm": "svm", "task": "classification"}),
            "--output-dir", str(tmp_path / "o"), cwd=tmp_path)
    assert r.returncode == 1 and r.stderr.count("\n") == 1 and "Traceback" not in r.stderr
    assert "unknown algorithm 'svm'" in r.stderr

    (tmp_path / "bad.json").write_text("{not json")
    r = cli("gate", "--params-json", str(tmp_path / "bad.json"), "--output-dir", str(tmp_path / "o"), cwd=tmp_path)
    assert r.returncode == 1 and "cannot read params" in r.stderr and "Traceback" not in r.stderr

    r = cli("gate", "--params-json", str(tmp_path / "p.json"), "--input", "nodir", "--output-dir", "o", cwd=tmp_path)
    assert r.returncode == 2 and "--input expects NAME=DIR" in r.stderr

    r = cli("deploy", "--params-json", str(tmp_path / "p.json"), "--output", "o", cwd=tmp_path)
    assert r.returncode == 2  # no abbreviations: --output is not --output-dir
