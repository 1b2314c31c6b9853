"""`specops validate examples/support-assistant` on the core install, empty cache (issue 10).

    python benchmarks/validate_core.py [--repeat 5] [--venv DIR]

Builds (once, or reuses with --venv) a fresh virtual environment holding only
`pip install <this checkout>` — no extras, so no torch and no transformers — copies the example
to a temp dir and times the CLI as a CI runner would call it, each run with an empty
XDG_CACHE_HOME (no cached model facts) and an empty repo cache. Reports best and median wall
time, the exit code, and whether torch was importable in that venv (it must not be).

Target: exit 0 in <= 1 s. Measured here (2 cores, December 2026): about 0.65 s.
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import venv
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def core_venv(where: Path) -> Path:
    """A venv with only the core package installed; its `specops` console script."""
    venv.EnvBuilder(with_pip=True, clear=True).create(where)
    subprocess.run([str(where / "bin" / "pip"), "install", "-q", str(ROOT)], check=True)
    return where


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--venv", type=Path, help="reuse this core venv instead of building one")
    a = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        t = Path(tmp)
        env_dir = a.venv if a.venv else core_venv(t / "venv")
        has_torch = subprocess.run([str(env_dir / "bin" / "python"), "-c", "import torch"],
                                   capture_output=True).returncode == 0
        times, codes = [], []
        for i in range(a.repeat):
            repo = t / f"repo{i}"
            shutil.copytree(ROOT / "examples" / "support-assistant", repo,
                            ignore=shutil.ignore_patterns("build", ".specops"))
            env = {"PATH": f"{env_dir / 'bin'}:/usr/bin:/bin", "XDG_CACHE_HOME": str(t / f"cache{i}"),
                   "HOME": str(t / "home")}
            start = time.perf_counter()
            p = subprocess.run([str(env_dir / "bin" / "specops"), "validate", str(repo)], env=env,
                               capture_output=True, text=True)
            times.append(time.perf_counter() - start)
            codes.append(p.returncode)
            if p.returncode:
                print(p.stdout + p.stderr, file=sys.stderr)
        print(f"validate support-assistant, core install (torch importable: {has_torch}), empty cache: "
              f"best {min(times):.3f} s, median {statistics.median(times):.3f} s, exit codes {sorted(set(codes))} "
              f"(target: exit 0 in <= 1 s)")
        return 0 if set(codes) == {0} else 1


if __name__ == "__main__":
    sys.exit(main())
