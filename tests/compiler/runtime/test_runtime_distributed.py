"""Distributed fine-tuning for real: torchrun on CPU with the gloo backend, 2 processes, LoRA
on the tiny local Llama (tests/fixtures/tiny_llm.py; nothing is downloaded)."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest
from safetensors import safe_open

from specops.runtime import ParamError, run_step

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures"


def _tiny_llm():
    spec = importlib.util.spec_from_file_location("specops_test_tiny_llm_dist", FIXTURES / "tiny_llm.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


@pytest.fixture(scope="module")
def repo(tmp_path_factory):
    tiny = _tiny_llm()
    base = tmp_path_factory.mktemp("dist")
    root = base / "repo"
    (root / "data").mkdir(parents=True)
    tiny.build_tiny_llama(root / "models" / "tiny-llama")
    tiny.write_sft_jsonl(root / "data" / "support.jsonl", 16)
    ds = {"name": "support", "uri": "file://data/support.jsonl", "splits": {"train": 1.0}}
    run_step("data_check", {"dataset": ds}, inputs={}, output_dir=str(base / "data"), repo_root=str(root))
    return root, base


@pytest.fixture(autouse=True)
def _offline(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("TRANSFORMERS_OFFLINE", "1")


def finetune(repo, base, out: str, **extra) -> dict:
    params = {"base_model": "models/tiny-llama", "method": "lora", "lora": {"r": 4, "alpha": 8},
              "epochs": 2, "learning_rate": 0.01, "batch_size": 2, "max_seq_length": 64, "seed": 0, **extra}
    return run_step("finetune", params, inputs={"data": str(base / "data")}, output_dir=str(base / out),
                    repo_root=str(repo))


def shapes(folder: Path) -> dict[str, tuple]:
    with safe_open(str(folder / "adapter_model.safetensors"), "pt") as f:
        return {k: tuple(f.get_slice(k).get_shape()) for k in f.keys()}


@pytest.mark.slow
def test_two_process_ddp_lora_matches_the_single_process_adapter(repo):
    root, base = repo
    one = finetune(root, base, "one")
    two = finetune(root, base, "two", distributed={"nodes": 1, "nproc_per_node": 2, "strategy": "ddp"})
    assert two["loss_last"] < two["loss_first"], two
    # Each rank takes half of every batch schedule: half the optimizer steps of one process.
    assert two["steps"] == one["steps"] // 2 and two["train_rows"] == one["train_rows"] == 16
    assert shapes(base / "two") == shapes(base / "one") and shapes(base / "two")
    meta = json.loads((base / "two" / "finetune.json").read_text())
    assert meta["distributed"] == {"nodes": 1, "nproc_per_node": 2, "strategy": "ddp"}
    assert json.loads((base / "two" / "adapter_config.json").read_text())["r"] == 4


@pytest.mark.slow
@pytest.mark.parametrize("strategy", ["fsdp", "deepspeed"])
def test_two_process_sharded_lora_matches_the_single_process_adapter(repo, strategy):
    """fsdp: FSDP2 shards the model over 2 gloo processes on CPU and rank 0 gathers the full
    state dict. deepspeed: DeepSpeed 0.19 (the `distributed` extra) on its CPU accelerator over
    gloo, ZeRO-2 sharding the optimizer state. Either way rank 0 saves the adapter in peft's
    layout: the same tensors by name and shape as one process's."""
    root, base = repo
    if not (base / "one").exists():
        finetune(root, base, "one")
    got = finetune(root, base, strategy, distributed={"nodes": 1, "nproc_per_node": 2, "strategy": strategy})
    assert got["loss_last"] < got["loss_first"], got
    assert shapes(base / strategy) == shapes(base / "one") and shapes(base / strategy)
    assert json.loads((base / strategy / "finetune.json").read_text())["distributed"]["strategy"] == strategy
    # The saved adapter is trained, not the initial LoRA B (zeros) of an unsynced shard.
    with safe_open(str(base / strategy / "adapter_model.safetensors"), "pt") as f:
        b = [k for k in f.keys() if "lora_B" in k]
        assert b and all(f.get_tensor(k).abs().sum() > 0 for k in b)


@pytest.mark.slow
def test_more_nodes_than_this_machine_is_refused(repo):
    root, base = repo
    with pytest.raises(ParamError, match="distributed.nodes is 2, but this step runs on one machine"):
        finetune(root, base, "n2", distributed={"nodes": 2, "nproc_per_node": 1, "strategy": "ddp"})
    with pytest.raises(ParamError, match="must be one of ddp, fsdp, deepspeed"):
        finetune(root, base, "bad", distributed={"nodes": 1, "nproc_per_node": 2, "strategy": "horovod"})
