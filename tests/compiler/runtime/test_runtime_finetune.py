"""LLM fine-tuning and generation eval on a tiny, locally made Llama (real torch/transformers/peft).

Nothing is downloaded: the model is built by tests/fixtures/tiny_llm.py with random weights.
"""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest

from specops.runtime import ParamError, run_step

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures"


def _tiny_llm():
    spec = importlib.util.spec_from_file_location("specops_test_tiny_llm", FIXTURES / "tiny_llm.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


@pytest.fixture(scope="module")
def llm_repo(tmp_path_factory):
    """A repo with a tiny base model under models/ and a checked 16-row SFT dataset."""
    tiny = _tiny_llm()
    base = tmp_path_factory.mktemp("llm")
    repo = base / "repo"
    (repo / "data").mkdir(parents=True)
    tiny.build_tiny_llama(repo / "models" / "tiny-llama")
    tiny.write_sft_jsonl(repo / "data" / "support.jsonl", 16)
    ds = {"name": "support", "uri": "file://data/support.jsonl", "format": "jsonl",
          "schema": [{"name": "prompt", "type": "string", "nullable": False},
                     {"name": "response", "type": "string", "nullable": False}],
          "splits": {"train": 0.75, "test": 0.25}, "checks": [{"type": "rowCount", "min": 16}]}
    run_step("data_check", {"dataset": ds}, inputs={}, output_dir=str(base / "data"), repo_root=str(repo))
    return repo, base


@pytest.fixture(autouse=True)
def _offline(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("TRANSFORMERS_OFFLINE", "1")


def test_tiny_model_shape(llm_repo):
    repo, _ = llm_repo
    cfg = json.loads((repo / "models" / "tiny-llama" / "config.json").read_text())
    assert (cfg["model_type"], cfg["hidden_size"], cfg["num_hidden_layers"], cfg["vocab_size"]) == ("llama", 128, 2, 1024)
    assert cfg["hidden_size"] // cfg["num_attention_heads"] == 32
    # The same shape as the committed capacity-planning fixture.
    ref = json.loads((FIXTURES / "model_configs" / "tiny-llama" / "config.json").read_text())
    for key in ("hidden_size", "intermediate_size", "num_attention_heads", "num_key_value_heads",
                "num_hidden_layers", "max_position_embeddings", "vocab_size", "tie_word_embeddings",
                "bos_token_id", "eos_token_id"):
        assert cfg[key] == ref[key], key


def test_lora_finetune_then_generation_eval(llm_repo, tmp_path):
    repo, base = llm_repo
    res = run_step("finetune", {"base_model": "models/tiny-llama", "method": "lora",
                                "lora": {"r": 8, "alpha": 16, "dropout": 0.0, "target_modules": ["q_proj", "v_proj"]},
                                "epochs": 8, "learning_rate": 0.005, "batch_size": 4, "max_seq_length": 64,
                                "seed": 0},
                   inputs={"data": str(base / "data")}, output_dir=str(tmp_path / "ft"), repo_root=str(repo))
    assert res["method"] == "lora" and res["train_rows"] == 12 and res["steps"] == 24
    assert res["loss_last"] < res["loss_first"] - 0.2, res
    assert 0 < res["trainable_params"] < 20000
    cfg = json.loads((tmp_path / "ft" / "adapter_config.json").read_text())
    assert cfg["base_model_name_or_path"] == "models/tiny-llama"  # the spec's value, no machine path
    assert sorted(cfg["target_modules"]) == ["q_proj", "v_proj"]
    assert (tmp_path / "ft" / "adapter_model.safetensors").is_file()
    assert (tmp_path / "ft" / "tokenizer.json").is_file()
    assert not (tmp_path / "ft" / "README.md").exists()

    ev = run_step("evaluate", {"task": "generation", "metrics": ["rougeL", "rouge1", "exact_match", "latency_p50_ms"],
                               "max_new_tokens": 8},
                  inputs={"model": str(tmp_path / "ft"), "data": str(base / "data")},
                  output_dir=str(tmp_path / "ev"), repo_root=str(repo))
    m = json.loads((tmp_path / "ev" / "metrics.json").read_text())
    assert m == ev["metrics"] and ev["rows"] == 4
    assert set(m) == {"rougeL", "rouge1", "exact_match", "latency_p50_ms"}
    assert 0.0 <= m["rougeL"] <= 1.0 and 0.0 <= m["exact_match"] <= 1.0 and m["latency_p50_ms"] > 0


def test_full_finetune_is_evaluated_without_adapter(llm_repo, tmp_path):
    repo, base = llm_repo
    res = run_step("finetune", {"base_model": str(repo / "models" / "tiny-llama"), "method": "full",
                                "max_steps": 2, "batch_size": 2, "learning_rate": 0.001},
                   inputs={"data": str(base / "data")}, output_dir=str(tmp_path / "ft"), repo_root=str(repo))
    assert res["steps"] == 2 and res["trainable_params"] > 400000
    assert (tmp_path / "ft" / "config.json").is_file() and not (tmp_path / "ft" / "adapter_config.json").exists()
    ev = run_step("evaluate", {"task": "generation", "metrics": ["exact_match"], "max_new_tokens": 4, "max_rows": 2},
                  inputs={"model": str(tmp_path / "ft"), "data": str(base / "data")},
                  output_dir=str(tmp_path / "ev"), repo_root=str(repo))
    assert ev["rows"] == 2 and 0.0 <= ev["metrics"]["exact_match"] <= 1.0


def test_finetune_refuses_non_local_or_escaping_base(llm_repo, tmp_path):
    repo, base = llm_repo
    for base_model, phrase in [("meta-llama/Llama-3-8B", "not a local model folder"),
                               ("../outside", "escapes the repository root"),
                               ("hf://meta-llama/Llama-3-8B", "not a local path")]:
        with pytest.raises(ParamError, match=phrase):
            run_step("finetune", {"base_model": base_model}, inputs={"data": str(base / "data")},
                     output_dir=str(tmp_path / "ft"), repo_root=str(repo))
    with pytest.raises(ParamError, match="LoRA config does not fit"):
        run_step("finetune", {"base_model": "models/tiny-llama", "lora": {"target_modules": ["c_attn"]},
                              "max_steps": 1},
                 inputs={"data": str(base / "data")}, output_dir=str(tmp_path / "ft"), repo_root=str(repo))
