"""Step `trainjob`: launch a Kubeflow Trainer v2 TrainJob and wait for it (a KFP launcher task).

Params (emitted by backends/kfp_trainjob.py)::

    {"trainjob": {...},          # the TrainJob manifest (trainer.kubeflow.org/v1alpha1)
     "namespace": "ml",          # where to create it
     "poll_seconds": 15,         # optional, default 15
     "timeout_seconds": null}    # optional; null = the TrainJob's own activeDeadlineSeconds

Inputs: the upstream outputs, as KFP mounts them. KFP gives a task its artifacts as local
paths that mirror their URIs (/gcs/<bucket>/… for gs://, /s3/<bucket>/… and /minio/<bucket>/…
for S3-compatible stores); the TrainJob's pods see no such mount, so the launcher passes the URIs
(`--input NAME=<uri>`, `--output-dir <uri>`) and the runtime in the pods copies the folders
itself (runtime/remote.py). Output: the TrainJob writes this task's output folder (rank 0).
Returns {trainjob, namespace, passed}; a TrainJob that fails raises StepError with its message.
"""

from __future__ import annotations

import copy
import time
from pathlib import Path
from typing import Any

from specops.runtime.common import Params
from specops.runtime.errors import ParamError, StepError

GROUP, VERSION, PLURAL = "trainer.kubeflow.org", "v1alpha1", "trainjobs"
KEYS = ("trainjob", "namespace", "poll_seconds", "timeout_seconds")
# KFP's local mount points of remote artifact stores -> the URI scheme they stand for.
MOUNTS = {"/gcs/": "gs://", "/s3/": "s3://", "/minio/": "s3://"}


def uri_of(path: Path, what: str) -> str:
    text = str(path)
    for mount, scheme in MOUNTS.items():
        if text.startswith(mount):
            return scheme + text[len(mount):]
    raise ParamError(f"trainjob: {what} {text!r} is not in a remote artifact store (/gcs/, /s3/, /minio/):"
                     " a TrainJob's pods cannot read a local folder; set the target's artifactStore to gs:// or s3://")


def api() -> Any:
    """The Kubernetes custom-objects client, in the cluster or from a kubeconfig."""
    from kubernetes import client, config

    try:
        config.load_incluster_config()
    except config.ConfigException:
        config.load_kube_config()
    return client.CustomObjectsApi()


def run(params: dict, inputs: dict[str, Path], out: Path, repo_root: Path) -> dict:
    p = Params(params, "trainjob", KEYS)
    manifest = copy.deepcopy(p.dict("trainjob"))
    namespace = p.str("namespace")
    poll = p.float("poll_seconds", 15.0, minimum=0)
    timeout = p.float("timeout_seconds", None, minimum=1)
    trainer = (manifest.get("spec") or {}).get("trainer")
    if manifest.get("kind") != "TrainJob" or not isinstance(trainer, dict):
        raise p.error("trainjob", "must be a TrainJob manifest with spec.trainer")
    args = list(trainer.get("args") or [])
    for name, folder in sorted(inputs.items()):
        args += ["--input", f"{name}={uri_of(folder, f'input {name!r}')}"]
    args += ["--output-dir", uri_of(out, "the output folder")]
    trainer["args"] = args

    k8s = api()
    created = k8s.create_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, manifest)
    name = created["metadata"]["name"]
    start = time.monotonic()
    while True:
        job = k8s.get_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, name)
        conditions = {c.get("type"): c for c in (job.get("status") or {}).get("conditions") or []
                      if c.get("status") == "True"}
        if "Failed" in conditions:
            raise StepError(f"trainjob: TrainJob {namespace}/{name} failed:"
                            f" {conditions['Failed'].get('message') or conditions['Failed'].get('reason')}")
        if "Complete" in conditions:
            return {"trainjob": name, "namespace": namespace, "passed": True}
        if timeout is not None and time.monotonic() - start > timeout:
            raise StepError(f"trainjob: TrainJob {namespace}/{name} did not finish in {int(timeout)} s")
        time.sleep(poll)
