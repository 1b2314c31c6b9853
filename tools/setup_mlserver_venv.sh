#!/usr/bin/env bash
# Create the separate MLServer venv that serves classical models (local serving platform,
# the MLServer end-to-end tests).
#
# MLServer 1.7.1 needs importlib-resources<7, which the main constraints pin at 7.1.0 (the
# main venv's packages want it); with that pin pip backtracks to MLServer 1.2.4, which does
# not run. So MLServer lives in its own venv: <repo>/.venv-mlserver (gitignored via .venv-*/),
# pinned by tools/mlserver-constraints.txt, with the estimator libraries at the main
# constraints' versions so a model trained by the step runtime unpickles there unchanged.
#
# Idempotent: if the venv already imports MLServer and its runtimes, nothing is done.
# Usage: tools/setup_mlserver_venv.sh [VENV_DIR]     (env PYTHON picks the base interpreter)
set -euo pipefail

repo_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
venv="${1:-$repo_root/.venv-mlserver}"
base_python="${PYTHON:-python3}"
constraints="$repo_root/tools/mlserver-constraints.txt"

check() {
    [ -x "$venv/bin/mlserver" ] || return 1
    "$venv/bin/python" - <<'PY' >/dev/null 2>&1
import mlserver, mlserver_sklearn, mlserver_xgboost, mlserver_lightgbm  # noqa: F401
import sklearn, xgboost, lightgbm  # noqa: F401
PY
}

if check; then
    echo "MLServer venv ready: $venv"
    exit 0
fi

. "$repo_root/tools/pip_quiet.sh"

if [ ! -x "$venv/bin/python" ]; then
    "$base_python" -m venv "$venv"
fi
echo "installing MLServer 1.7.1 into $venv (about a minute)"
pip_quiet install -c "$constraints" mlserver mlserver-sklearn mlserver-xgboost mlserver-lightgbm \
    scikit-learn xgboost lightgbm

if ! check; then
    echo "MLServer venv at $venv does not import mlserver and its runtimes" >&2
    exit 1
fi
echo "MLServer venv ready: $venv"
