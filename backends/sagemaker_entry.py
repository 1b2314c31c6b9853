"""Entrypoint of the specops step image inside a SageMaker *training* job.

The official pipeline-definition schema has no ContainerEntrypoint for Training steps, so
SageMaker starts the image's own entrypoint with the single argument `train`. Build the
step image with

    ENTRYPOINT ["python", "-m", "specops.backends.sagemaker_entry"]

and this module reads the job's hyperparameters (`/opt/ml/input/config/hyperparameters.json`,
written by SageMaker from the definition that `specops.backends.sagemaker` emits) and execs:

- `specops.argv` (JSON list): `python -m specops.runtime <argv...>`, the runtime CLI; or
- `specops.command` (JSON list) with `specops.env` (JSON object): the user's own command,
  exec'd as a list (never a shell) with the SPECOPS_* environment.

Processing steps set ContainerEntrypoint themselves and never come through here. Stdlib only.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

HYPERPARAMETERS = Path("/opt/ml/input/config/hyperparameters.json")


def command_from(hyperparameters: dict[str, str]) -> tuple[list[str], dict[str, str]]:
    """The argv to exec and the extra environment, from the job's hyperparameters."""
    if "specops.command" in hyperparameters:
        argv = json.loads(hyperparameters["specops.command"])
        env = json.loads(hyperparameters.get("specops.env", "{}"))
    elif "specops.argv" in hyperparameters:
        argv = [sys.executable, "-m", "specops.runtime", *json.loads(hyperparameters["specops.argv"])]
        env = {}
    else:
        raise SystemExit("specops: no specops.argv or specops.command hyperparameter; "
                         "this image expects a specops-emitted SageMaker training step")
    if not isinstance(argv, list) or not argv or not all(isinstance(a, str) for a in argv):
        raise SystemExit("specops: the step's command must be a non-empty list of strings")
    if not isinstance(env, dict) or not all(isinstance(v, str) for v in env.values()):
        raise SystemExit("specops: specops.env must map names to strings")
    return argv, env


def main(argv: list[str] | None = None) -> None:
    path = Path(os.environ.get("SPECOPS_SM_HYPERPARAMETERS", HYPERPARAMETERS))
    hp = json.loads(path.read_text(encoding="utf-8"))
    cmd, env = command_from(hp)
    os.execvpe(cmd[0], cmd, {**os.environ, **env})


if __name__ == "__main__":
    main(sys.argv[1:])
