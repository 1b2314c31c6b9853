"""`python -m specops.runtime`: run one lifecycle step inside a container (or anywhere).

    python -m specops.runtime <kind> (--params-json FILE | --params JSON) [--input NAME=DIR ...]
                              --output-dir DIR [--repo-root DIR]

An input or the output directory may be an s3:// or gs:// folder (a Kubeflow TrainJob's pods
see no KFP volume): inputs are copied down first, the output is copied up after the step
succeeds, by the process of rank 0 only when torchrun started several.

Prints the step's result as one JSON line on stdout. A failed check or gate, or bad params
(any StepError), prints its one-line message on stderr and exits 1, without a
traceback; argparse usage errors exit 2.
"""

from __future__ import annotations

import argparse
import json
import sys

from specops.runtime import KINDS, StepError, remote, run_step


def _parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="python -m specops.runtime", description="Run one specops lifecycle step.",
                                 allow_abbrev=False)
    ap.add_argument("kind", choices=sorted(KINDS))
    src = ap.add_mutually_exclusive_group(required=True)
    src.add_argument("--params-json", metavar="FILE", help="JSON file holding the step's params")
    src.add_argument("--params", metavar="JSON", help="the step's params as a JSON string")
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
        if args.params is not None:
            params = json.loads(args.params)
        else:
            with open(args.params_json, encoding="utf-8") as f:
                params = json.load(f)
    except (OSError, json.JSONDecodeError) as e:
        print(f"{args.kind}: cannot read params from {args.params_json or '--params'}: {e}", file=sys.stderr)
        return 1
    try:
        with remote.folders(inputs, args.output_dir) as (local_inputs, local_out):
            result = run_step(args.kind, params, inputs=local_inputs, output_dir=local_out,
                              repo_root=args.repo_root)
    except StepError as e:
        msg = " ".join(str(e).split())  # one line, whatever a message held
        print(msg, file=sys.stderr)
        return 1
    print(json.dumps(result, sort_keys=True))
    return 0


if __name__ == "__main__":
    sys.exit(main())
