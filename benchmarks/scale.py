"""Whole-process figures at 1k-10k specs, specops vs dbt-core in the same rounds (issue 18).

    bash benchmarks/setup_dbt.sh                    # once: dbt-core 1.11 + dbt-duckdb venv
    python benchmarks/scale.py --specs 1000 [--specs 10000] [--rounds 3] [--json OUT]

For each size, generates the scaled example (benchmarks/scale_repo.py) and dbt-core's
equivalent project, then runs rounds; in each round every command runs once, specops and dbt
interleaved so both meet the same load (the machine is shared). Per command it records the
child's wall time, its CPU time (user + sys, from wait4) and its peak RSS (ru_maxrss of that
child alone), and after the compiles the size of `.specops/cache` and of `build/` (du -sb).
Reports the best round per command (min wall, min CPU; max RSS of all rounds) and the load
average at the start of each round. Not a test: it prints figures.

specops commands (the `specops` next to this Python):
  help            specops --help
  validate-cold   specops validate, every cache removed first
  validate-warm   specops validate again, nothing changed
  compile-cold    specops compile, every cache and the build folder removed first
  compile-noop    specops compile again, nothing changed
  edit-compile    one prompt's `version:` set to a new value, then specops compile
dbt commands (benchmarks/.venv-dbt or --dbt-bin):
  dbt-full        dbt parse --no-partial-parse
  dbt-warm        dbt parse (partial parse, nothing changed)
  dbt-edit        one model's SQL edited, then dbt parse (partial parse)
"""

from __future__ import annotations

import argparse
import json
import math
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from scale_repo import generate, generate_dbt  # noqa: E402

SPECOPS = str(Path(sys.executable).with_name("specops"))


def run(cmd: list[str], cwd: Path | None = None) -> dict:
    """Wall, CPU (user+sys) and peak RSS (MiB) of one child process, from wait4."""
    t = time.perf_counter()
    p = subprocess.Popen(cmd, cwd=cwd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    err = p.stderr.read() if p.stderr else b""
    _, status, ru = os.wait4(p.pid, 0)
    p.returncode = os.waitstatus_to_exitcode(status)
    wall = time.perf_counter() - t
    if p.returncode not in (0,):
        raise SystemExit(f"{' '.join(cmd)} exited {p.returncode}:\n{err.decode()[-2000:]}")
    return {"wall": wall, "cpu": ru.ru_utime + ru.ru_stime, "rss_mb": ru.ru_maxrss / 1024}


def du(path: Path) -> int:
    if not path.exists():
        return 0
    return int(subprocess.run(["du", "-sb", str(path)], capture_output=True, text=True).stdout.split()[0])


def bump(path: Path, pattern: str, repl: str) -> None:
    text = path.read_text()
    new, n = re.subn(pattern, repl, text, count=1)
    assert n == 1, (path, pattern)
    path.write_text(new)


def one_round(repo: Path, dbt_dir: Path | None, dbt: str | None, k: int) -> dict:
    res: dict[str, dict] = {}
    cache = repo / ".specops"
    res["help"] = run([SPECOPS, "--help"])
    shutil.rmtree(cache, ignore_errors=True)
    res["validate-cold"] = run([SPECOPS, "validate", str(repo)])
    res["validate-warm"] = run([SPECOPS, "validate", str(repo)])
    if dbt:
        res["dbt-full"] = run([dbt, "parse", "--no-partial-parse", "--profiles-dir", "."], cwd=dbt_dir)
    shutil.rmtree(cache, ignore_errors=True)
    shutil.rmtree(repo / "build", ignore_errors=True)
    res["compile-cold"] = run([SPECOPS, "compile", str(repo)])
    res["compile-noop"] = run([SPECOPS, "compile", str(repo)])
    if dbt:
        res["dbt-warm"] = run([dbt, "parse", "--profiles-dir", "."], cwd=dbt_dir)
    # A new value each round, so no earlier build of these exact inputs can answer.
    bump(repo / "team0" / "copy0" / "prompts" / "support-reply.yaml", r"version: \d+", f"version: {100 + k}")
    res["edit-compile"] = run([SPECOPS, "compile", str(repo)])
    if dbt:
        bump(dbt_dir / "models" / "g0" / "m_5.sql", r"id \+ \d+", f"id + {100 + k}")
        res["dbt-edit"] = run([dbt, "parse", "--profiles-dir", "."], cwd=dbt_dir)
    res["sizes"] = {"cache_bytes": du(cache / "cache"), "build_bytes": du(repo / "build")}
    return res


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--specs", type=int, action="append", help="repo size (repeatable; default 1000)")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--dbt-bin", default=str(HERE / ".venv-dbt" / "bin" / "dbt"))
    ap.add_argument("--no-dbt", action="store_true")
    ap.add_argument("--only", help="comma-separated specops commands to report (all run)")
    ap.add_argument("--json", type=Path, help="also write every round's figures here")
    a = ap.parse_args()
    dbt = None if a.no_dbt or not Path(a.dbt_bin).exists() else a.dbt_bin
    if dbt is None and not a.no_dbt:
        print(f"(no dbt at {a.dbt_bin}: run `bash benchmarks/setup_dbt.sh`; specops only)")
    report: dict[str, dict] = {}
    with tempfile.TemporaryDirectory() as tmp:
        for n in a.specs or [1000]:
            repo = generate(Path(tmp) / f"repo{n}", n)
            dbt_dir = generate_dbt(Path(tmp) / f"dbt{n}", n) if dbt else None
            rounds = []
            for k in range(a.rounds):
                load = os.getloadavg()[0]
                r = one_round(repo, dbt_dir, dbt, k)
                r["load1"] = load
                rounds.append(r)
            report[str(n)] = {"rounds": rounds}
            print(f"\n== {n} specs (scaled support-assistant; dbt: {n} models), best of "
                  f"{a.rounds} rounds; load average (1 min) at each round: "
                  + ", ".join(f"{r['load1']:.2f}" for r in rounds))
            print(f"{'command':<15} {'wall s':>8} {'cpu s':>8} {'peak MiB':>9}")
            cmds = [c for c in rounds[0] if c not in ("sizes", "load1")]
            best = {}
            for c in cmds:
                best[c] = {"wall": min(r[c]["wall"] for r in rounds), "cpu": min(r[c]["cpu"] for r in rounds),
                           "rss_mb": max(r[c]["rss_mb"] for r in rounds)}
                print(f"{c:<15} {best[c]['wall']:>8.3f} {best[c]['cpu']:>8.3f} {best[c]['rss_mb']:>9.1f}")
            sizes = rounds[-1]["sizes"]
            print(f"cache {sizes['cache_bytes'] / 1e6:.1f} MB, build {sizes['build_bytes'] / 1e6:.1f} MB "
                  f"(ratio {sizes['cache_bytes'] / max(1, sizes['build_bytes']):.2f})")
            if dbt:
                for ours, theirs in (("validate-cold", "dbt-full"), ("compile-cold", "dbt-full"),
                                     ("compile-noop", "dbt-warm"), ("edit-compile", "dbt-edit")):
                    print(f"{ours} vs {theirs}: {best[theirs]['wall'] / best[ours]['wall']:.1f}x faster (wall), "
                          f"{best[theirs]['cpu'] / best[ours]['cpu']:.1f}x (cpu)")
            report[str(n)]["best"] = best
    sizes = sorted(report, key=int)
    if len(sizes) > 1:
        # Issue 18's scaling target: t(n2)/t(n1) = (n2/n1)^k with k <= 1.0 for every command.
        lo, hi = sizes[0], sizes[-1]
        ratio = int(hi) / int(lo)
        print(f"\n== scaling exponent {lo} -> {hi} specs (CPU s; 1.0 is linear)")
        for c, b in report[lo]["best"].items():
            if c.startswith("dbt") or c == "help" or c not in report[hi]["best"]:
                continue
            t1, t2 = b["cpu"], report[hi]["best"][c]["cpu"]
            print(f"{c:<15} x{t2 / t1:6.2f}  exponent {math.log(t2 / t1) / math.log(ratio):.2f}")
    if a.json:
        a.json.write_text(json.dumps(report, indent=1, sort_keys=True))


if __name__ == "__main__":
    main()
