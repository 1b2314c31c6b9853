"""Performance benchmarks on the 2-core machine (figures, not assertions).

    python benchmarks/bench.py [--specs 1000] [--repeat 5]

Generates a synthetic repo (benchmarks/gen_repo.py) in a temp dir and reports, best of
--repeat runs:
  help        `specops --help` wall time (process start included)        target <= 0.3 s
  validate    load + resolve of the repo, in-process                      target <= 0.5 s
  validate-cli `specops validate DIR` wall time                            (for reference)
  compile     validate + compile to every backend, all envs, in-process  target <= 1 s
  noop        `compile` again with nothing changed (incremental cache)   target <= 0.15 s
  alias-bomb  a billion-laughs file (10^12 nodes expanded) rejected         target < 1 s
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from gen_repo import generate  # noqa: E402


def best(fn, repeat: int) -> float:
    times = []
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return min(times)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--specs", type=int, default=1000)
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--json", action="store_true")
    a = ap.parse_args()

    from specops.build.compile import compile_repo
    from specops.checks import analyze

    results: dict[str, float] = {}
    with tempfile.TemporaryDirectory() as d:
        repo = generate(Path(d) / "repo", a.specs)
        exe = [sys.executable, "-m", "specops"]
        results["help"] = best(lambda: subprocess.run(exe + ["--help"], capture_output=True, check=True), a.repeat)

        def validate() -> None:
            r = analyze(repo)
            assert not r.diagnostics.has_errors, r.diagnostics.sorted()[:3]

        validate()  # warm imports, as a CLI process would have paid them before its clock
        results["validate"] = best(validate, a.repeat)
        results["validate-cli"] = best(lambda: subprocess.run(exe + ["validate", str(repo)], capture_output=True,
                                                              check=True), a.repeat)

        def full_compile() -> None:
            r = analyze(repo)
            b = compile_repo(r, cache_dir=None)
            assert not b.diagnostics.has_errors, b.diagnostics.sorted()[:3]
            b.files()

        full_compile()
        results["compile"] = best(full_compile, a.repeat)
        out = Path(d) / "build"
        subprocess.run(exe + ["compile", str(repo), "--out", str(out)], capture_output=True, check=True)
        results["noop-cli"] = best(lambda: subprocess.run(exe + ["compile", str(repo), "--out", str(out)],
                                                          capture_output=True, check=True), a.repeat)
        try:
            from specops.build.compile import noop_compile  # incremental compile's fast path
        except ImportError:
            noop_compile = None
        if noop_compile is not None:
            results["noop"] = best(lambda: noop_compile(repo, out), a.repeat)
    from specops.frontend.yamlio import parse

    lines = ['a0: &a0 ["lol","lol","lol","lol","lol","lol","lol","lol","lol","lol"]']
    lines += [f"a{i}: &a{i} [{','.join(f'*a{i - 1}' for _ in range(10))}]" for i in range(1, 12)]
    bomb = ("\n".join(lines) + "\n").encode()
    results["alias-bomb"] = best(lambda: parse(bomb, "bomb.yaml"), a.repeat)
    if a.json:
        print(json.dumps({k: round(v, 4) for k, v in results.items()}, sort_keys=True))
    else:
        for k, v in results.items():
            print(f"{k:<13} {v * 1000:8.1f} ms")


if __name__ == "__main__":
    main()
