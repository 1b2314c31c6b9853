"""Capacity planning: exact parameter counts from config.json, KV sizes, fit verdicts.

Model facts come from real transformers configs built on torch's meta device (no weights,
nothing downloaded); the fixtures are the public shapes of Llama-3-8B, Llama-3-70B,
DeepSeek-V2-Lite (MLA, MoE) and a tiny tied-embedding Llama.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from specops.checks import capacity
from specops.checks.capacity import (
    CapacityReport,
    ModelConfigError,
    ModelFacts,
    model_facts,
    plan,
    plan_engine_args,
    render_table,
)
from specops.checks.params import UnknownArchitecture
from specops.diagnostics import CODES

CONFIGS = Path(__file__).resolve().parents[2] / "fixtures" / "model_configs"


@pytest.fixture(scope="module")
def llama8b() -> ModelFacts:
    return model_facts(CONFIGS / "llama-3-8b" / "config.json")


@pytest.fixture(scope="module")
def llama70b() -> ModelFacts:
    return model_facts(CONFIGS / "llama-3-70b")


@pytest.fixture(scope="module")
def mla() -> ModelFacts:
    return model_facts(CONFIGS / "deepseek-v2-lite")


@pytest.fixture(scope="module")
def tiny() -> ModelFacts:
    return model_facts(CONFIGS / "tiny-llama")


# ---- model facts --------------------------------------------------------------------------


def test_llama8b_exact_facts(llama8b: ModelFacts) -> None:
    assert llama8b.params == 8_030_261_248
    assert (llama8b.layers, llama8b.hidden, llama8b.heads, llama8b.kv_heads, llama8b.head_dim) == (
        32, 4096, 32, 8, 128)
    assert (llama8b.attention, llama8b.dtype, llama8b.vocab) == ("gqa", "bfloat16", 128256)
    assert llama8b.max_position_embeddings == 8192
    # 2 (K,V) x 32 layers x 8 kv heads x 128 head_dim x 2 bytes
    assert llama8b.kv_bytes_per_token(2) == 2 * 32 * 8 * 128 * 2 == 131_072


def test_llama8b_report_kv_per_token(llama8b: ModelFacts) -> None:
    r = plan(llama8b, gpu="H100")
    assert r.kv_bytes_per_token == 131_072
    assert r.kv_bytes_per_token_per_gpu == 131_072
    assert r.weights_total_bytes == 8_030_261_248 * 2


def test_llama70b_exact_params(llama70b: ModelFacts) -> None:
    assert llama70b.params == 70_553_706_496
    assert llama70b.kv_bytes_per_token(2) == 2 * 80 * 8 * 128 * 2


def test_tied_embeddings_counted_once(tiny: ModelFacts) -> None:
    assert tiny.tie_word_embeddings
    assert tiny.embedding_params == 1024 * 128  # the lm_head shares the embedding
    # embed 131,072 + 2 layers x (attn 128*128*2 + 128*64*2 + mlp 3*128*256 + 2 norms) + norm
    per_layer = 2 * 128 * 128 + 2 * 128 * 64 + 3 * 128 * 256 + 2 * 128
    assert tiny.params == 1024 * 128 + 2 * per_layer + 128 == 426_624


def test_mla_facts_and_kv_bytes(mla: ModelFacts) -> None:
    assert mla.attention == "mla"
    assert (mla.kv_lora_rank, mla.qk_rope_head_dim, mla.layers) == (512, 64, 27)
    assert mla.params == 15_706_484_224
    # layers x (kv_lora_rank + qk_rope_head_dim) x 2 bytes
    assert mla.kv_bytes_per_token(2) == 27 * (512 + 64) * 2 == 31_104
    # The latent is replicated on every TP rank: TP does not shrink it.
    r = plan(mla, gpu="H100", count=2, tensor_parallel_size=2, max_model_len=4096)
    assert r.kv_bytes_per_token_per_gpu == 31_104
    assert r.kv_bytes_per_sequence == 31_104 * 4096


def test_facts_cached_in_process(llama8b: ModelFacts) -> None:
    assert model_facts(CONFIGS / "llama-3-8b") is llama8b


def test_facts_cached_on_disk(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """After the first build, a second process (simulated by clearing the in-process cache)
    reads the facts from the cache dir. The builder is replaced by a function that fails,
    only to prove it is not called."""
    first = model_facts(CONFIGS / "tiny-llama", cache_dir=tmp_path)
    [cached] = list(tmp_path.glob("model-facts-v2-*.json"))
    assert first.config_sha256 in cached.name
    monkeypatch.setattr(capacity, "_FACTS_CACHE", {})

    def boom(*a: object) -> None:
        raise AssertionError("rebuilt instead of read from the disk cache")

    monkeypatch.setattr(capacity, "_facts_from_config", boom)
    assert model_facts(CONFIGS / "tiny-llama", cache_dir=tmp_path) == first


def test_corrupt_disk_cache_is_rebuilt(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    first = model_facts(CONFIGS / "tiny-llama", cache_dir=tmp_path)
    [cached] = list(tmp_path.glob("model-facts-v2-*.json"))
    cached.write_text("{not json", encoding="utf-8")
    monkeypatch.setattr(capacity, "_FACTS_CACHE", {})
    assert model_facts(CONFIGS / "tiny-llama", cache_dir=tmp_path) == first
    assert json.loads(cached.read_text(encoding="utf-8"))["params"] == 426_624


def test_bad_configs_raise_one_line_errors(tmp_path: Path) -> None:
    with pytest.raises(ModelConfigError, match="cannot read model config"):
        model_facts(tmp_path / "absent")
    (tmp_path / "config.json").write_text("{oops", encoding="utf-8")
    with pytest.raises(ModelConfigError, match="not valid JSON"):
        model_facts(tmp_path)
    (tmp_path / "config.json").write_text('{"model_type": "no-such-arch"}', encoding="utf-8")
    with pytest.raises(UnknownArchitecture, match="no parameter formula for model_type 'no-such-arch'"):
        model_facts(tmp_path)
    (tmp_path / "config.json").write_text('{"model_type": "llama", "hidden_size": 64}', encoding="utf-8")
    with pytest.raises(ModelConfigError, match="cannot read a 'llama' model from it"):
        model_facts(tmp_path)


# ---- plans ------------------------------------------------------------------------------


def test_70b_on_one_l4_does_not_fit(llama70b: ModelFacts) -> None:
    r = plan(llama70b, gpu="L4", count=1, max_model_len=8192)
    assert r.verdict == "does-not-fit" and not r.fits
    assert r.weights_bytes == 70_553_706_496 * 2
    assert r.kv_budget_bytes < 0
    assert "weights need 131.42 GiB per GPU (70.55 B params x 2 B bfloat16)" in r.reason
    assert "one L4 has 20.69 GiB usable at 0.92 utilisation" in r.reason
    # 2 x 80 x 8 x 128 x 2 B/token x 8192 tokens = 2.5 GiB
    assert "2.5 GiB per sequence at max_model_len 8192" in r.reason
    assert "needs at least 8 x L4" in r.reason
    assert "\n" not in r.reason


def test_tp_halves_weights_and_shards_kv_heads(llama8b: ModelFacts) -> None:
    one = plan(llama8b, gpu="L4", count=1, tensor_parallel_size=1, max_model_len=8192)
    two = plan(llama8b, gpu="L4", count=2, tensor_parallel_size=2, max_model_len=8192)
    assert two.weights_bytes * 2 == one.weights_bytes == 8_030_261_248 * 2
    # 8 kv heads / TP 2 = 4 heads per GPU
    assert two.kv_bytes_per_token_per_gpu == 2 * 32 * 4 * 128 * 2 == one.kv_bytes_per_token_per_gpu // 2
    assert two.kv_bytes_per_token == 131_072  # the model-wide figure is unchanged
    assert two.verdict == "ok" and two.max_sequences > 4 * one.max_sequences


def test_kv_heads_floor_at_one_per_gpu(llama70b: ModelFacts) -> None:
    r = plan(llama70b, gpu="H100", count=16, tensor_parallel_size=16, max_model_len=8192)
    assert r.kv_bytes_per_token_per_gpu == 2 * 80 * 1 * 128 * 2  # max(1, 8/16) heads


def test_fp8_kv_cache_halves(llama8b: ModelFacts) -> None:
    bf16 = plan(llama8b, gpu="L4", max_model_len=8192)
    fp8 = plan(llama8b, gpu="L4", max_model_len=8192, kv_cache_dtype="fp8")
    assert fp8.kv_bytes_per_token * 2 == bf16.kv_bytes_per_token == 131_072
    assert fp8.kv_bytes_per_sequence * 2 == bf16.kv_bytes_per_sequence
    assert fp8.kv_budget_bytes == bf16.kv_budget_bytes
    assert fp8.max_sequences == bf16.kv_budget_bytes // fp8.kv_bytes_per_sequence
    assert (bf16.kv_cache_dtype, fp8.kv_cache_dtype) == ("bfloat16", "fp8")


def test_tight_few_sequences(llama8b: ModelFacts) -> None:
    r = plan(llama8b, gpu="L4", max_model_len=8192, gpu_memory_utilization=0.85)
    assert r.verdict == "tight" and r.fits
    assert 1 <= r.max_sequences < capacity.TIGHT_MIN_SEQUENCES
    assert f"holds only {r.max_sequences} sequences at max_model_len 8192 (fewer than 4)" in r.reason
    d = r.to_diagnostic("serving.yaml")
    assert d is not None and (d.severity, d.code) == ("warning", "capacity-tight")


def test_tight_low_headroom(llama70b: ModelFacts) -> None:
    r = plan(llama70b, gpu="H100", count=2, tensor_parallel_size=2, max_model_len=1024)
    assert r.max_sequences >= capacity.TIGHT_MIN_SEQUENCES
    assert r.headroom < capacity.TIGHT_HEADROOM
    assert r.verdict == "tight" and "of usable memory (under 10%)" in r.reason


def test_memory_model_arithmetic(llama8b: ModelFacts) -> None:
    r = plan(llama8b, gpu="H100", max_model_len=4096, gpu_memory_utilization=0.9)
    usable = int(81559 * 2**20 * 0.9)
    weights = 8_030_261_248 * 2
    overhead = 2**30 + int(0.05 * weights)
    assert (r.usable_bytes, r.weights_bytes, r.overhead_bytes) == (usable, weights, overhead)
    assert r.kv_budget_bytes == usable - weights - overhead
    assert r.kv_bytes_per_sequence == 131_072 * 4096
    assert r.max_sequences == r.kv_budget_bytes // (131_072 * 4096)
    assert r.kv_tokens == r.kv_budget_bytes // 131_072
    assert r.verdict == "ok"


def test_max_len_rounds_up_to_whole_blocks(llama8b: ModelFacts) -> None:
    r = plan(llama8b, gpu="H100", max_model_len=1000)
    assert r.kv_bytes_per_sequence == 131_072 * 1008


def test_max_model_len_beyond_positions(llama8b: ModelFacts) -> None:
    r = plan(llama8b, gpu="H200", max_model_len=16384)
    assert r.verdict == "does-not-fit"
    assert r.reason == "max_model_len 16384 exceeds the model's max_position_embeddings 8192"
    assert plan(llama8b, gpu="H200").max_model_len == 8192  # default: the model's own


def test_kv_cannot_hold_one_sequence(mla: ModelFacts) -> None:
    # 163,840 tokens x 31,104 B = 4.75 GiB per sequence; an L40S has ~0.3 GiB left for KV.
    r = plan(mla, gpu="L40S", max_model_len=163840, gpu_memory_utilization=0.8)
    assert r.verdict == "does-not-fit"
    assert r.reason.startswith("the KV cache cannot hold one sequence")
    assert "4.75 GiB per sequence at max_model_len 163840 (31104 B/token)" in r.reason


def test_tp_must_divide_heads(llama8b: ModelFacts) -> None:
    r = plan(llama8b, gpu="L4", count=3, tensor_parallel_size=3)
    assert r.verdict == "does-not-fit"
    assert r.reason == "tensor_parallel_size 3 does not divide the model's 32 attention heads"
    r = plan(llama8b, gpu="L4", count=2, tensor_parallel_size=4)
    assert r.reason == "tensor_parallel_size 4 x pipeline_parallel_size 1 needs 4 GPUs but the target has 2"


def test_tp_chosen_when_not_given(llama8b: ModelFacts, llama70b: ModelFacts) -> None:
    # One L4 holds the 8B only 'tight'; TP 2 is the smallest 'ok', leaving 2 engines on 4 GPUs.
    r = plan(llama8b, gpu="L4", count=4, max_model_len=8192)
    assert (r.tensor_parallel_size, r.suggested_tensor_parallel_size, r.engines) == (2, 2, 2)
    assert r.max_concurrent_sequences == 2 * r.max_sequences
    r = plan(llama70b, gpu="H100", count=8, max_model_len=8192)
    assert (r.tensor_parallel_size, r.engines, r.verdict) == (4, 2, "ok")
    # Given explicitly, the TP is kept and the smaller one is suggested in a note.
    r = plan(llama70b, gpu="H100", count=8, tensor_parallel_size=8, max_model_len=8192)
    assert r.tensor_parallel_size == 8 and r.suggested_tensor_parallel_size == 4
    assert "tensor_parallel_size 4 would be enough (ok) on these 8 GPUs" in r.notes


def test_nothing_fits_shows_largest_tp(llama70b: ModelFacts) -> None:
    r = plan(llama70b, gpu="L4", count=4, max_model_len=8192)
    assert r.verdict == "does-not-fit" and r.tensor_parallel_size == 4
    assert r.suggested_tensor_parallel_size is None


def test_quantization_shrinks_weights(llama70b: ModelFacts) -> None:
    r = plan(llama70b, gpu="A10G", count=4, quantization="awq", max_model_len=8192)
    linear = llama70b.params - llama70b.embedding_params
    assert r.weights_total_bytes == math.ceil(linear * (0.5 + 2.5 / 128)) + llama70b.embedding_params * 2
    assert r.verdict == "ok" and r.tensor_parallel_size == 4
    fp8 = plan(llama70b, gpu="H100", count=1, quantization="fp8", max_model_len=8192)
    assert fp8.weights_total_bytes == linear + llama70b.embedding_params * 2
    with pytest.raises(ValueError, match="did you mean 'awq'"):
        plan(llama70b, gpu="L4", quantization="awk")


def test_dtype_rules(tiny: ModelFacts, llama8b: ModelFacts) -> None:
    assert plan(tiny, gpu="L4").dtype == "float16"  # vLLM: auto on a float32 model -> fp16
    r = plan(llama8b, gpu="H100", dtype="float32", max_model_len=4096)
    assert r.weights_bytes == 8_030_261_248 * 4 and r.kv_bytes_per_token == 262_144
    with pytest.raises(ValueError, match="did you mean 'bfloat16'"):
        plan(llama8b, gpu="L4", dtype="bfloat61")
    with pytest.raises(ValueError, match="kv-cache-dtype 'fp9'; did you mean 'fp8'"):
        plan(llama8b, gpu="L4", kv_cache_dtype="fp9")
    with pytest.raises(ValueError, match="did you mean 'H200'"):
        plan(llama8b, gpu="H2000")


def test_pipeline_parallel_splits_layers(llama70b: ModelFacts) -> None:
    r = plan(llama70b, gpu="H100", count=4, tensor_parallel_size=2, pipeline_parallel_size=2,
             max_model_len=8192)
    assert r.weights_bytes == math.ceil(70_553_706_496 * 2 / 4)
    assert r.kv_bytes_per_token_per_gpu == 2 * 40 * 4 * 128 * 2


def test_cost_from_catalogue(llama8b: ModelFacts, llama70b: ModelFacts) -> None:
    r = plan(llama8b, gpu="L4", provider="aws", max_model_len=4096)
    assert (r.instance.name, r.usd_per_hour) == ("g6.xlarge", 0.8048)
    r = plan(llama8b, gpu="L4", provider="sagemaker", max_model_len=4096)
    assert r.instance.name == "ml.g6.xlarge"
    r = plan(llama8b, gpu="L4", max_model_len=4096)  # cheapest known cloud price
    assert (r.instance.name, r.usd_per_hour) == ("g2-standard-4", 0.7068)
    assert [o.provider for o in r.options] == ["aws", "sagemaker", "gcp"]
    r = plan(llama70b, gpu="H100", count=16, provider="aws", tensor_parallel_size=8)
    assert (r.instance.name, r.instance_count, r.usd_per_hour) == ("p5.48xlarge", 2, 110.08)
    r = plan(llama70b, gpu="MI300X", provider="onprem", max_model_len=8192)
    assert r.instance.provider == "onprem" and r.usd_per_hour is None


def test_engine_args_mapping(llama8b: ModelFacts) -> None:
    r = plan_engine_args(llama8b, {"tensor-parallel-size": 2, "max_model_len": 4096,
                                   "kv-cache-dtype": "fp8", "enforce-eager": True},
                         gpu="L4", count=2, label="support-llm")
    assert (r.tensor_parallel_size, r.max_model_len, r.kv_cache_dtype, r.label) == (
        2, 4096, "fp8", "support-llm")


# ---- rendering ------------------------------------------------------------------------


def _reports(llama8b: ModelFacts, llama70b: ModelFacts, mla: ModelFacts) -> list[CapacityReport]:
    return [
        plan(llama8b, gpu="L4", count=2, tensor_parallel_size=2, label="llama-3-8b"),
        plan(llama70b, gpu="L4", label="llama-3-70b"),
        plan(mla, gpu="H100", max_model_len=32768, label="deepseek-v2-lite"),
    ]


def test_to_dict_is_deterministic_json(llama8b: ModelFacts, llama70b: ModelFacts, mla: ModelFacts,
                                       monkeypatch: pytest.MonkeyPatch) -> None:
    a = [r.to_json() for r in _reports(llama8b, llama70b, mla)]
    # Rebuild the facts from scratch: the output must not depend on the cache.
    monkeypatch.setattr(capacity, "_FACTS_CACHE", {})
    fresh = [model_facts(CONFIGS / n) for n in ("llama-3-8b", "llama-3-70b", "deepseek-v2-lite")]
    b = [r.to_json() for r in _reports(*fresh)]
    assert a == b
    doc = json.loads(a[1])
    assert doc["schema"] == "specops.dev/capacity/v1"
    assert doc["verdict"] == "does-not-fit"
    assert doc["memory_per_gpu"]["weights_bytes"] == 141_107_412_992
    assert doc["memory_per_gpu"]["weights_gib"] == 131.42
    assert doc["kv_cache"]["bytes_per_token"] == 327_680
    assert doc["model"]["params"] == 70_553_706_496
    assert str(CONFIGS) not in a[1] and "/work" not in "".join(a)
    assert json.dumps(doc, indent=2, sort_keys=True) + "\n" == a[1]


def test_render_table_aligned(llama8b: ModelFacts, llama70b: ModelFacts, mla: ModelFacts) -> None:
    text = render_table(_reports(llama8b, llama70b, mla))
    lines = text.splitlines()
    header, rule, rows = lines[0], lines[1], lines[2:5]
    assert header.split()[:3] == ["model", "gpu", "tp"]
    col = header.index("verdict")
    assert [row[col:] for row in rows] == ["ok", "does-not-fit", "ok"]
    assert rule.replace(" ", "").strip("-") == ""
    assert "2x L4" in rows[0] and "7.48 GiB" in rows[0]
    assert lines[5] == ""
    assert lines[6].startswith("llama-3-70b on 1x L4: does-not-fit: weights need 131.42 GiB")
    assert render_table(_reports(llama8b, llama70b, mla)) == text


def test_diagnostics_codes(llama8b: ModelFacts, llama70b: ModelFacts) -> None:
    bad = plan(llama70b, gpu="L4", label="big").to_diagnostic("specs/serve.yaml")
    assert bad is not None and (bad.severity, bad.code) == ("error", "capacity")
    assert bad.message.startswith("big: weights need")
    assert plan(llama8b, gpu="H100", max_model_len=4096).to_diagnostic() is None
    assert {"capacity", "capacity-tight"} <= set(CODES)


def test_a_repeated_plan_is_the_same_report_and_types_count(llama8b: ModelFacts) -> None:
    args = {"max-model-len": 4096, "tensor_parallel_size": 1}
    first = plan_engine_args(llama8b, args, gpu="L4", count=1, label="x (dev)")
    assert plan_engine_args(llama8b, dict(args), gpu="L4", count=1, label="x (dev)") is first
    other = plan_engine_args(llama8b, {**args, "max-model-len": 4096.0}, gpu="L4", count=1, label="x (dev)")
    assert other is not first
    assert plan_engine_args(llama8b, args, gpu="L4", count=1, label="y (dev)").label != first.label
