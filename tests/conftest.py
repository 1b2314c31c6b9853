"""Session fixtures shared by the tests that need a real served model.

`qa_model` trains tests/fixtures/qa_model.py's tiny Llama once per session. `vllm_server`
starts ONE vLLM CPU server (the `.venv-vllm` build) per session, from a serve config that
specops compiles (`specops.backends.vllm.serve_config`, see tests/fixtures/vllm_server.py),
serving that model as `tiny-llama` on 127.0.0.1 plus `qa-lora`, a LoRA adapter specops' own
fine-tune step trained on it (`qa_adapter`), loaded through the compiled `lora-modules`; every test that needs it (the serving
end-to-end test, the prompt-gate tests, promptfoo's side-by-side run) shares it. Tests using
it are marked `vllm_e2e`.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from specops.backends import vllm
from tests.fixtures.qa_adapter import train_qa_adapter
from tests.fixtures.qa_model import build_qa_model
from tests.fixtures.vllm_server import ServerError, serve

ADAPTER_NAME = "qa-lora"


@pytest.fixture(scope="session")
def qa_model(tmp_path_factory) -> Path:
    return build_qa_model(tmp_path_factory.mktemp("qa-model") / "tiny-llama")


@pytest.fixture(scope="session")
def qa_adapter(qa_model, tmp_path_factory) -> Path:
    return train_qa_adapter(qa_model, tmp_path_factory.mktemp("qa-adapter"))


@pytest.fixture(scope="session")
def vllm_server(qa_model, qa_adapter, tmp_path_factory):
    if vllm.default_vllm_python() is None:
        pytest.skip("no vLLM venv: run tools/setup_vllm_venv.sh or set SPECOPS_VLLM_PYTHON")
    try:
        with serve(qa_model, tmp_path_factory.mktemp("vllm"), adapters={ADAPTER_NAME: qa_adapter}) as server:
            yield server
    except ServerError as e:
        pytest.fail(str(e))
