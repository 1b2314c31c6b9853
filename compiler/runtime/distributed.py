"""Distributed fine-tuning: the finetune step under torchrun, with DDP, FSDP or DeepSpeed.

A finetune step's `distributed` param::

    {"nodes": 2,              # machines (SageMaker InstanceCount, TrainJob numNodes)
     "nproc_per_node": 8,     # processes per machine (its GPUs; 1 on CPU)
     "strategy": "ddp"}       # ddp | fsdp | deepspeed

Where it runs: SageMaker's entry (backends/sagemaker_entry.py) and a Kubeflow Trainer TrainJob
start `torchrun` themselves, one per node; the step then finds WORLD_SIZE in its environment and
joins the process group. Anywhere else (the local target, a plain container) the step relaunches
itself under `torchrun --standalone` with `nproc_per_node` processes on this one machine; more
than one node needs a launcher that spans machines, and is refused here.

Rank r trains on examples r, r+W, r+2W, … of each epoch's seeded order (W = world size), so the
processes together see every example once per epoch; the loss each rank logs is averaged over
the ranks, so every rank's summary is the same. Only rank 0 writes the model. CPU runs use the
gloo backend, GPUs NCCL.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from specops.runtime.common import Params
from specops.runtime.errors import ParamError, StepError

STRATEGIES = ("ddp", "fsdp", "deepspeed")
KEYS = ("nodes", "nproc_per_node", "strategy")


@dataclass(frozen=True)
class Plan:
    nodes: int
    nproc_per_node: int
    strategy: str

    @property
    def world(self) -> int:
        return self.nodes * self.nproc_per_node


def plan_of(raw: Any) -> Plan | None:
    if raw is None:
        return None
    p = Params(raw, "finetune: distributed", KEYS)
    plan = Plan(p.int("nodes", 1, minimum=1), p.int("nproc_per_node", 1, minimum=1),
                p.str("strategy", "ddp", choices=STRATEGIES))
    return plan if plan.world > 1 else None


def inside() -> bool:
    """True inside a process that torchrun started (it sets WORLD_SIZE and RANK)."""
    return "WORLD_SIZE" in os.environ and "RANK" in os.environ


def relaunch(kind: str, params: dict, inputs: dict[str, Path], out: Path, repo_root: Path, plan: Plan) -> dict:
    """Run this step again under `torchrun --standalone` on this machine; rank 0's result."""
    if plan.nodes > 1:
        raise ParamError(f"{kind}: distributed.nodes is {plan.nodes}, but this step runs on one machine;"
                         f" more nodes need a launcher that spans machines (SageMaker, a Kubeflow TrainJob)")
    with tempfile.TemporaryDirectory(prefix="specops-dist-") as tmp:
        params_file = Path(tmp) / "params.json"
        params_file.write_text(json.dumps(params), encoding="utf-8")
        argv = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nnodes", "1",
                "--nproc_per_node", str(plan.nproc_per_node), "-m", "specops.runtime", kind,
                "--params-json", str(params_file), "--output-dir", str(out), "--repo-root", str(repo_root)]
        for name, d in sorted(inputs.items()):
            argv += ["--input", f"{name}={d}"]
        env = {**os.environ, "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "1")}
        proc = subprocess.run(argv, env=env, capture_output=True, text=True)
    if proc.returncode != 0:
        lines = [ln for ln in (proc.stderr or "").splitlines() if ln.strip()]
        # The step's own one-line error, when a rank printed one; else torchrun's last line.
        mine = [ln for ln in lines if ln.startswith(f"{kind}:")]
        # Else the exception a rank died of (torchrun's own summary is a banner of '=' lines).
        # Child lines come prefixed "[rank0]: "; the exception line is "SomeError: why".
        errors = [m.group(1) for ln in lines if "ChildFailedError" not in ln
                  and (m := re.search(r"(?:^|\]:)\s*([\w.]*(?:Error|Exception)\b.*)", ln))]
        why = errors[-1] if errors else (lines[-1] if lines else str(proc.returncode))
        raise StepError(mine[-1] if mine else f"{kind}: a torchrun process failed: {why}")
    return json.loads((out / "result.json").read_text(encoding="utf-8"))


class Context:
    """The process group of one rank, and how the model is wrapped for the strategy."""

    def __init__(self, plan: Plan):
        import torch
        import torch.distributed as dist

        self.plan = plan
        self.cuda = torch.cuda.is_available()
        if not dist.is_initialized():
            dist.init_process_group("nccl" if self.cuda else "gloo")
        self.rank = dist.get_rank()
        self.world = dist.get_world_size()
        self.local_rank = int(os.environ.get("LOCAL_RANK", "0"))
        self.device = f"cuda:{self.local_rank}" if self.cuda else "cpu"
        if self.cuda:
            torch.cuda.set_device(self.local_rank)

    def wrap(self, model: Any, trainable: list, lr: float) -> tuple[Any, Any]:
        """(wrapped model, optimizer) for the strategy."""
        import torch

        if self.plan.strategy == "ddp":
            from torch.nn.parallel import DistributedDataParallel

            wrapped = DistributedDataParallel(model, device_ids=[self.local_rank] if self.cuda else None)
            return wrapped, torch.optim.AdamW(trainable, lr=lr)
        if self.plan.strategy == "fsdp":
            # FSDP2 (`fully_shard`): per-parameter sharding over a device mesh. Unlike FSDP1 it
            # runs on CPU with gloo too, and keeps parameter names and requires_grad as they
            # are, which LoRA (mostly frozen weights) needs.
            from torch.distributed.device_mesh import init_device_mesh
            from torch.distributed.fsdp import fully_shard

            mesh = init_device_mesh("cuda" if self.cuda else "cpu", (self.world,))
            # Shard each transformer block, then the root: a forward gathers one block's
            # weights at a time instead of the whole model.
            for module in model.modules():
                if type(module).__name__.endswith("DecoderLayer"):
                    fully_shard(module, mesh=mesh)
            fully_shard(model, mesh=mesh)
            params = [t for t in model.parameters() if t.requires_grad]
            return model, torch.optim.AdamW(params, lr=lr)
        try:
            import deepspeed
        except ImportError:
            raise ParamError("finetune: strategy 'deepspeed' needs the deepspeed package in the step image"
                             " (pip install 'specops[distributed]')") from None
        # ZeRO-2: optimizer states and gradients sharded over the ranks, weights whole on each
        # (so rank 0 saves the unwrapped module as it is). On CPU it runs over gloo.
        config = {"train_micro_batch_size_per_gpu": 1, "zero_optimization": {"stage": 2},
                  "optimizer": {"type": "AdamW", "params": {"lr": lr}}}
        engine, optimizer, _, _ = deepspeed.initialize(model=model, model_parameters=trainable, config=config)
        return engine, optimizer

    def unwrap(self, model: Any) -> Any:
        return getattr(model, "module", model)

    def mean(self, value: float) -> float:
        import torch
        import torch.distributed as dist

        t = torch.tensor([value], dtype=torch.float64, device=self.device)
        dist.all_reduce(t)
        return float(t.item()) / self.world

    def barrier(self) -> None:
        import torch.distributed as dist

        dist.barrier()

    def close(self) -> None:
        import torch.distributed as dist

        if dist.is_initialized():
            dist.destroy_process_group()
