"""Parameter counts without torch: safetensors headers, the shard index, or exact formulas.

Capacity planning runs in `specops validate` on the core install (no torch, no
transformers) and must answer in well under a second. Counts come, in order of preference:

1. `headers`: the `*.safetensors` files in the model folder. Each file starts with an 8-byte
   little-endian header length and a JSON header giving every tensor's dtype and shape, so
   the count is exact and costs one small read per file (the weights are never read).
2. `index`: `model.safetensors.index.json`, whose `metadata.total_size` is the weights' size in
   bytes; divided by the config dtype's width it is the count when all tensors share it.
3. `formula`: an exact count over `config.json` for the architectures specops knows, the way
   transformers builds them: Llama, Mistral, Qwen2, Gemma (1, 2, 3), Mixtral-style MoE and
   DeepSeek-style MLA (V2, V3). tests/compiler/checks/test_params.py checks each formula
   against transformers' own count on the meta device wherever torch is installed.

Anything else raises UnknownArchitecture, which validate reports as a warning at the model's
line (capacity is then not planned), not an error.
"""

from __future__ import annotations

import json
import struct
from math import prod
from pathlib import Path
from typing import Any, Callable, Mapping

from specops.fsio import SAFETENSORS_MAX_HEADER

# Bytes per element of the safetensors dtypes.
_ST_BYTES = {"F64": 8, "I64": 8, "U64": 8, "F32": 4, "I32": 4, "U32": 4, "F16": 2, "BF16": 2, "I16": 2,
             "U16": 2, "F8_E4M3": 1, "F8_E5M2": 1, "I8": 1, "U8": 1, "BOOL": 1}
_CONFIG_BYTES = {"float32": 4, "float16": 2, "bfloat16": 2, "float": 4, "half": 2}
EMBED_NAMES = ("model.embed_tokens.weight", "lm_head.weight")


class UnknownArchitecture(ValueError):
    """No weights in the folder and no formula for this model_type."""


def _get(cfg: Mapping[str, Any], key: str, default: Any = None) -> Any:
    v = cfg.get(key)
    return default if v is None else v


# ---- from the weights' metadata -----------------------------------------------------------


def _header(path: Path) -> dict[str, Any]:
    with path.open("rb") as f:
        (n,) = struct.unpack("<Q", f.read(8))
        if n > SAFETENSORS_MAX_HEADER:  # a corrupt file
            raise ValueError(f"{path.name}: safetensors header of {n} bytes")
        return json.loads(f.read(n))


def count_from_headers(folder: Path) -> tuple[int, int] | None:
    """(parameters, embedding parameters) from the folder's safetensors headers; None when the
    folder holds no safetensors (or only some of the shards its index lists)."""
    files = sorted(folder.glob("*.safetensors"))
    if not files:
        return None
    index = folder / "model.safetensors.index.json"
    if index.is_file():
        wanted = set(json.loads(index.read_text(encoding="utf-8")).get("weight_map", {}).values())
        if wanted - {f.name for f in files}:
            return None
    total = emb = 0
    for f in files:
        for name, t in _header(f).items():
            if name == "__metadata__":
                continue
            n = prod(t["shape"])
            total += n
            if name in EMBED_NAMES:
                emb += n
    return total, emb


def count_from_index(folder: Path, dtype: str) -> int | None:
    """Parameters from `model.safetensors.index.json` (total bytes / the dtype's width)."""
    index = folder / "model.safetensors.index.json"
    if not index.is_file() or dtype not in _CONFIG_BYTES:
        return None
    size = json.loads(index.read_text(encoding="utf-8")).get("metadata", {}).get("total_size")
    return int(size) // _CONFIG_BYTES[dtype] if isinstance(size, int) and size > 0 else None


# ---- formulas -----------------------------------------------------------------------------


def _dense_attention(c: Mapping[str, Any], *, qkv_bias: bool, o_bias: bool) -> int:
    h = c["hidden_size"]
    heads = c["num_attention_heads"]
    kv = _get(c, "num_key_value_heads", heads)
    hd = _get(c, "head_dim", h // heads)
    q, k = heads * hd, kv * hd
    n = h * q + 2 * h * k + q * h
    if qkv_bias:
        n += q + 2 * k
    if o_bias:
        n += h
    return n


def _glu_mlp(h: int, inter: int, bias: bool = False) -> int:
    """gate, up and down projections (SwiGLU / GeGLU)."""
    return 3 * h * inter + ((2 * inter + h) if bias else 0)


def _embeddings(c: Mapping[str, Any], tied_default: bool) -> tuple[int, int]:
    """(embedding parameters counted once, the untied lm_head or 0)."""
    e = c["vocab_size"] * c["hidden_size"]
    tied = _get(c, "tie_word_embeddings", tied_default)
    return e, 0 if tied else e


def _llama_like(c: Mapping[str, Any], *, qkv_bias: bool, o_bias: bool, mlp_bias: bool,
                norms: int, qk_norm: int = 0, tied_default: bool = False) -> tuple[int, int]:
    h, layers = c["hidden_size"], c["num_hidden_layers"]
    per_layer = (_dense_attention(c, qkv_bias=qkv_bias, o_bias=o_bias)
                 + _glu_mlp(h, c["intermediate_size"], mlp_bias) + norms * h + qk_norm)
    emb, head = _embeddings(c, tied_default)
    return emb + layers * per_layer + h + head, emb + head


def _llama(c: Mapping[str, Any]) -> tuple[int, int]:
    bias = bool(_get(c, "attention_bias", False))
    return _llama_like(c, qkv_bias=bias, o_bias=bias, mlp_bias=bool(_get(c, "mlp_bias", False)), norms=2)


def _mistral(c: Mapping[str, Any]) -> tuple[int, int]:
    return _llama_like(c, qkv_bias=False, o_bias=False, mlp_bias=False, norms=2)


def _qwen2(c: Mapping[str, Any]) -> tuple[int, int]:
    # Qwen2 has biases on q, k and v only.
    return _llama_like(c, qkv_bias=True, o_bias=False, mlp_bias=False, norms=2)


def _gemma(c: Mapping[str, Any]) -> tuple[int, int]:
    return _llama_like(c, qkv_bias=bool(_get(c, "attention_bias", False)), o_bias=bool(_get(c, "attention_bias", False)),
                       mlp_bias=False, norms=2, tied_default=True)


def _gemma2(c: Mapping[str, Any]) -> tuple[int, int]:
    # Pre- and post-norms around both attention and MLP.
    b = bool(_get(c, "attention_bias", False))
    return _llama_like(c, qkv_bias=b, o_bias=b, mlp_bias=False, norms=4, tied_default=True)


def _gemma3(c: Mapping[str, Any]) -> tuple[int, int]:
    heads = c["num_attention_heads"]
    hd = _get(c, "head_dim", c["hidden_size"] // heads)
    b = bool(_get(c, "attention_bias", False))
    return _llama_like(c, qkv_bias=b, o_bias=b, mlp_bias=False, norms=4, qk_norm=2 * hd, tied_default=True)


def _mixtral(c: Mapping[str, Any]) -> tuple[int, int]:
    h, layers, experts = c["hidden_size"], c["num_hidden_layers"], c["num_local_experts"]
    per_layer = (_dense_attention(c, qkv_bias=False, o_bias=False) + h * experts  # router
                 + experts * _glu_mlp(h, c["intermediate_size"]) + 2 * h)
    emb, head = _embeddings(c, False)
    return emb + layers * per_layer + h + head, emb + head


def _mla_attention(c: Mapping[str, Any]) -> int:
    h, heads = c["hidden_size"], c["num_attention_heads"]
    nope, rope, v = c["qk_nope_head_dim"], c["qk_rope_head_dim"], c["v_head_dim"]
    kv_rank, q_rank = c["kv_lora_rank"], c.get("q_lora_rank")
    bias = bool(_get(c, "attention_bias", False))
    qk = heads * (nope + rope)
    if q_rank:
        q = h * q_rank + (q_rank if bias else 0) + q_rank + q_rank * qk  # q_a, its norm, q_b
    else:
        q = h * qk
    kv = h * (kv_rank + rope) + ((kv_rank + rope) if bias else 0) + kv_rank + kv_rank * heads * (nope + v)
    o = heads * v * h + (h if bias else 0)
    return q + kv + o


def _deepseek(c: Mapping[str, Any]) -> tuple[int, int]:
    h, layers = c["hidden_size"], c["num_hidden_layers"]
    attn = _mla_attention(c)
    experts = _get(c, "n_routed_experts", 0)
    dense_k, freq = _get(c, "first_k_dense_replace", 0), _get(c, "moe_layer_freq", 1)
    moe_inter = _get(c, "moe_intermediate_size", 0)
    # (V3's per-expert score-correction bias is a buffer in transformers, not a parameter.)
    router = h * experts
    moe = router + experts * _glu_mlp(h, moe_inter) + _glu_mlp(h, moe_inter * _get(c, "n_shared_experts", 0))
    total = 0
    for i in range(layers):
        is_moe = experts and i >= dense_k and i % freq == 0
        total += attn + (moe if is_moe else _glu_mlp(h, c["intermediate_size"])) + 2 * h
    emb, head = _embeddings(c, False)
    return emb + total + h + head, emb + head


FORMULAS: dict[str, Callable[[Mapping[str, Any]], tuple[int, int]]] = {
    "llama": _llama,
    "mistral": _mistral,
    "qwen2": _qwen2,
    "gemma": _gemma,
    "gemma2": _gemma2,
    "gemma3_text": _gemma3,
    "mixtral": _mixtral,
    "deepseek_v2": _deepseek,
    "deepseek_v3": _deepseek,
}


def count_from_config(cfg: Mapping[str, Any]) -> tuple[int, int]:
    """(parameters, embedding parameters) of the model `cfg` describes, by formula."""
    model_type = str(cfg.get("model_type", ""))
    formula = FORMULAS.get(model_type)
    if formula is None:
        raise UnknownArchitecture(
            f"no parameter formula for model_type '{model_type}' (known: {', '.join(sorted(FORMULAS))}) and no "
            f"safetensors weights or index beside its config.json")
    try:
        return formula(cfg)
    except (KeyError, TypeError) as e:
        raise ValueError(f"config.json of a '{model_type}' model lacks or mistypes {e}") from None


def count_parameters(folder: Path, cfg: Mapping[str, Any], dtype: str) -> tuple[int, int, str]:
    """(parameters, embedding parameters, how: headers | index | formula) for a model folder."""
    found = count_from_headers(folder)
    if found is not None:
        return found[0], found[1], "headers"
    by_index = count_from_index(folder, dtype)
    if by_index is not None:
        try:
            emb = count_from_config(cfg)[1]
        except (UnknownArchitecture, ValueError):
            emb = 0
        return by_index, emb, "index"
    params, emb = count_from_config(cfg)
    return params, emb, "formula"
