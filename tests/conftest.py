"""Session fixtures shared by the tests that need a real served model.

`qa_model` trains tests/fixtures/qa_model.py's tiny Llama once per session. `vllm_server`
starts ONE vLLM CPU server (the `.venv-vllm` build) per session, from a serve config that
specops compiles (`specops.backends.vllm.serve_config`), serving that model as `tiny-llama`
on 127.0.0.1; every test that needs it (the serving end-to-end test, the prompt-gate tests,
promptfoo's side-by-side run) shares it. Tests using it are marked `vllm_e2e`.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import pytest

from specops.backends import vllm
from tests.fixtures.qa_model import build_qa_model

VLLM_VERSION = "0.32.0"
READY_TIMEOUT_S = 240
SERVED_NAME = "tiny-llama"


@dataclass
class VllmServer:
    base_url: str  # http://127.0.0.1:PORT (OpenAI API under /v1)
    model: str  # the served model name
    model_dir: Path
    config: Path  # the compiled `vllm serve --config` file it was started from
    args: dict  # the serve flags in that config
    log: Path
    ready_s: float
    proc: subprocess.Popen


@pytest.fixture(scope="session")
def qa_model(tmp_path_factory) -> Path:
    return build_qa_model(tmp_path_factory.mktemp("qa-model") / "tiny-llama")


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


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


@pytest.fixture(scope="session")
def vllm_server(qa_model, tmp_path_factory):
    python = vllm.default_vllm_python()
    if python is None:
        pytest.skip("no vLLM venv: run tools/setup_vllm_venv.sh or set SPECOPS_VLLM_PYTHON")
    work = tmp_path_factory.mktemp("vllm")
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
        "seed": 0,
    }
    assert vllm.check_args(args, VLLM_VERSION) == []
    config = work / "serve.yaml"
    config.write_bytes(vllm.serve_config(args, model=str(qa_model), version=VLLM_VERSION))
    log_path = work / "vllm.log"
    env = vllm.vllm_env({
        "VLLM_CPU_KVCACHE_SPACE": "1",
        "VLLM_CACHE_ROOT": str(work / "vllm-cache"),
        "VLLM_CONFIGURE_LOGGING": "1",
        "HOME": str(work / "home"),
    })
    started = time.monotonic()
    with log_path.open("wb") as log:
        proc = subprocess.Popen(
            [str(python), "-m", "vllm.entrypoints.openai.api_server", "--config", str(config)],
            stdout=log, stderr=subprocess.STDOUT, env=env, cwd=work, start_new_session=True,
        )
    base = f"http://127.0.0.1:{port}"
    try:
        while True:
            if proc.poll() is not None:
                pytest.fail(f"vLLM exited with {proc.returncode}:\n{log_path.read_text()[-4000:]}")
            try:
                with urllib.request.urlopen(f"{base}/v1/models", timeout=5) as r:
                    json.loads(r.read())
                break
            except (urllib.error.URLError, ConnectionError, TimeoutError):
                if time.monotonic() - started > READY_TIMEOUT_S:
                    pytest.fail(f"vLLM not ready in {READY_TIMEOUT_S} s:\n{log_path.read_text()[-4000:]}")
                time.sleep(1)
        yield VllmServer(base, SERVED_NAME, qa_model, config, args, log_path, time.monotonic() - started, proc)
    finally:
        _stop(proc)
