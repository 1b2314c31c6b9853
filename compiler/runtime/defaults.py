"""Defaults of the fine-tune step, defined once: the spec schema (specops.specs.model) and the
step runtime (specops.runtime.finetune) both read them, so a Model that leaves a knob out
trains the same way whether the step runs from a compiled pipeline or by hand."""

from __future__ import annotations

LORA_R = 16
LORA_ALPHA = 32
LORA_DROPOUT = 0.05
LORA_TARGET_MODULES = ("q_proj", "v_proj")

EPOCHS = 1
LEARNING_RATE = 2e-4
BATCH_SIZE = 8
MAX_SEQ_LENGTH = 2048
