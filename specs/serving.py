"""ServingTarget: a model served by vLLM on GPUs, per environment."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from .common import Accelerator, ImageRef, InstanceType, Name, Ref, Secret, SpecModel


def _kebab(name: str) -> str:
    return name.replace("_", "-")


class EngineArgs(BaseModel):
    """vLLM serve flags, spelled exactly as vLLM spells them (kebab-case).

    The knobs that matter are typed here; any other key is kept and checked by the resolver
    against the flag list of the chosen vLLM version (an unknown or abbreviated flag is an
    error at its line, never passed through).
    """

    model_config = ConfigDict(extra="allow", strict=True, alias_generator=_kebab,
                              populate_by_name=False, frozen=True)

    tensor_parallel_size: int | None = Field(default=None, ge=1)
    pipeline_parallel_size: int | None = Field(default=None, ge=1)
    data_parallel_size: int | None = Field(default=None, ge=1)
    max_model_len: int | None = Field(default=None, ge=16)
    gpu_memory_utilization: float | None = Field(default=None, gt=0.0, le=1.0)
    max_num_seqs: int | None = Field(default=None, ge=1)
    max_num_batched_tokens: int | None = Field(default=None, ge=1)
    dtype: Literal["auto", "half", "float16", "bfloat16", "float", "float32"] | None = None
    quantization: str | None = None
    kv_cache_dtype: str | None = None
    enable_prefix_caching: bool | None = None
    enable_chunked_prefill: bool | None = None
    enable_lora: bool | None = None
    max_loras: int | None = Field(default=None, ge=1)
    max_lora_rank: int | None = Field(default=None, ge=1)
    speculative_config: dict[str, Any] | None = None


class Engine(SpecModel):
    name: Literal["vllm"] = "vllm"
    # vLLM version the args are checked against; defaults to the Project's.
    version: str | None = None
    args: EngineArgs = Field(default_factory=EngineArgs)


class Replicas(SpecModel):
    min: int = Field(default=1, ge=0)
    max: int = Field(default=1, ge=1)


class Canary(SpecModel):
    traffic: int = Field(default=0, ge=0, le=100)


class ServingTargetSpec(SpecModel):
    model: Ref
    # LoRA fine-tuned Models served as adapters on the base.
    adapters: list[Ref] = Field(default_factory=list)
    engine: Engine = Field(default_factory=Engine)
    accelerator: Accelerator
    replicas: Replicas = Field(default_factory=Replicas)
    canary: Canary = Field(default_factory=Canary)
    # Gates that must have passed for the model version before it is served.
    gates: list[Ref] = Field(default_factory=list)
    # SageMaker endpoint instance type (when the target serves on SageMaker).
    instance_type: InstanceType | None = None
    image: ImageRef | None = None
    # Hugging Face token for gated weights. Only secret references.
    hf_token: Secret | None = None
    # Overrides the target's serving platform (a name in the backend registry).
    platform: Name | None = None
