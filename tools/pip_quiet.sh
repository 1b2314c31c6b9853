# Sourced by the setup_*_venv.sh scripts: `pip_quiet ARGS...` runs "$venv/bin/python -m pip"
# with its output in a log shown only on failure (this machine's pip config adds hundreds of
# harmless "Location ... is ignored" warnings). The caller sets $venv.
pip_quiet() {
    local log rc=0
    log="$(mktemp)"
    "$venv/bin/python" -m pip "$@" >"$log" 2>&1 || rc=$?
    if [ "$rc" -ne 0 ]; then
        grep -v 'is ignored: it is neither a file nor a directory' "$log" >&2 || true
    fi
    rm -f "$log"
    return "$rc"
}
