"""Step `command`: a user-supplied program (Azure ML command-job style), one contract for
every backend.

The argv is exec'd as a list (never through a shell) with the repository root as working
directory. The program learns its inputs from its environment:

    SPECOPS_PARAMS          the step's params as JSON text (not on SageMaker, whose
                            container environment values are too short for it)
    SPECOPS_PARAMS_JSON     the path of a file holding the same JSON (everywhere)
    SPECOPS_OUTPUT_DIR      the directory it writes its output into
    SPECOPS_INPUT_<NAME>    one per input: the upstream step's output directory (the input
                            name upper-cased, anything but letters and digits as '_'), or
                            the folder of the upstream output it is wired to
                            (params['input_paths'][name], a sub-folder of that directory)
    SPECOPS_OUTPUT_<NAME>   one per declared output (params['outputs']): the folder
                            <output dir>/<name>, created empty, that the program fills
    plus every variable in params['env'] (the spec's `command.env`).

An argv item may hold `${{inputs.NAME}}` or `${{outputs.NAME}}` (Azure ML command-job style):
it is replaced by that input's or output's folder, as data (the argv is never a shell line).

A non-zero exit fails the step, and so does a declared output of type `table` left without a
data file. Outputs named in params['publish'] ({output: URI}) are copied to that URI after
success (file:// in the repository, s3://, gs://): another model's Dataset reads them there.
A `result.json` the program writes into its output directory becomes the step's result;
otherwise the result is {"returncode": 0}.
"""

from __future__ import annotations

import json
import os
import subprocess
import tempfile
from pathlib import Path
from typing import Any, Mapping, Sequence

from specops.runtime.errors import ParamError, StepFailed
from specops.runtime.placeholders import substitute
from specops.runtime.publish import data_file, publish_outputs, safe_segment


def input_var(name: str) -> str:
    return "SPECOPS_INPUT_" + "".join(c if c.isalnum() else "_" for c in name).upper()


def output_var(name: str) -> str:
    return "SPECOPS_OUTPUT_" + "".join(c if c.isalnum() else "_" for c in name).upper()


def run_command(argv: Sequence[str] | None, params: Mapping[str, Any], inputs: Mapping[str, str | Path],
                output_dir: str | Path, repo_root: str | Path, *, step: str = "command") -> dict[str, Any]:
    if not argv:
        raise ParamError(f"command step {step!r} has no command")
    out = Path(output_dir)
    out.mkdir(parents=True, exist_ok=True)
    env = dict(os.environ)
    env.update({str(k): str(v) for k, v in (params.get("env") or {}).items()})
    text = json.dumps(dict(params), sort_keys=True)
    env["SPECOPS_PARAMS"] = text
    env["SPECOPS_OUTPUT_DIR"] = str(out)
    input_paths = params.get("input_paths") or {}
    for name, path in sorted(inputs.items()):
        sub = input_paths.get(name)
        env[input_var(name)] = str(Path(path) / safe_segment(sub, step)) if sub else str(path)
    outputs = dict(params.get("outputs") or {})
    for name in sorted(outputs):
        folder = out / safe_segment(name, step)
        folder.mkdir(parents=True, exist_ok=True)
        env[output_var(name)] = str(folder)
    folders = {("inputs", n): env[input_var(n)] for n in inputs} | {("outputs", n): env[output_var(n)] for n in outputs}
    argv = [substitute(str(a), folders, step) for a in argv]
    with tempfile.TemporaryDirectory(prefix="specops-params-") as tmp:
        params_file = Path(tmp) / "params.json"
        params_file.write_text(text, encoding="utf-8")
        env["SPECOPS_PARAMS_JSON"] = str(params_file)
        try:
            proc = subprocess.run([str(a) for a in argv], cwd=str(repo_root), env=env, shell=False, check=False)
        except OSError as e:
            raise StepFailed(f"command step {step!r} could not start {argv[0]!r}: {e.strerror or e}") from None
    if proc.returncode != 0:
        raise StepFailed(f"command step {step!r} exited with status {proc.returncode}")
    for name, type_ in sorted(outputs.items()):
        if type_ == "table" and data_file(out / name) is None:
            raise StepFailed(f"command step {step!r} left its table output {name!r} without a data file "
                             f"(write data.csv, data.parquet, data.jsonl or data.json into ${output_var(name)})")
    publish_outputs(out, params.get("publish") or {}, repo_root, step)
    result_file = out / "result.json"
    if result_file.is_file():
        try:
            result = json.loads(result_file.read_text(encoding="utf-8"))
        except ValueError as e:
            raise StepFailed(f"command step {step!r} wrote a result.json that is not JSON ({e})") from None
        return result if isinstance(result, dict) else {"result": result}
    return {"returncode": 0}
