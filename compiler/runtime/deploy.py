"""Step `deploy`: the hand-off record that `specops apply` acts on later.

The pipeline does not roll out serving itself: rollout is a planned, locked, state-recorded
change made by `apply`. This step only writes what was approved.

Params::

    {"serving_target": "churn-api",   # required: the ServingTarget name
     "model": "churn",                # required: the Model spec's name
     "env": "prod",                   # optional: the environment
     "version": null,                 # optional when the `registration` input is given
     "registry_uri": null}            # optional when the `registration` input is given

Inputs: `registration` (optional; a register output holding registration.json and
result.json) supplies version and registry_uri; params that disagree with it are an error.
Output: `deploy.json` {serving_target, model, env, version, registry_uri, sha256}; returns
the same dict.
"""

from __future__ import annotations

import json
from pathlib import Path

from specops.runtime import write_json
from specops.runtime.common import Params
from specops.runtime.errors import ParamError

KEYS = ("serving_target", "model", "env", "version", "registry_uri")


def run(params: dict, inputs: dict[str, Path], out: Path, repo_root: Path) -> dict:
    p = Params(params, "deploy", KEYS)
    record = {
        "serving_target": p.str("serving_target"),
        "model": p.str("model"),
        "env": p.str("env", None),
        "version": None if p.raw("version", None) is None else str(p.raw("version")),
        "registry_uri": p.str("registry_uri", None),
        "sha256": None,
    }
    if "registration" in inputs:
        d = inputs["registration"]
        try:
            reg = json.loads((d / "result.json").read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise ParamError("deploy: input 'registration' has no result.json (expected a register output)") from None
        for key, theirs in (("version", reg.get("version")), ("registry_uri", reg.get("uri"))):
            if record[key] is not None and record[key] != theirs:
                raise p.error(key, f"is {record[key]!r} but the registration says {theirs!r}")
            record[key] = theirs
        record["sha256"] = reg.get("sha256")
    for key in ("version", "registry_uri"):
        if record[key] is None:
            raise p.error(key, "is required without a 'registration' input")
    write_json(out / "deploy.json", record)
    return record
