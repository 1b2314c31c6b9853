#!/usr/bin/env bash
# The dbt-core peer for benchmarks/scale.py (issue 18): a venv used ONLY by the benchmark,
# never by .ci/run. dbt-core 1.11 with the dbt-duckdb adapter (no server needed).
#     bash benchmarks/setup_dbt.sh [VENV_DIR]    # default benchmarks/.venv-dbt
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
venv="${1:-$here/.venv-dbt}"
python3 -m venv "$venv"
"$venv/bin/pip" install -q --upgrade pip
"$venv/bin/pip" install -q "dbt-core~=1.11.0" "dbt-duckdb~=1.10"
"$venv/bin/dbt" --version
