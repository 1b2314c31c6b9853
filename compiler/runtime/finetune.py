"""Step `finetune`: LoRA or full fine-tuning of a local causal LM on prompt/response rows.

Params::

    {"base_model": "models/tiny-llama",   # required: a local folder (repo-relative, file://,
                                          #   or absolute) holding config.json + tokenizer;
                                          #   the runtime never downloads from a hub
     "method": "lora",                    # lora | full (default lora)
     "revision": "0e9e39f2...",           # optional: the base's pinned commit (recorded)
     "lora": {"r": 16, "alpha": 32, "dropout": 0.05,
              "target_modules": ["q_proj", "v_proj"]},   # optional; target_modules null =
                                          #   peft's default for the model type
     "epochs": 1,                         # default 1
     "learning_rate": 0.0002,             # default 2e-4
     "batch_size": 8,                     # default 8
     "max_seq_length": 2048,              # default 2048 (prompt + response tokens, truncated)

Defaults come from specops.runtime.defaults, which the spec schema reads too.
     "prompt_field": "prompt",            # default "prompt"
     "response_field": "response",        # default "response"
     "split": "train",                    # default "train"
     "max_steps": null,                   # optional cap on optimizer steps
     "seed": 0}

Training format: the prompt text is tokenized as the model's tokenizer does by default
(with its BOS when it adds one), the response follows it (no special tokens) with EOS
appended; the loss is on response tokens only. A plain PyTorch loop (AdamW, no
scheduler) on CPU or the first CUDA device, float32, seeded.

Inputs: `data` (a data_check output of format jsonl/csv with the two text fields).
Output: the adapter (`adapter_config.json`, `adapter_model.safetensors`; its
`base_model_name_or_path` is the base_model param as given, not an absolute path) or the full
model (`config.json`, `model.safetensors`), the tokenizer, and `finetune.json`
({framework: "transformers", method, base_model, hyperparameters..., steps, train_rows,
loss_first, loss_last, trainable_params}). Returns {method, base_model, steps, train_rows,
loss_first, loss_last, trainable_params}.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from specops.runtime import defaults as D
from specops.runtime import distributed, write_json
from specops.runtime.common import Params, require_input, resolve_path
from specops.runtime.errors import ParamError
from specops.runtime.tables import load_split

KEYS = ("distributed", "base_model", "revision", "method", "lora", "epochs", "learning_rate", "batch_size", "max_seq_length",
        "prompt_field", "response_field", "split", "max_steps", "seed")
LORA_KEYS = ("r", "alpha", "dropout", "target_modules")


def resolve_base_model(base_model: str, repo_root: Path, where: str) -> Path:
    path = resolve_path(base_model, repo_root, what=f"{where}: base_model", allow_absolute=True)
    if not (path / "config.json").is_file():
        raise ParamError(f"{where}: base_model {base_model!r} is not a local model folder (no config.json);"
                         f" the step runtime loads models only from local folders")
    return path


def run(params: dict, inputs: dict[str, Path], out: Path, repo_root: Path) -> dict:
    p = Params(params, "finetune", KEYS)
    base_model = p.str("base_model")
    base_path = resolve_base_model(base_model, repo_root, "finetune")
    method = p.str("method", "lora", choices=("lora", "full"))
    lp = Params(p.dict("lora", {}), "finetune: lora", LORA_KEYS)
    lora = {
        "r": lp.int("r", D.LORA_R, minimum=1),
        "alpha": lp.float("alpha", float(D.LORA_ALPHA), minimum=0),
        "dropout": lp.float("dropout", D.LORA_DROPOUT, minimum=0),
        "target_modules": lp.list("target_modules", None),
    }
    if lora["target_modules"] is not None and not all(isinstance(m, str) and m for m in lora["target_modules"]):
        raise lp.error("target_modules", "must be a list of module names")
    if method == "full" and params.get("lora"):
        raise p.error("lora", "is only for method 'lora'")
    revision = p.str("revision", None)
    epochs = p.int("epochs", D.EPOCHS, minimum=1)
    lr = p.float("learning_rate", D.LEARNING_RATE, minimum=0)
    batch_size = p.int("batch_size", D.BATCH_SIZE, minimum=1)
    max_len = p.int("max_seq_length", D.MAX_SEQ_LENGTH, minimum=2)
    prompt_field = p.str("prompt_field", "prompt")
    response_field = p.str("response_field", "response")
    split = p.str("split", "train")
    max_steps = p.int("max_steps", None, minimum=1)
    seed = p.int("seed", 0, minimum=0)
    plan = distributed.plan_of(p.dict("distributed", None))
    if plan is not None and not distributed.inside():
        return distributed.relaunch("finetune", params, inputs, out, repo_root, plan)

    _, rows, _ = load_split(require_input(inputs, "data", "finetune"), split, "finetune")
    if not rows:
        raise ParamError(f"finetune: split {split!r} is empty")
    for i, r in enumerate(rows):
        for f in (prompt_field, response_field):
            if not isinstance(r.get(f), str):
                raise ParamError(f"finetune: row {i + 1} of split {split!r} has no text field {f!r}")

    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    torch.manual_seed(seed)
    ctx = distributed.Context(plan) if plan is not None else None
    device = ctx.device if ctx else "cuda" if torch.cuda.is_available() else "cpu"
    tokenizer = AutoTokenizer.from_pretrained(base_path)
    model = AutoModelForCausalLM.from_pretrained(base_path, dtype=torch.float32).to(device)
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    if pad_id is None:
        raise ParamError(f"finetune: the tokenizer of {base_model!r} has neither a pad nor an eos token")

    if method == "lora":
        from peft import LoraConfig, get_peft_model

        cfg = LoraConfig(r=lora["r"], lora_alpha=lora["alpha"], lora_dropout=lora["dropout"],
                         target_modules=lora["target_modules"], task_type="CAUSAL_LM")
        try:
            model = get_peft_model(model, cfg)
        except ValueError as e:  # e.g. target modules that the model does not have
            raise ParamError(f"finetune: LoRA config does not fit {base_model!r}: {e}") from e
    trainable = [t for t in model.parameters() if t.requires_grad]
    n_trainable = sum(t.numel() for t in trainable)

    examples = [encode(tokenizer, r[prompt_field], r[response_field], max_len) for r in rows]
    if ctx is not None:
        model, optimizer = ctx.wrap(model, trainable, lr)
    else:
        optimizer = torch.optim.AdamW(trainable, lr=lr)
    rank, world = (ctx.rank, ctx.world) if ctx else (0, 1)
    gen = torch.Generator().manual_seed(seed)
    losses: list[float] = []
    model.train()
    done = False
    for _ in range(epochs):
        # Every rank draws the same order and takes its own share of it (see distributed.py).
        order = torch.randperm(len(examples), generator=gen).tolist()[rank::world]
        for start in range(0, len(order), batch_size):
            batch = collate([examples[i] for i in order[start:start + batch_size]], pad_id, device)
            loss = model(**batch).loss
            loss.backward()
            optimizer.step()
            optimizer.zero_grad()
            losses.append(ctx.mean(float(loss.detach())) if ctx else float(loss.detach()))
            if max_steps is not None and len(losses) >= max_steps:
                done = True
                break
        if done:
            break

    model.eval()
    state = None
    if ctx is not None:
        model, state = _distributed_save(ctx, model)
        if ctx.rank != 0:  # rank 0 writes the model and finetune.json; the others only train
            ctx.close()
            return _summary(method, base_model, revision, losses, rows, n_trainable)
    if state is not None:
        model.save_pretrained(out, state_dict=state)
    else:
        model.save_pretrained(out)
    tokenizer.save_pretrained(out)
    # peft's model card is an empty template that records this machine's absolute path.
    (out / "README.md").unlink(missing_ok=True)
    if method == "lora":
        # The adapter records where its base lives: keep the spec's value, not this machine's
        # path (set after saving: peft reads the base's config from it while saving).
        cfg_path = out / "adapter_config.json"
        cfg = json.loads(cfg_path.read_text(encoding="utf-8"))
        cfg["base_model_name_or_path"] = base_model
        write_json(cfg_path, cfg)

    import peft
    import transformers

    summary = _summary(method, base_model, revision, losses, rows, n_trainable)
    write_json(out / "finetune.json", {
        **summary,
        "framework": "transformers",
        "transformers_version": transformers.__version__,
        "peft_version": peft.__version__,
        "torch_version": torch.__version__,
        "lora": lora if method == "lora" else None,
        "epochs": epochs,
        "learning_rate": lr,
        "batch_size": batch_size,
        "max_seq_length": max_len,
        "prompt_field": prompt_field,
        "response_field": response_field,
        "seed": seed,
        "losses": [round(x, 6) for x in losses],
        "distributed": {"nodes": plan.nodes, "nproc_per_node": plan.nproc_per_node, "strategy": plan.strategy}
        if plan else None,
    })
    if ctx is not None:
        ctx.close()
    return summary


def _summary(method: str, base_model: str, revision: str | None, losses: list[float], rows: list,
             n_trainable: int) -> dict[str, Any]:
    return {
        "method": method,
        "base_model": base_model,
        "revision": revision,
        "steps": len(losses),
        "train_rows": len(rows),
        "loss_first": round(losses[0], 6),
        "loss_last": round(losses[-1], 6),
        "trainable_params": n_trainable,
    }


def _distributed_save(ctx: Any, model: Any) -> tuple[Any, dict | None]:
    """(the model to save, its full state dict or None) on rank 0, after every rank is done.

    Under FSDP every rank holds a shard: the full state dict is gathered (a collective, so
    every rank calls it) onto rank 0's CPU, and saved through the model's own
    `save_pretrained(state_dict=...)`, which keeps peft's adapter-only layout."""
    ctx.barrier()
    if ctx.plan.strategy == "fsdp":
        from torch.distributed.checkpoint.state_dict import StateDictOptions, get_model_state_dict

        full = get_model_state_dict(model, options=StateDictOptions(full_state_dict=True, cpu_offload=True))
        ctx.barrier()
        return model, (full if ctx.rank == 0 else None)
    return ctx.unwrap(model), None


def encode(tokenizer: Any, prompt: str, response: str, max_len: int) -> dict[str, list[int]]:
    """input_ids and labels (-100 on the prompt) for one example, truncated to max_len."""
    prompt_ids = tokenizer(prompt)["input_ids"]
    response_ids = tokenizer(response, add_special_tokens=False)["input_ids"]
    if tokenizer.eos_token_id is not None:
        response_ids = response_ids + [tokenizer.eos_token_id]
    ids = (prompt_ids + response_ids)[:max_len]
    labels = ([-100] * len(prompt_ids) + response_ids)[:max_len]
    return {"input_ids": ids, "labels": labels}


def collate(examples: list[dict[str, list[int]]], pad_id: int, device: str) -> dict[str, Any]:
    import torch

    width = max(len(e["input_ids"]) for e in examples)
    ids, labels, mask = [], [], []
    for e in examples:
        pad = width - len(e["input_ids"])
        ids.append(e["input_ids"] + [pad_id] * pad)
        labels.append(e["labels"] + [-100] * pad)
        mask.append([1] * len(e["input_ids"]) + [0] * pad)
    return {"input_ids": torch.tensor(ids, device=device), "labels": torch.tensor(labels, device=device),
            "attention_mask": torch.tensor(mask, device=device)}
