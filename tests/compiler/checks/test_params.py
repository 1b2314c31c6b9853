"""Parameter counts without torch (specops.checks.params) equal transformers' own count on the
meta device, architecture by architecture, wherever torch is installed; safetensors headers and
the shard index count too. The formulas are what `specops validate` uses on the core install."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from specops.checks import params
from specops.checks.capacity import model_facts

CONFIGS = Path(__file__).resolve().parents[2] / "fixtures" / "model_configs"

_COMMON = {"hidden_size": 256, "intermediate_size": 512, "num_hidden_layers": 3, "num_attention_heads": 8,
           "num_key_value_heads": 2, "vocab_size": 1000, "max_position_embeddings": 512}

# Small configs of every architecture with a formula (the real Llama-3 and DeepSeek-V2-Lite
# configs are fixtures): each exercises the knobs the formula reads.
SMALL = {
    "llama-bias": {**_COMMON, "model_type": "llama", "attention_bias": True, "mlp_bias": True,
                   "tie_word_embeddings": False},
    "mistral": {**_COMMON, "model_type": "mistral", "head_dim": 64},
    "qwen2": {**_COMMON, "model_type": "qwen2", "tie_word_embeddings": True},
    "gemma": {**_COMMON, "model_type": "gemma", "head_dim": 64},
    "gemma2": {**_COMMON, "model_type": "gemma2", "head_dim": 64},
    "gemma3_text": {**_COMMON, "model_type": "gemma3_text", "head_dim": 64},
    "mixtral": {**_COMMON, "model_type": "mixtral", "num_local_experts": 4, "num_experts_per_tok": 2},
    "deepseek_v3": {**_COMMON, "model_type": "deepseek_v3", "q_lora_rank": 96, "kv_lora_rank": 64,
                    "qk_nope_head_dim": 32, "qk_rope_head_dim": 16, "v_head_dim": 32, "n_routed_experts": 8,
                    "n_shared_experts": 1, "moe_intermediate_size": 128, "first_k_dense_replace": 1,
                    "num_experts_per_tok": 2, "n_group": 1, "topk_group": 1, "topk_method": "noaux_tc",
                    "num_key_value_heads": 8},
}


def _meta_count(folder: Path) -> int:
    torch = pytest.importorskip("torch")
    transformers = pytest.importorskip("transformers")
    cfg = transformers.AutoConfig.from_pretrained(str(folder), local_files_only=True)
    with torch.device("meta"):
        model = transformers.AutoModelForCausalLM.from_config(cfg)
    return sum(p.numel() for p in model.parameters())


def _write(tmp_path: Path, name: str, cfg: dict) -> Path:
    folder = tmp_path / name
    folder.mkdir()
    (folder / "config.json").write_text(json.dumps(cfg), encoding="utf-8")
    return folder


def test_llama3_8b_count_is_exact_without_torch() -> None:
    cfg = json.loads((CONFIGS / "llama-3-8b" / "config.json").read_text())
    assert params.count_from_config(cfg) == (8_030_261_248, 2 * 128256 * 4096)


@pytest.mark.parametrize("fixture", ["llama-3-8b", "llama-3-70b", "tiny-llama", "deepseek-v2-lite"])
def test_fixture_formula_equals_meta_device_count(fixture: str) -> None:
    cfg = json.loads((CONFIGS / fixture / "config.json").read_text())
    assert params.count_from_config(cfg)[0] == _meta_count(CONFIGS / fixture)


@pytest.mark.parametrize("name", sorted(SMALL))
def test_formula_equals_meta_device_count(tmp_path: Path, name: str) -> None:
    folder = _write(tmp_path, name, SMALL[name])
    assert params.count_from_config(SMALL[name])[0] == _meta_count(folder)


def test_safetensors_headers_count_exactly(tmp_path: Path) -> None:
    torch = pytest.importorskip("torch")
    st = pytest.importorskip("safetensors.torch")
    folder = _write(tmp_path, "weights", {"model_type": "no-formula", "torch_dtype": "float32"})
    st.save_file({"model.embed_tokens.weight": torch.zeros(10, 4), "layer.w": torch.zeros(3, 5)},
                 str(folder / "model-00001-of-00002.safetensors"))
    st.save_file({"lm_head.weight": torch.zeros(10, 4)}, str(folder / "model-00002-of-00002.safetensors"))
    assert params.count_from_headers(folder) == (95, 80)
    # An index naming a shard that is absent: the headers cannot be trusted, the index counts.
    index = {"metadata": {"total_size": 4 * 1000}, "weight_map": {"x": "model-00003-of-00003.safetensors"}}
    (folder / "model.safetensors.index.json").write_text(json.dumps(index))
    assert params.count_from_headers(folder) is None
    assert params.count_parameters(folder, {"model_type": "no-formula"}, "float32")[::2] == (1000, "index")


def test_unknown_architecture_without_weights_is_reported(tmp_path: Path) -> None:
    folder = _write(tmp_path, "odd", {"model_type": "rwkv", "hidden_size": 64})
    with pytest.raises(params.UnknownArchitecture, match="rwkv"):
        model_facts(folder)
