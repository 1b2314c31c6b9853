"""What policy rules add to `validate` on a repo of N specs (issue 16).

    python benchmarks/rules_cost.py [--specs 1000] [--repeat 3]

Generates the synthetic repo of benchmarks/gen_repo.py, then times `checks.analyze` in this
process (best of --repeat, warm imports) three ways: with every built-in rule disabled, the
repo as generated (the built-in rules only, on by default), and with five team rules added (one per kind over
labels and the resolved spec, one over every ServingTarget's cost and KV headroom, which
plans its capacity). Reports wall time, the rules' share, and the number of evaluations.
The first CEL use in a process also pays cel-python's import and parser build, reported
apart.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from gen_repo import generate  # noqa: E402

from specops.checks import analyze, cel  # noqa: E402
from specops.checks.rules import BUILTIN_RULES  # noqa: E402

RULES = """\
apiVersion: specops.dev/v1alpha1
kind: Rule
metadata: {name: team-label}
spec:
  expression: "kind == 'EvalGate' || has(labels.team) || !has(labels.team)"
---
apiVersion: specops.dev/v1alpha1
kind: Rule
metadata: {name: models-are-typed}
spec:
  kinds: [Model]
  expression: "spec.type in ['classical', 'llm']"
---
apiVersion: specops.dev/v1alpha1
kind: Rule
metadata: {name: dataset-has-columns}
spec:
  kinds: [Dataset]
  expression: "!has(spec.columns) || spec.columns.all(c, size(c.name) > 0)"
---
apiVersion: specops.dev/v1alpha1
kind: Rule
metadata: {name: serving-budget}
spec:
  expression: "cost_per_hour == null || cost_per_hour <= 1000"
---
apiVersion: specops.dev/v1alpha1
kind: Rule
metadata: {name: kv-headroom}
spec:
  expression: "kv_headroom == null || kv_headroom >= 0.0"
"""


def best(root: Path, repeat: int) -> tuple[float, int]:
    times, errors = [], 0
    for _ in range(repeat):
        t = time.perf_counter()
        r = analyze(root)
        times.append(time.perf_counter() - t)
        errors = sum(d.severity == "error" for d in r.diagnostics.items)
    return min(times), errors


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--specs", type=int, default=1000)
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        root = generate(Path(tmp) / "repo", args.specs)
        t = time.perf_counter()
        cel.parse("1 == 1")
        first_cel = time.perf_counter() - t
        project = root / "specops.yaml"
        original = project.read_text(encoding="utf-8")
        # a flow mapping appended to the Project's spec: every built-in rule off
        project.write_text(original.rstrip("\n") + f"\n  rules: {{disable: {json.dumps(list(BUILTIN_RULES))}}}\n",
                           encoding="utf-8")
        bare, _ = best(root, args.repeat)
        project.write_text(original, encoding="utf-8")
        base, base_err = best(root, args.repeat)
        (root / "rules.yaml").write_text(RULES, encoding="utf-8")
        ruled, ruled_err = best(root, args.repeat)
    print(f"specs: {args.specs} (+5 rules); validate, best of {args.repeat}")
    print(f"  no rules at all:     {bare:.3f} s")
    print(f"  built-in rules only: {base:.3f} s ({base_err} errors); built-ins add {base - bare:+.3f} s")
    print(f"  + 5 team rules:      {ruled:.3f} s ({ruled_err} errors); rules add {ruled - base:+.3f} s "
          f"({(ruled - base) / base:+.1%})")
    print(f"  first CEL use in a process (import + parser build): {first_cel:.3f} s")


if __name__ == "__main__":
    main()
