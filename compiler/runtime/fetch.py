"""Step `fetch`: the pinned model version of an environment that deploys instead of training.

Params::

    {"registry": "churn-classifier",      # the registered model
     "version": 3,                        # the pinned MLflow version (the Model's registry.pin)
     "digest": "sha256:<64 hex>",         # its files' digest: anything else is refused
     "tracking": {"uri": null}}           # the registry (see tracking.resolve_uri)

Output: the version's files (what its run logged under `model/`), ready for evaluate and the
gates to re-check on this environment's data, and for register to record. Returns {registry,
version, digest}.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from specops.runtime import tracking
from specops.runtime.common import Params, sha256_tree
from specops.runtime.errors import StepError

KEYS = ("registry", "version", "digest", "tracking")


def run(params: dict, inputs: dict[str, Path], out: Path, repo_root: Path) -> dict:
    p = Params(params, "fetch", KEYS)
    registry = p.str("registry")
    version = str(p.int("version", minimum=1))
    digest = p.str("digest")
    uri = Params(p.dict("tracking"), "fetch: tracking", ("uri",)).str("uri", None)
    client = tracking.connect(uri, repo_root, token=os.environ.get("MLFLOW_TRACKING_TOKEN"))
    mv = tracking.get_version(client, registry, version)
    if mv is None:
        raise StepError(f"fetch: {registry} version {version} is not in the registry at "
                        f"{tracking.display(tracking.resolve_uri(uri, repo_root))}")
    tagged = (mv.tags or {}).get(tracking.TAG + "digest")
    if tagged != digest:
        raise StepError(f"fetch: {registry} version {version} has digest {tagged}, not the pinned {digest}")
    staging = out / ".download"
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    got = Path(tracking.guarded(f"downloading {registry} version {version}", lambda: client.download_artifacts(
        mv.run_id, "model", str(staging))))
    have = "sha256:" + sha256_tree(got, exclude=("result.json",))
    if have != digest:
        raise StepError(f"fetch: the files of {registry} version {version} have digest {have}, not the pinned {digest}")
    for f in sorted(got.iterdir()):
        shutil.move(str(f), str(out / f.name))
    shutil.rmtree(staging, ignore_errors=True)
    return {"registry": registry, "version": version, "digest": digest}
