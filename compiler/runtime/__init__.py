"""The step runtime: every lifecycle step as real code, run in-process or in a cluster image.

    run_step(kind, params, *, inputs, output_dir, repo_root=".") -> dict

`kind` is one of data_check | train | finetune | evaluate | gate | register | deploy | predict | fetch (the
`ir.Step.kind`s the runtime executes; `command` steps, the user's own program, run through
`specops.runtime.command.run_command`, one contract for every backend). `params` are exactly `ir.Step.params`; each step module's docstring documents its
keys, and unknown keys are errors (so a compiler/runtime mismatch fails loudly). `inputs`
maps an input name to a LOCAL directory holding the upstream step's output; `output_dir`
is where the step writes (created if missing). `repo_root` resolves repo-relative paths and
`file://` URIs (`file://data/churn.csv` -> `<repo_root>/data/churn.csv`); paths escaping it
are refused. The returned summary is JSON-able and also written to `output_dir/result.json`
(sorted keys).

Errors: `StepFailed` (a data check or gate said no; `str(e)` is one human line),
`ParamError` (params or inputs are wrong), both `StepError`s. The CLI
(`python -m specops.runtime`, see `__main__.py`) turns any `StepError` into one line on
stderr and exit status 1.

Importing this package is cheap: numpy, sklearn, torch and transformers are imported inside
the step functions.
"""

from __future__ import annotations

import importlib
import json
from pathlib import Path
from typing import Any

from specops.diagnostics import suggestion
from specops.fsio import write_atomic
from specops.runtime.errors import ParamError, StepError, StepFailed

__all__ = ["KINDS", "ParamError", "StepError", "StepFailed", "run_step"]

# kind -> module under specops.runtime holding `run(params, inputs, output_dir, repo_root)`.
KINDS: dict[str, str] = {
    "data_check": "data_check",
    "train": "train",
    "finetune": "finetune",
    "evaluate": "evaluate",
    "gate": "gate",
    "register": "registry",
    "deploy": "deploy",
    "trainjob": "trainjob",
    "monitor": "monitor",
    "predict": "predict",
    "fetch": "fetch",
}


def run_step(kind: str, params: dict, *, inputs: dict[str, str], output_dir: str,
             repo_root: str = ".") -> dict:
    """Run one lifecycle step; see the package docstring for the contract."""
    if kind not in KINDS:

        raise ParamError(f"unknown step kind {kind!r} (expected one of {', '.join(KINDS)})"
                         f"{suggestion(kind, KINDS)}")
    if not isinstance(params, dict):
        raise ParamError(f"{kind}: params must be a mapping, got {type(params).__name__}")
    local_inputs: dict[str, Path] = {}
    for name, d in sorted((inputs or {}).items()):
        p = Path(d)
        if not p.is_dir():
            raise ParamError(f"{kind}: input {name!r} is not a directory: {d}")
        local_inputs[name] = p
    out = Path(output_dir)
    out.mkdir(parents=True, exist_ok=True)
    root = Path(repo_root)
    module = importlib.import_module(f"specops.runtime.{KINDS[kind]}")
    result = module.run(params, local_inputs, out, root)
    write_json(out / "result.json", result)
    return result


def write_json(path: Path, obj: Any) -> None:
    """Write JSON with sorted keys and a trailing newline, atomically (temp file + rename)."""

    write_atomic(path, (json.dumps(obj, sort_keys=True, indent=2, ensure_ascii=False) + "\n").encode("utf-8"))
