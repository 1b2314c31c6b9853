"""Cold and warm `specops validate` at N specs: CPU seconds and peak RSS (issue 18).

    python benchmarks/validate_scale.py --specs 1000 --specs 10000 [--rounds 5]

The validate side of benchmarks/scale.py, alone (no compile, no dbt), for measuring a change
to loading and checking: for each size it generates the scaled example
(benchmarks/scale_repo.py) and runs, per round, `specops validate` with the repo's
`.specops/` removed first (cold), then once more (warm: the validate cache replays). It
reports the minimum CPU (user + sys of the child, from wait4: the machine is shared, so wall
time is not the figure), the maximum peak RSS, and the exponent of cold CPU from the first
size to the last. The exit status of validate is shown, not judged (the example may carry a
finding). Not a test: it prints figures.
"""

from __future__ import annotations

import argparse
import math
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from scale_repo import generate


def run(cmd: list[str]) -> tuple[float, float, int]:
    """(CPU s, peak RSS MiB, exit status) of one child process."""
    p = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    _, status, ru = os.wait4(p.pid, 0)
    return ru.ru_utime + ru.ru_stime, ru.ru_maxrss / 1024, os.waitstatus_to_exitcode(status)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--specs", type=int, action="append", help="repo size (repeatable; default 1000)")
    ap.add_argument("--rounds", type=int, default=5)
    a = ap.parse_args()
    cmd = [sys.executable, "-m", "specops", "validate"]
    cold_cpu: dict[int, float] = {}
    with tempfile.TemporaryDirectory() as tmp:
        for n in a.specs or [1000]:
            repo = generate(Path(tmp) / f"repo{n}", n)
            run(cmd + [str(repo)])  # byte-compiled modules and the user's model-facts cache
            cold, warm = [], []
            for _ in range(a.rounds):
                shutil.rmtree(repo / ".specops", ignore_errors=True)
                cold.append(run(cmd + [str(repo)]))
                warm.append(run(cmd + [str(repo)]))
            cold_cpu[n] = min(c for c, _, _ in cold)
            print(f"{n:>6} specs  cold {cold_cpu[n]:.3f} s CPU, {max(r for _, r, _ in cold):.0f} MiB"
                  f"  |  warm {min(c for c, _, _ in warm):.3f} s CPU, {max(r for _, r, _ in warm):.0f} MiB"
                  f"  (exit {cold[-1][2]}; min CPU / max RSS of {a.rounds} rounds)")
    sizes = sorted(cold_cpu)
    if len(sizes) > 1:
        lo, hi = sizes[0], sizes[-1]
        print(f"cold CPU exponent {lo} -> {hi}: {math.log(cold_cpu[hi] / cold_cpu[lo]) / math.log(hi / lo):.2f}")


if __name__ == "__main__":
    main()
