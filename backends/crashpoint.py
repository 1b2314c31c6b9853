"""Named points where the crash tests stop a process so they can kill it there (stdlib only).

tests/compiler/ops/test_kill_apply.py kills `specops apply`, alone or with its whole process
group, at each of these points and checks that the next apply adopts the interrupted run
instead of repeating it:

    intent-recorded   the engine wrote the intent, no work started      (specops.ops.apply)
    run-launched      the ZenML child was started                       (zenml_run.run_local)
    child-started     the child recorded its pid, the run not started   (zenml_run child)
    run-finished      the run finished, its result not yet written      (zenml_run child)
    action-returned   the provider returned, the state not yet written  (specops.ops.apply)

A no-op unless SPECOPS_PAUSE_AT names the point and SPECOPS_PAUSE_DIR is set.
"""

from __future__ import annotations

import os
import time
from pathlib import Path


def pause_point(name: str) -> None:
    """With SPECOPS_PAUSE_AT=<name>: write `<SPECOPS_PAUSE_DIR>/<name>.reached` (holding this
    pid) and wait (up to 10 minutes) for `<name>.go`, so the test can kill this process, or its
    group, exactly here."""
    if os.environ.get("SPECOPS_PAUSE_AT") != name or not os.environ.get("SPECOPS_PAUSE_DIR"):
        return
    where = Path(os.environ["SPECOPS_PAUSE_DIR"])
    (where / f"{name}.reached").write_text(str(os.getpid()))
    deadline = time.monotonic() + 600
    while not (where / f"{name}.go").exists() and time.monotonic() < deadline:
        time.sleep(0.05)
