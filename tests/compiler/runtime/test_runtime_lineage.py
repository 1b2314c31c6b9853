"""The step runtime's side of lineage: named outputs and ${{...}} placeholders of user
commands, publishing an output for another pipeline, a data check reading an upstream step's
file, and batch scoring (`predict`) with the trained churn model."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pyarrow.csv as pacsv
import pytest

from specops.runtime import ParamError, StepFailed, run_step
from specops.runtime.command import run_command
from specops.runtime.predict import load_model
from specops.runtime.tables import load_split_table
from specops.runtime.train import feature_matrix
from tests.fixtures.ir_samples import churn_pipeline

ROOT = Path(__file__).resolve().parents[3]

WRITER = """\
import sys, pathlib
out = pathlib.Path(sys.argv[2]); out.mkdir(parents=True, exist_ok=True)
rows = pathlib.Path(sys.argv[1]).joinpath('data.csv').read_text()
out.joinpath('data.csv').write_text(rows + '3,6\\n')
"""


def test_named_outputs_placeholders_and_publish(tmp_path):
    repo = tmp_path / "repo"
    (repo / "up" / "rows").mkdir(parents=True)
    (repo / "up" / "rows" / "data.csv").write_text("x,y\n1,2\n")
    (repo / "writer.py").write_text(WRITER)
    params = {"env": {}, "outputs": {"cleaned": "table"}, "input_paths": {"rows": "rows"},
              "publish": {"cleaned": "file://.specops/artifacts/dev/m/outputs/clean/cleaned"}}
    argv = [sys.executable, "writer.py", "${{inputs.rows}}", "${{outputs.cleaned}}"]
    run_command(argv, params, {"rows": repo / "up"}, tmp_path / "out", repo, step="clean")
    assert (tmp_path / "out" / "cleaned" / "data.csv").read_text() == "x,y\n1,2\n3,6\n"
    published = repo / ".specops/artifacts/dev/m/outputs/clean/cleaned/data.csv"
    assert published.read_text() == "x,y\n1,2\n3,6\n"

    # A data check reads the file inside the upstream step's output, never outside it.
    res = run_step("data_check", {"dataset": {"name": "clean", "format": "csv", "splits": {"all": 1.0},
                                              "input": {"name": "source", "path": "cleaned/data.csv"}}},
                   inputs={"source": str(tmp_path / "out")}, output_dir=str(tmp_path / "check"),
                   repo_root=str(repo))
    assert res["rows"] == 2
    with pytest.raises(ParamError, match="escapes"):
        run_step("data_check", {"dataset": {"name": "clean", "format": "csv", "splits": {"all": 1.0},
                                            "input": {"name": "source", "path": "../up/rows/data.csv"}}},
                 inputs={"source": str(tmp_path / "out")}, output_dir=str(tmp_path / "c2"), repo_root=str(repo))


def test_undeclared_placeholder_and_empty_table_fail_the_step(tmp_path):
    with pytest.raises(ParamError, match=r"\$\{\{outputs.nope\}\}"):
        run_command([sys.executable, "-c", "pass", "${{outputs.nope}}"], {"outputs": {"x": "table"}}, {},
                    tmp_path / "o1", tmp_path, step="s")
    with pytest.raises(StepFailed, match="without a data file"):
        run_command([sys.executable, "-c", "pass"], {"outputs": {"x": "table"}}, {}, tmp_path / "o2", tmp_path,
                    step="s")


def test_batch_scoring_writes_the_models_predictions(tmp_path):
    pipe = churn_pipeline()
    outs = {}
    for step in pipe.steps:
        if step.kind in ("data_check", "train"):
            outs[step.name] = tmp_path / step.name
            run_step(step.kind, step.params, inputs={k: str(outs[v]) for k, v in step.inputs.items()},
                     output_dir=str(outs[step.name]), repo_root=str(ROOT))
    res = run_step("predict", {"split": "test", "format": "csv", "output": "predictions",
                               "publish": {"predictions": "file://published/predictions"}},
                   inputs={"model": str(outs["train"]), "data": str(outs["check-customers"])},
                   output_dir=str(tmp_path / "predict"), repo_root=str(tmp_path))
    written = pacsv.read_csv(tmp_path / "predict" / "predictions" / "data.csv")
    model, meta = load_model(outs["train"], "t")
    table, _ = load_split_table(outs["check-customers"], "test", "t")
    assert written.column("prediction").to_pylist() == model.predict(feature_matrix(table, meta["features"])).tolist()
    assert res["rows"] == table.num_rows and "probability" in written.column_names
    assert (tmp_path / "published" / "predictions" / "data.csv").read_bytes() == \
        (tmp_path / "predict" / "predictions" / "data.csv").read_bytes()
    assert json.loads((tmp_path / "predict" / "result.json").read_text())["output"] == "predictions"
