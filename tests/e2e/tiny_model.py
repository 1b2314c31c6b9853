"""Build a tiny Llama-shaped model folder that vLLM's CPU build can serve, offline, in seconds.

Shape (see docs/FACTS.md): hidden 128, 4 attention heads, 2 KV heads, 2 layers, head_dim 32
(vLLM's CPU attention has no kernel for head_dim 16), ~0.56 M parameters, random weights
(seed 0). Tokenizer: byte-level BPE with 1,024 tokens trained by `tokenizers` on text that
ships with Python (the standard library's own sources), so nothing is downloaded.

Usage: `python tests/e2e/tiny_model.py DEST` or `build_tiny_llama(Path(DEST))`.
"""

from __future__ import annotations

import sys
from pathlib import Path

VOCAB_SIZE = 1024
SPECIAL = ["<unk>", "<s>", "</s>"]


def _corpus() -> list[str]:
    """Local English-ish text: docstrings and comments of a few stdlib modules."""
    import argparse
    import inspect
    import json
    import textwrap

    texts = []
    for mod in (argparse, json, textwrap, inspect):
        texts.append(inspect.getsource(mod))
    return texts


def build_tokenizer(dest: Path) -> None:
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE(unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=VOCAB_SIZE, special_tokens=SPECIAL,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
                                  show_progress=False)
    tok.train_from_iterator(_corpus(), trainer=trainer)
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, unk_token="<unk>", bos_token="<s>",
                                   eos_token="</s>")
    fast.save_pretrained(dest)


def build_tiny_llama(dest: Path) -> Path:
    """Write config.json, model.safetensors and tokenizer files under `dest`; return it."""
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    dest.mkdir(parents=True, exist_ok=True)
    build_tokenizer(dest)
    config = LlamaConfig(
        vocab_size=VOCAB_SIZE,
        hidden_size=128,
        intermediate_size=256,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        head_dim=32,
        max_position_embeddings=512,
        bos_token_id=1,
        eos_token_id=2,
        tie_word_embeddings=True,
    )
    torch.manual_seed(0)
    model = LlamaForCausalLM(config).to(torch.float32)
    model.save_pretrained(dest)
    return dest


if __name__ == "__main__":
    out = build_tiny_llama(Path(sys.argv[1]))
    print(out)
