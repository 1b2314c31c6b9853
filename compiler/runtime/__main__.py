"""`python -m specops.runtime`: run one lifecycle step inside a container (or anywhere).

    python -m specops.runtime <kind> --params-json FILE [--input NAME=DIR ...]
                              --output-dir DIR [--repo-root DIR]

Prints the step's result as one JSON line on stdout. A failed check or gate, or bad params
(any StepError), prints its one-line message on stderr and exits 1, without a
traceback; argparse usage errors exit 2.
"""

from __future__ import annotations

import argparse
import json
import sys

from specops.runtime import KINDS, StepError, run_step


def _parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="python -m specops.runtime", description="Run one specops lifecycle step.",
                                 allow_abbrev=False)
    ap.add_argument("kind", choices=sorted(KINDS))
    ap.add_argument("--params-json", required=True, metavar="FILE", help="JSON file holding the step's params")
    ap.add_argument("--input", action="append", default=[], metavar="NAME=DIR",
                    help="an upstream output directory (repeatable)")
    ap.add_argument("--output-dir", required=True, metavar="DIR")
    ap.add_argument("--repo-root", default=".", metavar="DIR")
    return ap


def main(argv: list[str] | None = None) -> int:
    ap = _parser()
    args = ap.parse_args(argv)
    inputs: dict[str, str] = {}
    for item in args.input:
        name, sep, path = item.partition("=")
        if not sep or not name or not path:
            ap.error(f"--input expects NAME=DIR, got {item!r}")
        if name in inputs:
            ap.error(f"--input {name!r} given twice")
        inputs[name] = path
    try:
        with open(args.params_json, encoding="utf-8") as f:
            params = json.load(f)
    except (OSError, json.JSONDecodeError) as e:
        print(f"{args.kind}: cannot read params from {args.params_json}: {e}", file=sys.stderr)
        return 1
    try:
        result = run_step(args.kind, params, inputs=inputs, output_dir=args.output_dir, repo_root=args.repo_root)
    except StepError as e:
        msg = " ".join(str(e).split())  # one line, whatever a message held
        print(msg, file=sys.stderr)
        return 1
    print(json.dumps(result, sort_keys=True))
    return 0


if __name__ == "__main__":
    sys.exit(main())
