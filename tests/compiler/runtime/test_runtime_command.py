"""The user-command contract every backend runs through (specops.runtime.command)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from specops.runtime import StepFailed
from specops.runtime.command import run_command

PROGRAM = """
import json, os, pathlib
out = pathlib.Path(os.environ["SPECOPS_OUTPUT_DIR"])
params = json.loads(os.environ["SPECOPS_PARAMS"])
same = json.loads(pathlib.Path(os.environ["SPECOPS_PARAMS_JSON"]).read_text()) == params
rows = pathlib.Path(os.environ["SPECOPS_INPUT_TRAIN_DATA"], "rows.txt").read_text().split()
(out / "result.json").write_text(json.dumps({"rows": len(rows), "same": same, "who": os.environ["WHO"],
                                             "cwd": os.getcwd()}))
"""


def test_program_sees_params_inputs_env_and_runs_in_the_repo(tmp_path: Path) -> None:
    data = tmp_path / "data"
    data.mkdir()
    (data / "rows.txt").write_text("a b c")
    repo = tmp_path / "repo"
    repo.mkdir()
    (repo / "prog.py").write_text(PROGRAM)
    # A value with shell metacharacters stays one argv word: there is no shell.
    res = run_command([sys.executable, "prog.py", "$(rm -rf /); echo"], {"env": {"WHO": "me; rm -rf /"}, "x": 1},
                      {"train-data": str(data)}, tmp_path / "out", repo)
    assert res == {"rows": 3, "same": True, "who": "me; rm -rf /", "cwd": str(repo)}
    assert json.loads((tmp_path / "out" / "result.json").read_text())["rows"] == 3


def test_failing_program_fails_the_step(tmp_path: Path) -> None:
    with pytest.raises(StepFailed, match="exited with status 3"):
        run_command([sys.executable, "-c", "raise SystemExit(3)"], {}, {}, tmp_path / "o", tmp_path)
    with pytest.raises(StepFailed, match="could not start"):
        run_command(["/nonexistent/tool"], {}, {}, tmp_path / "o", tmp_path)
