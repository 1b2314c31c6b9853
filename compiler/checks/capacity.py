"""GPU capacity planning for vLLM serving targets: does the model fit, how many sequences.

`model_facts()` reads a local `config.json` and counts parameters exactly without torch
(`specops.checks.params`: safetensors headers, the shard index, or a per-architecture formula
checked against transformers' meta-device counts in the tests), so capacity planning runs in
`specops validate` on the core install. `plan()`
checks weights + runtime overhead + KV cache against one GPU of the catalogue
(`specops.gpus`) the way vLLM budgets memory, and returns a `CapacityReport` whose
`to_dict()` is the capacity report JSON (schema `specops.dev/capacity/v1`) written next to
each compiled serve config. Sizes in reports are bytes (exact) plus GiB (rounded to 0.01);
messages speak GiB, as vLLM's logs and nvidia-smi do.

The memory model (vLLM V1 `determine_available_memory`, simplified):

    usable   = visible GPU memory x gpu_memory_utilization
    overhead = NON_TORCH_RESERVE + CUDA_GRAPH_RESERVE
               + max(MIN_ACTIVATION, ACTIVATION_FRACTION x weights per GPU)
    KV budget per GPU = usable - weights per GPU - overhead

The activation term stands in for vLLM's profiled peak; a fraction of the weights is
crude but tracks model width, and the fixed reserves cover the CUDA context, cuBLAS/NCCL
workspaces and CUDA-graph pools. Expect it to be within a GiB or so of vLLM's own figure.

Verdicts: 'does-not-fit' when the weights and overhead exceed the usable memory, the KV
budget cannot hold one sequence at max_model_len, max_model_len exceeds the model's
max_position_embeddings, or the parallelism is invalid; 'tight' when the KV budget holds
fewer than TIGHT_MIN_SEQUENCES sequences at max_model_len or is under TIGHT_HEADROOM of the
usable memory; 'ok' otherwise.

Neither torch nor transformers is imported.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal, Mapping, Sequence

from specops import gpus as _gpus
from specops.backends import jsonfmt
from specops.checks.params import UnknownArchitecture, count_parameters
from specops.diagnostics import Diagnostic, Pos, did_you_mean
from specops.fsio import ReadRefused, read_regular, weights_digest, write_atomic
from specops.ir.nodes import diagnostic_location
from specops.paths import user_cache_dir

GIB = 1 << 30
SCHEMA = "specops.dev/capacity/v1"
FACTS_VERSION = 2  # bump when ModelFacts changes shape or derivation: invalidates the on-disk cache
# A Hugging Face config.json is a few KiB; a bigger "config" is not one.
MAX_CONFIG_BYTES = 1 << 20

# vLLM's default (FACTS.md); it multiplies the memory the driver reports.
DEFAULT_GPU_MEMORY_UTILIZATION = 0.92
NON_TORCH_RESERVE = GIB // 2  # CUDA context growth, cuBLAS and NCCL workspaces
CUDA_GRAPH_RESERVE = GIB // 2  # captured CUDA graphs' memory pool
ACTIVATION_FRACTION = 0.05  # peak activations of vLLM's profiling run, per weight byte
MIN_ACTIVATION = GIB // 4
KV_BLOCK_TOKENS = 16  # vLLM's default block size: a sequence occupies whole blocks
TIGHT_MIN_SEQUENCES = 4
TIGHT_HEADROOM = 0.10

Verdict = Literal["ok", "tight", "does-not-fit"]
AttentionKind = Literal["mha", "gqa", "mla"]

_DTYPE_BYTES = {"float16": 2, "bfloat16": 2, "float32": 4}
_DTYPE_ALIASES = {"half": "float16", "fp16": "float16", "bf16": "bfloat16", "float": "float32",
                  "fp32": "float32"}
_KV_DTYPES = {"fp8": 1, "fp8_e4m3": 1, "fp8_e5m2": 1, "fp8_inc": 1, "float16": 2, "bfloat16": 2}
# Weight bits per quantization method; None means "read `bits` from the quantization_config".
_QUANT_BITS: dict[str, int | None] = {
    "awq": 4, "awq_marlin": 4, "gptq": None, "gptq_marlin": None, "bitsandbytes": 4,
    "fp8": 8, "fbgemm_fp8": 8,
}
# Group-wise int quantization stores an fp16 scale and a packed zero point per 128 weights.
_GROUP_OVERHEAD = 2.5 / 128


class ModelConfigError(ValueError):
    """A config.json that cannot be read or turned into a model; the message says why."""


# ---- model facts ------------------------------------------------------------------------


@dataclass(frozen=True)
class ModelFacts:
    """What capacity planning needs from a model's config.json."""

    config_sha256: str  # of the config.json bytes: the cache key
    model_type: str  # transformers model_type ("llama", "deepseek_v2")
    architecture: str | None  # first of config.architectures
    params: int  # exact count of unique parameters (tied embeddings once)
    embedding_params: int  # input embedding + untied lm_head: kept 16-bit under quantization
    layers: int
    hidden: int
    heads: int  # attention (query) heads
    kv_heads: int  # key/value heads (== heads for MHA; unused for MLA)
    head_dim: int  # query/key head dim (MLA: qk_nope_head_dim + qk_rope_head_dim)
    max_position_embeddings: int
    dtype: str  # config torch_dtype ("bfloat16"); "float32" when absent, as transformers does
    attention: AttentionKind
    kv_lora_rank: int | None  # MLA latent width, else None
    qk_rope_head_dim: int | None  # MLA decoupled rope key width, else None
    vocab: int
    tie_word_embeddings: bool
    quantization: str | None  # quant_method of the config's quantization_config
    quantization_bits: int | None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> ModelFacts:
        return cls(**{k: d[k] for k in cls.__dataclass_fields__})

    def kv_bytes_per_token(self, kv_bytes: int = 2, tensor_parallel_size: int = 1,
                           layers: int | None = None) -> int:
        """KV-cache bytes one token occupies on one GPU.

        GQA/MHA: 2 (K and V) x layers x kv heads on the GPU x head_dim x bytes, where a GPU
        holds max(1, kv_heads / tp) heads (vLLM replicates heads when tp > kv_heads).
        MLA: layers x (kv_lora_rank + qk_rope_head_dim) x bytes; the latent is replicated on
        every tensor-parallel rank, so tp does not divide it.
        """
        n_layers = self.layers if layers is None else layers
        if self.attention == "mla":
            assert self.kv_lora_rank is not None and self.qk_rope_head_dim is not None
            return n_layers * (self.kv_lora_rank + self.qk_rope_head_dim) * kv_bytes
        heads_per_gpu = max(1, self.kv_heads // tensor_parallel_size)
        return 2 * n_layers * heads_per_gpu * self.head_dim * kv_bytes


_FACTS_CACHE: dict[str, ModelFacts] = {}
# Disk entries this process has read or written (and found holding its facts).
_ON_DISK: set[Path] = set()


def _dtype_name(value: Any) -> str:
    text = str(value or "float32").removeprefix("torch.")
    return _DTYPE_ALIASES.get(text, text)


def _facts_from_config(raw: bytes, source: Path, sha: str) -> ModelFacts:
    """Facts from config.json alone (plus the folder's safetensors metadata): no torch."""
    cfg = json.loads(raw)
    if not isinstance(cfg, dict):
        raise ModelConfigError(f"{source.name} is not a JSON object")
    # Multimodal configs nest the language model's settings.
    text = cfg["text_config"] if isinstance(cfg.get("text_config"), dict) and "hidden_size" not in cfg else cfg
    if "model_type" not in text and "model_type" in cfg:
        text = {**text, "model_type": cfg["model_type"]}
    dtype = _dtype_name(text.get("torch_dtype") or text.get("dtype") or cfg.get("torch_dtype"))
    try:
        params, embedding, _how = count_parameters(source.parent, text, dtype)
        heads = int(text["num_attention_heads"])
        hidden = int(text["hidden_size"])
        layers = int(text["num_hidden_layers"])
        vocab = int(text["vocab_size"])
    except UnknownArchitecture:
        raise
    except (KeyError, TypeError, ValueError) as e:
        raise ModelConfigError(f"{source.name}: cannot read a '{text.get('model_type')}' model from it: {e}") from e
    kv_lora = text.get("kv_lora_rank")
    if kv_lora:
        attention: AttentionKind = "mla"
        rope = int(text["qk_rope_head_dim"])
        head_dim = int(text.get("qk_nope_head_dim") or 0) + rope
        kv_heads = heads
    else:
        rope = None
        kv_heads = int(text.get("num_key_value_heads") or heads)
        attention = "mha" if kv_heads == heads else "gqa"
        head_dim = int(text.get("head_dim") or hidden // heads)
    qcfg = cfg.get("quantization_config") or {}
    quant = qcfg.get("quant_method") if isinstance(qcfg, dict) else None
    bits = qcfg.get("bits") if isinstance(qcfg, dict) else None
    if bits is None and quant:
        bits = _QUANT_BITS.get(str(quant))
    archs = cfg.get("architectures") or []
    tied = embedding == vocab * hidden
    return ModelFacts(
        config_sha256=sha, model_type=str(text.get("model_type", "")), architecture=str(archs[0]) if archs else None,
        params=int(params), embedding_params=int(embedding), layers=layers, hidden=hidden, heads=heads,
        kv_heads=kv_heads, head_dim=head_dim,
        max_position_embeddings=int(text.get("max_position_embeddings") or 0), dtype=dtype,
        attention=attention, kv_lora_rank=int(kv_lora) if kv_lora else None, qk_rope_head_dim=rope,
        vocab=vocab, tie_word_embeddings=tied, quantization=str(quant) if quant else None,
        quantization_bits=int(bits) if bits else None,
    )


def model_facts(config_path: str | os.PathLike[str], *, cache_dir: str | os.PathLike[str] | None = None) -> ModelFacts:
    """Facts about the model a local config.json describes (a file, or a folder holding one).

    Cached by the sha256 of the config bytes in-process, and under `cache_dir` when given
    (one small JSON file per config), because building the model costs about a second.
    Raises ModelConfigError with a one-line cause.
    """
    path = Path(config_path)
    if path.is_dir():
        path = path / "config.json"
    try:
        raw = read_regular(path, MAX_CONFIG_BYTES)
    except ReadRefused as e:
        raise ModelConfigError(f"model config {path.name}: {e}") from None
    except OSError as e:
        raise ModelConfigError(f"cannot read model config {path.name}: {e.strerror or e}") from e
    try:
        json.loads(raw)
    except ValueError as e:
        raise ModelConfigError(f"{path.name} is not valid JSON: {e}") from e
    sha = hashlib.sha256(raw).hexdigest()
    key = _cache_key(sha, path.parent)
    disk = Path(cache_dir) / f"model-facts-v{FACTS_VERSION}-{key}.json" if cache_dir else None
    facts = _FACTS_CACHE.get(key)
    if facts is not None and (disk is None or disk in _ON_DISK):
        # This process already read or wrote that disk entry (validate asks once per serving
        # target and environment: re-reading it each time was half of the capacity check).
        return facts
    if facts is None and disk is not None:
        facts = _read_cached(disk, sha)
        if facts is not None:
            _FACTS_CACHE[key] = facts
            _ON_DISK.add(disk)
            return facts
    if facts is None:
        facts = _facts_from_config(raw, path, sha)
        _FACTS_CACHE[key] = facts
    if disk is not None:
        if _read_cached(disk, sha) != facts:
            _write_atomic(disk, facts)
        _ON_DISK.add(disk)
    return facts


def _cache_key(config_sha: str, folder: Path) -> str:
    """The config's hash, plus the digest of the weights' headers and shard index beside it
    (they feed the count): a header that changes, even with the file's size, gets new facts."""
    weights = weights_digest(folder)
    if weights is None:
        return config_sha
    return hashlib.sha256(f"{config_sha}\n{weights}".encode()).hexdigest()


def _read_cached(disk: Path, sha: str) -> ModelFacts | None:
    """Facts from the on-disk cache; None when absent, corrupt or for other bytes."""
    try:
        facts = ModelFacts.from_dict(json.loads(disk.read_text(encoding="utf-8")))
    except (ValueError, KeyError, TypeError, AttributeError, OSError):
        return None
    return facts if facts.config_sha256 == sha else None


def _write_atomic(disk: Path, facts: ModelFacts) -> None:

    # Atomic: a concurrent reader sees the old file or the new one.
    write_atomic(disk, (json.dumps(facts.to_dict(), sort_keys=True, indent=2) + "\n").encode("utf-8"))


# ---- settings -------------------------------------------------------------------------


def _choice_error(what: str, value: str, known: Sequence[str]) -> ValueError:
    best = did_you_mean(value, known)
    hint = f"; did you mean '{best}'?" if best else ""
    return ValueError(f"unknown {what} '{value}'{hint} (known: {', '.join(known)})")


def resolve_dtype(dtype: str, facts: ModelFacts) -> str:
    """vLLM's rule: 'auto' takes the config dtype, except float32 models run in float16."""
    d = _DTYPE_ALIASES.get(dtype.lower(), dtype.lower())
    if d == "auto":
        d = facts.dtype if facts.dtype in _DTYPE_BYTES else "bfloat16"
        return "float16" if d == "float32" else d
    if d not in _DTYPE_BYTES:
        raise _choice_error("dtype", dtype, ["auto", *sorted(_DTYPE_BYTES)])
    return d


def resolve_kv_cache_dtype(kv_cache_dtype: str, model_dtype: str) -> tuple[str, int]:
    """('auto' -> the model's dtype) and the bytes one element takes."""
    k = _DTYPE_ALIASES.get(kv_cache_dtype.lower(), kv_cache_dtype.lower())
    if k == "auto":
        return model_dtype, _DTYPE_BYTES[model_dtype]
    if k not in _KV_DTYPES:
        raise _choice_error("kv-cache-dtype", kv_cache_dtype, ["auto", *sorted(_KV_DTYPES)])
    return k, _KV_DTYPES[k]


def weight_bytes(facts: ModelFacts, dtype: str, quantization: str | None) -> tuple[int, float]:
    """Total weight bytes and bytes per (non-embedding) parameter.

    Quantized methods shrink the linear layers; embeddings and the lm_head stay in the
    activation dtype, as AWQ/GPTQ/fp8 checkpoints keep them.
    """
    full = _DTYPE_BYTES[dtype]
    if quantization is None:
        return facts.params * full, float(full)
    q = quantization.lower()
    if q not in _QUANT_BITS:
        raise _choice_error("quantization", quantization, sorted(_QUANT_BITS))
    bits = _QUANT_BITS[q] or (facts.quantization_bits if facts.quantization == q else None) or 4
    per = bits / 8 + (0 if q in ("fp8", "fbgemm_fp8") else _GROUP_OVERHEAD)
    linear = facts.params - facts.embedding_params
    return math.ceil(linear * per) + facts.embedding_params * full, per


# ---- the report -----------------------------------------------------------------------


def _gib(n: float) -> float:
    return round(n / GIB, 2)


@dataclass(frozen=True)
class CapacityReport:
    """The capacity plan of one model on one GPU type (all memory figures per GPU)."""

    label: str  # what the table calls the model (ServingTarget name or model_type)
    facts: ModelFacts
    gpu: _gpus.GPU
    gpu_count: int
    tensor_parallel_size: int
    pipeline_parallel_size: int
    engines: int  # data-parallel vLLM engines the GPUs hold (count // (tp x pp))
    suggested_tensor_parallel_size: int | None  # smallest TP that fits ('ok' before 'tight')
    max_model_len: int
    gpu_memory_utilization: float
    dtype: str  # resolved weight/activation dtype
    kv_cache_dtype: str  # resolved
    quantization: str | None
    max_num_seqs: int | None
    weight_bytes_per_param: float
    weights_total_bytes: int
    usable_bytes: int  # visible x utilisation
    weights_bytes: int  # per GPU
    overhead_bytes: int  # per GPU
    kv_budget_bytes: int  # per GPU; negative when the weights alone do not fit
    kv_bytes_per_token: int  # whole model, unsharded (the familiar per-token figure)
    kv_bytes_per_token_per_gpu: int
    kv_bytes_per_sequence: int  # per GPU, at max_model_len rounded up to whole blocks
    kv_tokens: int  # tokens the KV budget holds per engine
    max_sequences: int  # sequences of max_model_len tokens the KV budget holds, per engine
    headroom: float  # KV budget / usable memory
    verdict: Verdict
    reason: str  # one line, with the numbers behind the verdict
    instance: _gpus.Instance | None = None
    instance_count: int = 0
    usd_per_hour: float | None = None
    options: tuple[_gpus.Instance, ...] = ()  # the smallest fitting instance per provider
    notes: tuple[str, ...] = field(default=())

    @property
    def fits(self) -> bool:
        return self.verdict != "does-not-fit"

    @property
    def max_concurrent_sequences(self) -> int:
        """Sequences at max_model_len all engines hold at once (capped by max_num_seqs)."""
        per = self.max_sequences if self.max_num_seqs is None else min(self.max_sequences, self.max_num_seqs)
        return per * self.engines

    def to_dict(self) -> dict[str, Any]:
        f = self.facts
        return {
            "schema": SCHEMA,
            "label": self.label,
            "verdict": self.verdict,
            "reason": self.reason,
            "notes": list(self.notes),
            "model": {
                "config_sha256": f.config_sha256,
                "model_type": f.model_type,
                "architecture": f.architecture,
                "params": f.params,
                "layers": f.layers,
                "hidden": f.hidden,
                "heads": f.heads,
                "kv_heads": f.kv_heads,
                "head_dim": f.head_dim,
                "attention": f.attention,
                "kv_lora_rank": f.kv_lora_rank,
                "qk_rope_head_dim": f.qk_rope_head_dim,
                "vocab": f.vocab,
                "max_position_embeddings": f.max_position_embeddings,
                "dtype": f.dtype,
            },
            "gpu": {**self.gpu.to_dict(), "count": self.gpu_count},
            "settings": {
                "tensor_parallel_size": self.tensor_parallel_size,
                "pipeline_parallel_size": self.pipeline_parallel_size,
                "max_model_len": self.max_model_len,
                "gpu_memory_utilization": self.gpu_memory_utilization,
                "dtype": self.dtype,
                "kv_cache_dtype": self.kv_cache_dtype,
                "quantization": self.quantization,
                "max_num_seqs": self.max_num_seqs,
            },
            "parallelism": {
                "engines": self.engines,
                "suggested_tensor_parallel_size": self.suggested_tensor_parallel_size,
            },
            "memory_per_gpu": {
                "usable_bytes": self.usable_bytes,
                "weights_bytes": self.weights_bytes,
                "overhead_bytes": self.overhead_bytes,
                "kv_cache_bytes": self.kv_budget_bytes,
                "usable_gib": _gib(self.usable_bytes),
                "weights_gib": _gib(self.weights_bytes),
                "overhead_gib": _gib(self.overhead_bytes),
                "kv_cache_gib": _gib(self.kv_budget_bytes),
                "headroom": round(self.headroom, 4),
            },
            "weights": {
                "total_bytes": self.weights_total_bytes,
                "bytes_per_param": round(self.weight_bytes_per_param, 4),
            },
            "kv_cache": {
                "bytes_per_token": self.kv_bytes_per_token,
                "bytes_per_token_per_gpu": self.kv_bytes_per_token_per_gpu,
                "bytes_per_sequence_per_gpu": self.kv_bytes_per_sequence,
                "tokens_per_engine": self.kv_tokens,
                "max_sequences_at_max_model_len": self.max_sequences,
                "max_concurrent_sequences": self.max_concurrent_sequences,
            },
            "cost": {
                "instance": self.instance.to_dict() if self.instance else None,
                "instance_count": self.instance_count,
                "usd_per_hour": self.usd_per_hour,
                "prices": _gpus.PRICES_AS_OF,
                "options": [i.to_dict() for i in self.options],
            },
        }

    def to_json(self) -> str:
        return jsonfmt.pretty(self.to_dict()) + "\n"

    def to_diagnostic(self, file: str | None = None, pos: Pos | None = None) -> Diagnostic | None:
        """'capacity' error or 'capacity-tight' warning at the spec's position; None if ok."""
        if self.verdict == "ok":
            return None
        sev, code = ("error", "capacity") if self.verdict == "does-not-fit" else ("warning", "capacity-tight")
        return Diagnostic(sev, code, f"{self.label}: {self.reason}", file, pos, self.notes)


# ---- planning -------------------------------------------------------------------------


def _overhead(weights_per_gpu: int) -> int:
    activation = max(MIN_ACTIVATION, int(ACTIVATION_FRACTION * weights_per_gpu))
    return NON_TORCH_RESERVE + CUDA_GRAPH_RESERVE + activation


def _tp_problem(facts: ModelFacts, tp: int) -> str | None:
    """Why vLLM would refuse this tensor-parallel size, or None."""
    if facts.heads % tp:
        return f"tensor_parallel_size {tp} does not divide the model's {facts.heads} attention heads"
    if facts.attention != "mla":
        kv = facts.kv_heads
        if (tp <= kv and kv % tp) or (tp > kv and tp % kv):
            return f"tensor_parallel_size {tp} and the model's {kv} KV heads do not divide one another"
    return None


def _cost(g: _gpus.GPU, count: int, provider: str | None, instance_type: str | None,
          ) -> tuple[_gpus.Instance | None, int, float | None, tuple[_gpus.Instance, ...], list[str]]:
    notes: list[str] = []
    per_provider: dict[str, tuple[_gpus.Instance, int]] = {}
    for p in _gpus.PROVIDERS:
        fits = _gpus.instances_for(g, p, count)
        if fits:
            per_provider[p] = (fits[0], 1)
        else:  # more GPUs than one instance holds: several of the largest
            largest = sorted((i for i in g.instances if i.provider == p), key=lambda i: i.gpu_count)
            if largest:
                per_provider[p] = (largest[-1], math.ceil(count / largest[-1].gpu_count))
    options = [per_provider[p][0] for p in _gpus.PROVIDERS if p in per_provider and p != "onprem"]

    chosen: tuple[_gpus.Instance, int] | None = None
    if instance_type:
        inst = _gpus.instance(instance_type)
        if inst.gpu != g.name:
            notes.append(f"instance type {inst.name} holds {inst.gpu} GPUs, not {g.name}")
        chosen = (inst, math.ceil(count / inst.gpu_count))
    elif provider:
        chosen = per_provider.get(_gpus.provider_name(provider))
        if chosen is None:
            notes.append(f"{provider} offers no instance type with {g.name} GPUs in the catalogue")
    else:  # cheapest known price among the clouds' smallest fitting instances
        priced = [per_provider[i.provider] for i in options if i.usd_per_hour is not None]
        if priced:
            chosen = min(priced, key=lambda t: (t[0].usd_per_hour * t[1], t[0].name))
    if chosen is None:
        return None, 0, None, tuple(options), notes
    inst, n = chosen
    price = round(inst.usd_per_hour * n, 4) if inst.usd_per_hour is not None else None
    return inst, n, price, tuple(options), notes


def _evaluate(facts: ModelFacts, g: _gpus.GPU, count: int, tp: int, pp: int, max_len: int, util: float,
              dtype: str, kv_dtype: str, kv_bytes: int, quant: str | None, max_num_seqs: int | None,
              label: str) -> dict[str, Any]:
    total, per_param = weight_bytes(facts, dtype, quant)
    usable = int(g.visible_memory_bytes * util)
    weights = math.ceil(total / (tp * pp))
    overhead = _overhead(weights)
    budget = usable - weights - overhead
    stage_layers = math.ceil(facts.layers / pp)
    per_tok = facts.kv_bytes_per_token(kv_bytes, tp, stage_layers)
    seq_tokens = math.ceil(max_len / KV_BLOCK_TOKENS) * KV_BLOCK_TOKENS
    per_seq = per_tok * seq_tokens
    tokens = max(0, budget) // per_tok
    seqs = max(0, budget) // per_seq
    headroom = budget / usable if usable else 0.0
    engines = count // (tp * pp) if tp * pp <= count else 0

    weight_text = (f"{facts.params / 1e9:.2f} B params x {per_param:g} B"
                   + (f" {quant}" if quant else f" {dtype}") + (f", TP={tp}" if tp > 1 else "")
                   + (f", PP={pp}" if pp > 1 else ""))
    avail = f"one {g.name} has {_gib(usable)} GiB usable at {util:g} utilisation"
    kv_text = f"{_gib(per_seq)} GiB per sequence at max_model_len {max_len}"
    verdict: Verdict
    problem = _tp_problem(facts, tp)
    if max_len > facts.max_position_embeddings > 0:
        verdict, reason = "does-not-fit", (
            f"max_model_len {max_len} exceeds the model's max_position_embeddings "
            f"{facts.max_position_embeddings}")
    elif problem:
        verdict, reason = "does-not-fit", problem
    elif pp > facts.layers:
        verdict, reason = "does-not-fit", (
            f"pipeline_parallel_size {pp} exceeds the model's {facts.layers} layers")
    elif tp * pp > count:
        verdict, reason = "does-not-fit", (
            f"tensor_parallel_size {tp} x pipeline_parallel_size {pp} needs {tp * pp} GPUs "
            f"but the target has {count}")
    elif weights + overhead > usable:
        verdict, reason = "does-not-fit", (
            f"weights need {_gib(weights)} GiB per GPU ({weight_text}) plus {_gib(overhead)} GiB "
            f"runtime overhead, but {avail}; the KV cache needs {kv_text} on top")
    elif seqs < 1:
        verdict, reason = "does-not-fit", (
            f"the KV cache cannot hold one sequence: {_gib(budget)} GiB left per GPU after "
            f"{_gib(weights)} GiB weights and {_gib(overhead)} GiB overhead, but it needs {kv_text} "
            f"({per_tok} B/token)")
    elif seqs < TIGHT_MIN_SEQUENCES or headroom < TIGHT_HEADROOM:
        verdict = "tight"
        why = (f"holds only {seqs} sequence{'s' if seqs != 1 else ''} at max_model_len {max_len} "
               f"(fewer than {TIGHT_MIN_SEQUENCES})" if seqs < TIGHT_MIN_SEQUENCES else
               f"is only {headroom:.1%} of usable memory (under {TIGHT_HEADROOM:.0%})")
        reason = (f"KV cache of {_gib(budget)} GiB per GPU {why}, after {_gib(weights)} GiB weights "
                  f"({weight_text}) and {_gib(overhead)} GiB overhead on {_gib(usable)} GiB usable")
    else:
        verdict = "ok"
        reason = (f"fits: {_gib(weights)} GiB weights ({weight_text}) + {_gib(overhead)} GiB overhead "
                  f"of {_gib(usable)} GiB usable per {g.name}; {_gib(budget)} GiB KV cache holds "
                  f"{seqs} sequences of {max_len} tokens")
    return dict(
        label=label, facts=facts, gpu=g, gpu_count=count, tensor_parallel_size=tp,
        pipeline_parallel_size=pp, engines=engines, max_model_len=max_len,
        gpu_memory_utilization=util, dtype=dtype, kv_cache_dtype=kv_dtype, quantization=quant,
        max_num_seqs=max_num_seqs, weight_bytes_per_param=per_param, weights_total_bytes=total,
        usable_bytes=usable, weights_bytes=weights, overhead_bytes=overhead, kv_budget_bytes=budget,
        kv_bytes_per_token=facts.kv_bytes_per_token(kv_bytes, 1),
        kv_bytes_per_token_per_gpu=per_tok, kv_bytes_per_sequence=per_seq, kv_tokens=tokens,
        max_sequences=seqs, headroom=headroom, verdict=verdict, reason=reason,
    )


_RANK = {"ok": 0, "tight": 1, "does-not-fit": 2}


def _tp_candidates(facts: ModelFacts, count: int, pp: int, upto: int | None = None) -> list[int]:
    """Powers of two (and the whole GPU count) up to the GPUs available per pipeline stage."""
    limit = upto if upto is not None else max(1, count // max(1, pp))
    cands = {1 << i for i in range(limit.bit_length()) if (1 << i) <= limit} | {limit}
    return sorted(t for t in cands if _tp_problem(facts, t) is None)


def plan(
    facts: ModelFacts,
    *,
    gpu: str | _gpus.GPU,
    count: int = 1,
    tensor_parallel_size: int | None = None,
    pipeline_parallel_size: int = 1,
    max_model_len: int | None = None,
    gpu_memory_utilization: float = DEFAULT_GPU_MEMORY_UTILIZATION,
    dtype: str = "auto",
    kv_cache_dtype: str = "auto",
    quantization: str | None = None,
    max_num_seqs: int | None = None,
    provider: str | None = None,
    instance_type: str | None = None,
    label: str | None = None,
) -> CapacityReport:
    """Plan `facts` on `count` GPUs of type `gpu` with the given vLLM engine settings.

    `tensor_parallel_size=None` picks the smallest TP (a power of two, or the GPU count,
    dividing the attention heads) whose verdict is 'ok', else 'tight', else the largest.
    `quantization=None` takes the config's own quantization_config. `max_model_len=None`
    is the model's max_position_embeddings (vLLM's default). Invalid names (GPU, dtype,
    quantization) raise ValueError with a did-you-mean; everything else is a verdict.
    """
    g = _gpus.gpu(gpu) if isinstance(gpu, str) else gpu
    if count < 1:
        raise ValueError(f"GPU count must be at least 1, got {count}")
    if not 0 < gpu_memory_utilization <= 1:
        raise ValueError(f"gpu_memory_utilization must be in (0, 1], got {gpu_memory_utilization}")
    if tensor_parallel_size is not None and int(tensor_parallel_size) < 1:
        raise ValueError(f"tensor_parallel_size must be at least 1, got {tensor_parallel_size}")
    if int(pipeline_parallel_size) < 1:
        raise ValueError(f"pipeline_parallel_size must be at least 1, got {pipeline_parallel_size}")
    wdtype = resolve_dtype(dtype, facts)
    kv_name, kv_bytes = resolve_kv_cache_dtype(kv_cache_dtype, wdtype)
    quant = (quantization or facts.quantization)
    quant = quant.lower() if quant else None
    if quant is not None and quant not in _QUANT_BITS:
        raise _choice_error("quantization", quant, sorted(_QUANT_BITS))
    max_len = int(max_model_len or facts.max_position_embeddings or 2048)
    pp = int(pipeline_parallel_size)
    name = label or facts.model_type

    def run(tp: int) -> dict[str, Any]:
        return _evaluate(facts, g, count, tp, pp, max_len, gpu_memory_utilization, wdtype, kv_name,
                         kv_bytes, quant, max_num_seqs, name)

    cands = _tp_candidates(facts, count, pp)
    trials = {t: run(t) for t in cands}
    best = min(trials.values(), key=lambda r: (_RANK[r["verdict"]], r["tensor_parallel_size"]), default=None)
    suggested = best["tensor_parallel_size"] if best and best["verdict"] != "does-not-fit" else None
    if tensor_parallel_size is not None:
        result = run(int(tensor_parallel_size))
    elif best is not None and best["verdict"] != "does-not-fit":
        result = best
    else:  # nothing fits: show the largest TP, the closest to fitting
        result = trials[cands[-1]] if cands else run(1)

    notes: list[str] = []
    if result["verdict"] == "does-not-fit" and result["reason"].startswith("weights need"):
        need = _min_gpus(facts, g, pp, max_len, gpu_memory_utilization, wdtype, kv_name, kv_bytes, quant)
        if need:
            result["reason"] += f"; needs at least {need} x {g.name} (tensor_parallel_size {need})"
    if suggested is not None and suggested != result["tensor_parallel_size"]:
        notes.append(f"tensor_parallel_size {suggested} would be enough "
                     f"({trials[suggested]['verdict']}) on these {count} GPUs")
    used = result["tensor_parallel_size"] * pp
    if result["verdict"] != "does-not-fit" and count % used:
        notes.append(f"{count % used} of {count} GPUs idle: {count} is not a multiple of TP x PP = {used}")
    if max_num_seqs is not None and 0 < result["max_sequences"] < max_num_seqs:
        notes.append(f"max_num_seqs {max_num_seqs} exceeds the {result['max_sequences']} sequences the KV "
                     f"cache holds at max_model_len; vLLM admits fewer full-length requests at once")

    inst, n, price, options, cost_notes = _cost(g, count, provider, instance_type)
    return CapacityReport(**result, suggested_tensor_parallel_size=suggested, instance=inst,
                          instance_count=n, usd_per_hour=price, options=options,
                          notes=tuple(notes + cost_notes))


def _min_gpus(facts: ModelFacts, g: _gpus.GPU, pp: int, max_len: int, util: float, dtype: str,
              kv_name: str, kv_bytes: int, quant: str | None) -> int | None:
    """The smallest valid TP (up to 64) that at least fits, for the 'needs N GPUs' hint."""
    for tp in _tp_candidates(facts, 64 * pp, pp, upto=64):
        r = _evaluate(facts, g, tp * pp, tp, pp, max_len, util, dtype, kv_name, kv_bytes, quant, None, "")
        if r["verdict"] != "does-not-fit":
            return tp
    return None


# vLLM serve flags (kebab-case, as ServingTarget engine args hold them) -> plan() keywords.
_ENGINE_ARGS = {
    "tensor-parallel-size": "tensor_parallel_size",
    "pipeline-parallel-size": "pipeline_parallel_size",
    "max-model-len": "max_model_len",
    "gpu-memory-utilization": "gpu_memory_utilization",
    "dtype": "dtype",
    "kv-cache-dtype": "kv_cache_dtype",
    "quantization": "quantization",
    "max-num-seqs": "max_num_seqs",
}


def plan_engine_args(facts: ModelFacts, engine_args: Mapping[str, Any], *, gpu: str | _gpus.GPU,
                     count: int = 1, provider: str | None = None, instance_type: str | None = None,
                     label: str | None = None) -> CapacityReport:
    """`plan()` from a mapping of vLLM serve flags (dashes or underscores); others ignored."""
    kw: dict[str, Any] = {}
    for key, value in engine_args.items():
        name = _ENGINE_ARGS.get(str(key).replace("_", "-"))
        if name is not None and value is not None:
            kw[name] = value
    # The same plan is asked for twice per serving target and environment (its check, then
    # the compile's report): a report is immutable, so the second ask takes the first's (and
    # drops it from the memo, which then holds only plans not asked for twice yet).
    # Keyed by value and type (4096 and 4096.0 are equal keys but not equal reports); only
    # scalars, so no container can hold equal items of other types.
    values = (gpu, count, provider, instance_type, label, *kw.values())
    memo_key = ((id(facts), *((type(v), v) for v in values), *kw)
                if all(type(v) in _SCALARS for v in values) else None)
    hit = _PLANS.pop(memo_key, None) if memo_key is not None else None
    if hit is not None and hit[0] is facts:
        return hit[1]
    report = plan(facts, gpu=gpu, count=count, provider=provider, instance_type=instance_type, label=label, **kw)
    if memo_key is not None:
        if len(_PLANS) >= _PLANS_MAX:
            del _PLANS[next(iter(_PLANS))]
        _PLANS[memo_key] = (facts, report)  # holding `facts` keeps its id from being reused
    return report


_PLANS: dict[tuple, tuple[ModelFacts, CapacityReport]] = {}
_SCALARS = frozenset({str, int, float, bool, type(None)})
_PLANS_MAX = 8192  # every serving target of every environment at 10,000 specs


# ---- rendering ------------------------------------------------------------------------

_COLUMNS = ("model", "gpu", "tp", "pp", "max len", "weights/GPU", "KV/GPU", "seqs@len", "$/h", "verdict")


def _row(r: CapacityReport) -> tuple[str, ...]:
    price = "-" if r.usd_per_hour is None else f"{r.usd_per_hour:.2f}"
    return (
        r.label, f"{r.gpu_count}x {r.gpu.name}", str(r.tensor_parallel_size), str(r.pipeline_parallel_size),
        str(r.max_model_len), f"{_gib(r.weights_bytes):.2f} GiB", f"{_gib(r.kv_budget_bytes):.2f} GiB",
        str(r.max_sequences), price, r.verdict,
    )


def render_table(reports: Sequence[CapacityReport], *, reasons: bool = True) -> str:
    """A plain-text table, columns aligned (numbers right-aligned), one row per report.

    With `reasons`, each non-ok report's one-line reason follows the table.
    """
    rows = [_COLUMNS] + [_row(r) for r in reports]
    widths = [max(len(row[i]) for row in rows) for i in range(len(_COLUMNS))]
    numeric = {2, 3, 4, 5, 6, 7, 8}

    def fmt(row: tuple[str, ...]) -> str:
        cells = [c.rjust(w) if i in numeric else c.ljust(w) for i, (c, w) in enumerate(zip(row, widths))]
        return "  ".join(cells).rstrip()

    lines = [fmt(rows[0]), "  ".join("-" * w for w in widths)] + [fmt(r) for r in rows[1:]]
    if reasons:
        extra = [f"{r.label} on {r.gpu_count}x {r.gpu.name}: {r.verdict}: {r.reason}"
                 for r in reports if r.verdict != "ok"]
        if extra:
            lines += [""] + extra
    return "\n".join(lines) + "\n"


# Startup budget: a base for the server's own start and CUDA-graph capture, plus a minute per
# STARTUP_GIB_PER_MINUTE GiB of weights to download and load (a conservative ~70 MB/s).
STARTUP_BASE_S = 600
STARTUP_GIB_PER_MINUTE = 4
STARTUP_PERIOD_S = 10


def startup_probe(report: CapacityReport) -> dict[str, Any]:
    """Startup-probe timings that suit the model's size (its weights' bytes)."""
    minutes = math.ceil(report.weights_total_bytes / GIB / STARTUP_GIB_PER_MINUTE)
    budget = STARTUP_BASE_S + 60 * minutes
    return {"path": "/health", "periodSeconds": STARTUP_PERIOD_S,
            "failureThreshold": math.ceil(budget / STARTUP_PERIOD_S)}


def capacity_report(root: Path, s: Any) -> "CapacityReport | Diagnostic":
    """The capacity report of one lowered serving node (`ir.Serving`), or a diagnostic at the
    spec's line when planning fails. Model facts depend only on the config's bytes, so they
    are cached per user, never in the repo."""
    try:
        facts = model_facts(Path(root) / s.model_config, cache_dir=user_cache_dir() / "model-facts")
        return plan_engine_args(facts, s.engine_args, gpu=s.accelerator, count=s.accelerator_count,
                                provider=s.target.provider if s.target.provider != "local" else None,
                                instance_type=s.instance_type, label=f"{s.name} ({s.env})")
    except UnknownArchitecture as e:
        return Diagnostic("warning", "capacity-skipped", f"capacity not planned: {e}", *diagnostic_location(s.source))
    except (ValueError, OSError) as e:
        return Diagnostic("error", "capacity", f"capacity planning failed: {e}", *diagnostic_location(s.source))
