"""Multi-node fine-tuning on KFP: a Kubeflow Trainer v2 `TrainJob` (trainer.kubeflow.org/v1alpha1).

A KFP task runs in one pod, so a finetune step whose resources span more than one node is
compiled to a launcher task instead: the step runtime's `trainjob` kind (runtime/trainjob.py)
creates the TrainJob below in the cluster and waits for it. The TrainJob names the
`torch-distributed` ClusterTrainingRuntime (`deepspeed-distributed` for DeepSpeed), which starts
`torchrun` on every node with PET_* rendezvous variables; each node runs the same step image:

    torchrun --module specops.runtime finetune --params '<the finetune params>' \
        --input data=<upstream artifact URI> --output-dir <this task's artifact URI>

The launcher appends the two URIs at run time (KFP knows them only then); the runtime reads and
writes remote folders itself. Every emitted TrainJob is validated against the CRD's
openAPIV3Schema vendored under backends/schemas/kubeflow-trainer/ (see its README for the
commit). This cannot run here: container components need Docker and a cluster.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from specops.backends import crd
from specops.ir import Pipeline, Step

CRD = Path(__file__).parent / "schemas" / "kubeflow-trainer" / "trainer.kubeflow.org_trainjobs.yaml"
API_VERSION = "trainer.kubeflow.org/v1alpha1"
RUNTIMES = {"ddp": "torch-distributed", "fsdp": "torch-distributed", "deepspeed": "deepspeed-distributed"}
# The Kubernetes resource name of a GPU, per catalogue vendor.
GPU_RESOURCE = "nvidia.com/gpu"


def project_env(pipeline: Pipeline) -> list[dict[str, str]]:
    """Environment of every step container (the pipeline's executors and a TrainJob's nodes):
    the target's GCP project as GOOGLE_CLOUD_PROJECT, where Google's client libraries
    (google-auth's `default()`, hence google-cloud-storage for gs:// artifacts and data) read
    the project from when the credentials carry none. The `[{name, value}]` form both the
    PipelineContainerSpec (what kfp's `set_env_variable` compiles to) and a container take."""
    project = pipeline.target.project
    return [{"name": "GOOGLE_CLOUD_PROJECT", "value": project}] if project else []


def needs_trainjob(step: Step) -> bool:
    return step.kind == "finetune" and step.resources.nodes > 1


def manifest(pipeline: Pipeline, step: Step, image: str | None = None) -> dict[str, Any]:
    """The TrainJob for a multi-node finetune step (the launcher adds the data URIs)."""
    dist = step.params["distributed"]
    r = step.resources
    limits: dict[str, Any] = {}
    if r.cpu is not None:
        limits["cpu"] = str(r.cpu)
    if r.memory is not None:
        limits["memory"] = r.memory
    if r.accelerator:
        limits[GPU_RESOURCE] = str(max(1, r.accelerator_count))
    params = {k: v for k, v in step.params.items()}
    trainer: dict[str, Any] = {
        "image": image or step.image,
        "numNodes": int(dist["nodes"]),
        "numProcPerNode": int(dist["nproc_per_node"]),
        "command": ["torchrun"],
        "args": ["--module", "specops.runtime", "finetune",
                 "--params", json.dumps(params, sort_keys=True, separators=(",", ":"))],
    }
    if env := project_env(pipeline):
        trainer["env"] = env
    if limits:
        trainer["resourcesPerNode"] = {"limits": limits, "requests": dict(limits)}
    return {
        "apiVersion": API_VERSION,
        "kind": "TrainJob",
        "metadata": {
            # One TrainJob per run: the API server appends a suffix to generateName.
            "generateName": f"{pipeline.model}-{step.name}-"[:58],
            "namespace": pipeline.target.namespace,
            "labels": {"app.kubernetes.io/managed-by": "specops", "specops.dev/model": pipeline.model,
                       "specops.dev/env": pipeline.env},
        },
        "spec": {"runtimeRef": {"name": RUNTIMES[dist["strategy"]]}, "trainer": trainer},
    }


def launcher_params(pipeline: Pipeline, step: Step) -> dict[str, Any]:
    """The `trainjob` step's params (runtime/trainjob.py)."""
    return {"trainjob": manifest(pipeline, step), "namespace": pipeline.target.namespace}


def crd_schema() -> dict[str, Any]:
    return crd.vendored_schema(CRD, API_VERSION.split("/")[1])


def validate(doc: dict[str, Any]) -> list[str]:
    """Errors of a TrainJob against the vendored CRD schema (unknown fields rejected), sorted."""
    return crd.errors(doc, crd_schema(), (*crd.METADATA, "generateName"))
