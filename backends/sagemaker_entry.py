"""Entrypoint of the specops step image inside a SageMaker *training* job.

The official pipeline-definition schema has no ContainerEntrypoint for Training steps, so
SageMaker starts the image's own entrypoint with the single argument `train`. Build the
step image with

    ENTRYPOINT ["python", "-m", "specops.backends.sagemaker_entry"]

and this module reads the job's hyperparameters (`/opt/ml/input/config/hyperparameters.json`,
written by SageMaker from the definition that `specops.backends.sagemaker` emits) and execs:

- `specops.argv` (JSON list): `python -m specops.runtime <argv...>`, the runtime CLI, under
  `torchrun` when `specops.torchrun` ({"nproc_per_node": k}) is set: one torchrun per instance,
  its node rank and the rendezvous host (the first instance) from SageMaker's
  `/opt/ml/input/config/resourceconfig.json` ({"current_host", "hosts"}); or
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
RESOURCECONFIG = Path("/opt/ml/input/config/resourceconfig.json")
MASTER_PORT = "29500"


def torchrun_prefix(spec: dict, resources: dict) -> list[str]:
    """`python -m torch.distributed.run ...` for this instance of a multi-instance job."""
    hosts = resources.get("hosts") or []
    current = resources.get("current_host")
    if not hosts or current not in hosts:
        raise SystemExit("specops: resourceconfig.json names no hosts, or not this one")
    hosts = sorted(hosts)  # SageMaker names them algo-1..algo-N; every instance sorts alike
    return [sys.executable, "-m", "torch.distributed.run", "--nnodes", str(len(hosts)),
            "--node_rank", str(hosts.index(current)), "--nproc_per_node", str(int(spec["nproc_per_node"])),
            "--master_addr", hosts[0], "--master_port", MASTER_PORT]


def command_from(hyperparameters: dict[str, str], resources: dict | None = None) -> tuple[list[str], dict[str, str]]:
    """The argv to exec and the extra environment, from the job's hyperparameters."""
    if "specops.command" in hyperparameters:
        argv = json.loads(hyperparameters["specops.command"])
        env = json.loads(hyperparameters.get("specops.env", "{}"))
    elif "specops.argv" in hyperparameters:
        runtime = ["-m", "specops.runtime", *json.loads(hyperparameters["specops.argv"])]
        if "specops.torchrun" in hyperparameters:
            argv = torchrun_prefix(json.loads(hyperparameters["specops.torchrun"]), resources or {}) + runtime
        else:
            argv = [sys.executable, *runtime]
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
    rc = Path(os.environ.get("SPECOPS_SM_RESOURCECONFIG", RESOURCECONFIG))
    resources = json.loads(rc.read_text(encoding="utf-8")) if rc.is_file() else {}
    cmd, env = command_from(hp, resources)
    os.execvpe(cmd[0], cmd, {**os.environ, **env})


if __name__ == "__main__":
    main(sys.argv[1:])
