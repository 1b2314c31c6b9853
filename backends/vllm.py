"""vLLM serve configs: exact flag checking and `vllm serve --config` YAML emission.

Emits the flat YAML mapping that `vllm serve --config FILE` (and
`python -m vllm.entrypoints.openai.api_server --config FILE`) reads in vLLM 0.32: kebab-case
serve-flag names, `model` included (vLLM turns it into `--model`), booleans as true/false
(vLLM maps false to `--no-flag`), lists for multi-value flags and mappings for JSON flags
(`speculative-config`, `compilation-config`, ...). Keys are sorted; identical input gives
identical bytes.

Flags are checked against pinned per-version lists in `vllm_flags/<version>.json`, generated
from vLLM's own parser by `tools/gen_vllm_flags.py`. vLLM's argparse accepts any unambiguous
prefix (`max-model: 4096` silently sets `max-model-len`), so here only exact names pass.
Flags that an older list has and the chosen version lacks are "removed"; the curated
`vllm_flags/removed.json` names their replacement.

Only the standard library and PyYAML (through `yaml_emit`) are imported here. `live_check` runs vLLM's own parser
in a separate interpreter (the vLLM venv, see tools/setup_vllm_venv.sh), because vLLM's pins
clash with the main venv's.
"""

from __future__ import annotations

import json
import math
import os
import re
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from types import MappingProxyType
from typing import Any, Literal, Mapping

from specops.backends import yaml_emit
from specops.diagnostics import did_you_mean

FLAGS_DIR = Path(__file__).resolve().parent / "vllm_flags"
REMOVED_FILE = "removed.json"

ProblemCode = Literal["vllm-flag", "vllm-removed-flag", "value"]

# Serve flags specops sets itself or that make no sense inside a config file.
RESERVED = {
    "model": "the model is set from the ServingTarget's model, not from engine args",
    "config": "a serve config cannot include another config file",
    "help": "'help' makes vLLM print its usage and exit",
}
# Serve flags the lowering sets from other spec fields: a spec may not write them as engine
# args (two sources for one value), but the lowered args carry them.
SPEC_OWNED = {
    "revision": "the revision is the served Model's `llm.base.revision` (a pinned commit)",
    "lora-modules": "adapters are set from the ServingTarget's `adapters`",
}

_HUMAN_INT = re.compile(r"\s*(\d+(\.\d+)?[kmgt]|\d+[KMGT]|[+-]?\d+)\s*")


# ---- flag tables ------------------------------------------------------------------------


@dataclass(frozen=True)
class Flag:
    """One long serve flag of one vLLM version, as its parser defines it."""

    name: str  # canonical kebab-case name without dashes: "tensor-parallel-size"
    dest: str
    type: str  # bool|int|float|str|json|json-or-str|human-int|human-int-or-auto
    bool: bool = False
    negation: str | None = None  # "no-enforce-eager" for BooleanOptionalAction flags
    optional: bool = False  # the converter also accepts "None" / ""
    choices: tuple[Any, ...] | None = None
    nargs: str | int | None = None
    json: bool = False
    aliases: tuple[str, ...] = ()  # short forms without dashes: ("tp",)
    deprecated: bool = False
    const: Any = None  # value stored by a bare `--flag` when nargs is "?"
    action: str = "_StoreAction"

    @property
    def multi(self) -> bool:
        return self.nargs in ("+", "*") or (isinstance(self.nargs, int) and self.nargs > 1)


@dataclass(frozen=True)
class FlagTable:
    """All serve flags of one vLLM version (from `vllm_flags/<version>.json`)."""

    version: str
    source: str
    generated: bool
    flags: Mapping[str, Flag]
    note: str | None = None
    aliases: Mapping[str, str] = field(default_factory=dict)  # short/negated form -> name

    def __contains__(self, name: object) -> bool:
        return name in self.flags

    def get(self, name: str) -> Flag | None:
        return self.flags.get(name)

    @property
    def names(self) -> list[str]:
        return sorted(self.flags)


@dataclass(frozen=True)
class RemovedFlag:
    name: str
    last_seen: str | None  # newest known version that still had it (None: before all lists)
    replacement: str | None
    hint: str


@dataclass(frozen=True)
class ArgProblem:
    """One problem with one engine arg. `key` is the key as written in the spec (None when the
    problem is about the engine version itself); `suggestion` is a flag name or value to offer."""

    key: str | None
    code: ProblemCode
    message: str
    suggestion: str | None = None
    severity: Literal["error", "warning"] = "error"


class UnknownVersion(ValueError):
    def __init__(self, version: str):
        self.version = version
        super().__init__(f"no vLLM flag list for version {version!r}; known: {', '.join(known_versions())}")


class VllmArgsError(ValueError):
    """serve_config was given args that check_args rejects."""

    def __init__(self, problems: list[ArgProblem]):
        self.problems = problems
        super().__init__("; ".join(p.message for p in problems))


def _version_key(version: str) -> tuple[int, ...]:
    return tuple(int(p) for p in re.findall(r"\d+", version))


@lru_cache(maxsize=1)
def known_versions() -> list[str]:
    """vLLM versions with a pinned flag list, oldest first."""
    versions = [p.stem for p in FLAGS_DIR.glob("*.json") if p.name != REMOVED_FILE]
    return sorted(versions, key=_version_key)


@lru_cache(maxsize=None)
def flags_for(version: str) -> FlagTable:
    """The flag table of one vLLM version; UnknownVersion if none is pinned."""
    if version not in known_versions():
        raise UnknownVersion(version)
    doc = json.loads((FLAGS_DIR / f"{version}.json").read_text(encoding="utf-8"))
    flags: dict[str, Flag] = {}
    aliases: dict[str, str] = {}
    for name, e in doc["flags"].items():
        flags[name] = Flag(
            name=name, dest=e["dest"], type=e["type"], bool=e["bool"], negation=e["negation"],
            optional=e["optional"], choices=tuple(e["choices"]) if e["choices"] is not None else None,
            nargs=e["nargs"], json=e["json"], aliases=tuple(e["aliases"]), deprecated=e["deprecated"],
            const=e.get("const"), action=e["action"],
        )
        for a in e["aliases"]:
            aliases[a] = name
        if e["negation"]:
            aliases[e["negation"]] = name
    return FlagTable(version=doc["version"], source=doc["source"], generated=doc["generated"],
                     flags=MappingProxyType(flags), note=doc.get("note"),
                     aliases=MappingProxyType(aliases))


@lru_cache(maxsize=1)
def _curated_removed() -> dict[str, dict[str, Any]]:
    return json.loads((FLAGS_DIR / REMOVED_FILE).read_text(encoding="utf-8"))["flags"]


@lru_cache(maxsize=None)
def removed_flags(version: str) -> dict[str, RemovedFlag]:
    """Flags that an older pinned list has and `version` lacks, plus curated older removals."""
    current = flags_for(version)
    curated = _curated_removed()
    out: dict[str, RemovedFlag] = {}
    for older in known_versions():
        if _version_key(older) >= _version_key(version):
            break
        for name in flags_for(older).flags:
            if name in current:
                continue
            c = curated.get(name, {})
            out[name] = RemovedFlag(name, older, c.get("replacement"), c.get("hint", ""))
    for name, c in curated.items():
        gone_by = c.get("gone_by")
        if name in out or name in current or gone_by is None:
            continue
        if _version_key(gone_by) <= _version_key(version):
            out[name] = RemovedFlag(name, None, c.get("replacement"), c.get("hint", ""))
    return out


def _newer_versions_with(name: str, version: str) -> list[str]:
    return [v for v in known_versions()
            if _version_key(v) > _version_key(version) and name in flags_for(v)]


# ---- checking ---------------------------------------------------------------------------


def _type_name(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, (int, float)):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, Mapping):
        return "a mapping"
    if isinstance(value, (list, tuple)):
        return "a list"
    return type(value).__name__


def _check_scalar(flag: Flag, value: Any) -> str | None:
    """Why one (scalar) value cannot be passed to `flag`, or None when it can."""
    t = flag.type
    if isinstance(value, bool):
        return f"'{flag.name}' takes {t} values, not a boolean"
    if isinstance(value, (Mapping, list, tuple)) or value is None:
        return f"'{flag.name}' takes {t} values, not {_type_name(value)}"
    if isinstance(value, float) and not math.isfinite(value):
        return f"'{flag.name}' takes a finite number"
    if t == "int" and not isinstance(value, int):
        return f"'{flag.name}' takes an integer, not {_type_name(value)} ({value!r})"
    if t == "float" and not isinstance(value, (int, float)):
        return f"'{flag.name}' takes a number, not {_type_name(value)} ({value!r})"
    if t in ("human-int", "human-int-or-auto"):
        ok = isinstance(value, int) or (isinstance(value, str) and bool(_HUMAN_INT.fullmatch(value)))
        if t == "human-int-or-auto" and isinstance(value, str) and value.strip().lower() == "auto":
            ok = True
        if not ok:
            extra = ", 'auto'" if t == "human-int-or-auto" else ""
            return f"'{flag.name}' takes an integer or a size like '4k' / '32K'{extra}, not {value!r}"
    if flag.choices is not None:
        allowed = [str(c) for c in flag.choices]
        if str(value) not in allowed:
            return f"'{flag.name}' must be one of {', '.join(allowed)}; got {value!r}"
    return None


def _check_value(flag: Flag, value: Any) -> tuple[str | None, str | None]:
    """(message, suggestion) for a value `flag` cannot take; (None, None) when it is fine."""
    if value is None:
        return f"'{flag.name}' is null; omit the key to keep vLLM's default", None
    if flag.bool:
        if not isinstance(value, bool):
            return f"'{flag.name}' is a switch: write true or false, not {_type_name(value)} ({value!r})", None
        return None, None
    if flag.nargs == "?" and flag.const is not None and isinstance(value, bool):
        # `--flag` alone stores const (e.g. hf-token: true); false leaves the flag out.
        return None, None
    if flag.json:
        if isinstance(value, (Mapping, list, tuple)):
            return None, None
        if isinstance(value, str):
            if flag.type == "json-or-str":
                return None, None
            try:
                json.loads(value)
            except ValueError:
                return f"'{flag.name}' takes a mapping (JSON); {value!r} is not JSON", None
            return None, None
        return f"'{flag.name}' takes a mapping (JSON), not {_type_name(value)} ({value!r})", None
    if isinstance(value, (list, tuple)):
        if not flag.multi:
            return f"'{flag.name}' takes one value, not a list", None
        if isinstance(flag.nargs, int) and len(value) != flag.nargs:
            return f"'{flag.name}' takes exactly {flag.nargs} values; got {len(value)}", None
        if flag.nargs == "+" and not value:
            return f"'{flag.name}' takes at least one value; an empty list leaves the flag out", None
        for item in value:
            msg = _check_scalar(flag, item)
            if msg:
                return msg, _choice_suggestion(flag, item)
        return None, None
    msg = _check_scalar(flag, value)
    return msg, (_choice_suggestion(flag, value) if msg else None)


def _choice_suggestion(flag: Flag, value: Any) -> str | None:
    if flag.choices is None or isinstance(value, (bool, Mapping, list, tuple)) or value is None:
        return None
    return did_you_mean(str(value), [str(c) for c in flag.choices])


def _unknown_key(key: str, norm: str, version: str, table: FlagTable) -> ArgProblem:
    # argparse resolves an unambiguous prefix of a long option; reject it with the full name.
    prefixed = sorted(n for n in table.flags if n.startswith(norm))
    if prefixed:
        best = prefixed[0] if len(prefixed) == 1 else (did_you_mean(norm, prefixed, cutoff=0.0) or prefixed[0])
        how = ("vLLM's parser would take it as an abbreviation of" if len(prefixed) == 1
               else "it abbreviates several flags, e.g.")
        return ArgProblem(key, "vllm-flag",
                          f"'{key}' is not an exact vLLM {version} serve flag ({how} '{best}'); "
                          f"write '{best}'", best)
    newer = _newer_versions_with(norm, version)
    best = did_you_mean(norm, table.flags)
    msg = f"'{key}' is not a vLLM {version} serve flag"
    if newer:
        msg += f" (it exists from vLLM {newer[0]} on)"
    if best:
        msg += f"; did you mean '{best}'?"
    return ArgProblem(key, "vllm-flag", msg, best)


def check_args(args: Mapping[str, Any], version: str, *, as_written: bool = True) -> list[ArgProblem]:
    """Problems with engine args (spec keys -> values) for vLLM `version`, in key order.

    Keys must be exact serve-flag names in kebab case; underscores pass (vLLM accepts them)
    with a warning naming the kebab form. Problems: unknown or abbreviated flags and short
    aliases ('vllm-flag'), flags the version removed ('vllm-removed-flag', suggestion = the
    replacement), and values of the wrong type or outside the choices ('value').
    `as_written`: the args as the spec wrote them, where SPEC_OWNED flags are errors too.
    """
    try:
        table = flags_for(version)
    except UnknownVersion:
        known = known_versions()
        return [ArgProblem(None, "value",
                           f"no vLLM flag list for engine version '{version}'; known versions: "
                           f"{', '.join(known)}", did_you_mean(version, known) or known[-1])]
    removed = removed_flags(version)
    problems: list[ArgProblem] = []
    seen: dict[str, str] = {}  # kebab name -> key as written, to catch `a_b` beside `a-b`
    for key, value in args.items():
        if not isinstance(key, str) or not key:
            problems.append(ArgProblem(str(key), "value", f"engine arg keys must be flag names, not {key!r}"))
            continue
        if key.startswith("-"):
            bare = key.lstrip("-").replace("_", "-")
            problems.append(ArgProblem(key, "vllm-flag",
                                       f"write engine args without leading dashes: '{bare}'", bare))
            continue
        norm = key.replace("_", "-")
        head = norm.split(".", 1)[0]
        if "." in norm and head in table and table.flags[head].json:
            # vLLM reads `--compilation-config.mode 3`, but a spec writes the nested mapping.
            problems.append(ArgProblem(key, "vllm-flag",
                                       f"'{key}': write '{head}' as a mapping instead of dotted keys", head))
            continue
        if norm in RESERVED or (as_written and norm in SPEC_OWNED):
            problems.append(ArgProblem(key, "vllm-flag", f"'{key}': {RESERVED.get(norm) or SPEC_OWNED[norm]}"))
            continue
        flag = table.get(norm)
        if flag is None:
            if norm in table.aliases:
                target = table.aliases[norm]
                t = table.flags[target]
                if t.negation == norm:
                    msg = f"'{key}' is the negative form of '{target}'; write '{target}: false'"
                else:
                    msg = f"'{key}' is a short alias; write the full flag name '{target}'"
                problems.append(ArgProblem(key, "vllm-flag", msg, target))
            elif norm in removed:
                r = removed[norm]
                seen = f" (last in {r.last_seen})" if r.last_seen else ""
                msg = f"'{key}' was removed from vLLM before {version}{seen}"
                if r.hint:
                    msg += f"; {r.hint}"
                elif r.replacement:
                    msg += f"; use '{r.replacement}' instead"
                problems.append(ArgProblem(key, "vllm-removed-flag", msg, r.replacement))
            else:
                problems.append(_unknown_key(key, norm, version, table))
            continue
        if norm in seen:
            problems.append(ArgProblem(key, "vllm-flag",
                                       f"'{key}' sets the same flag as '{seen[norm]}'", norm))
            continue
        seen[norm] = key
        if norm != key:
            problems.append(ArgProblem(key, "vllm-flag",
                                       f"'{key}': write flag names in kebab case, '{norm}'", norm,
                                       severity="warning"))
        if flag.deprecated:
            problems.append(ArgProblem(key, "vllm-flag", f"'{norm}' is deprecated in vLLM {version}",
                                       severity="warning"))
        msg, sugg = _check_value(flag, value)
        if msg:
            problems.append(ArgProblem(key, "value", msg, sugg))
    return problems


# ---- emission ---------------------------------------------------------------------------


def _plain(value: Any) -> Any:
    """Mappings/sequences from any loader (ruamel's CommentedMap...) as plain dicts/lists."""
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value


def serve_config_dict(args: Mapping[str, Any], *, model: str, version: str) -> dict[str, Any]:
    """The serve config as a plain dict (kebab keys, `model` included); see serve_config."""
    errors = [p for p in check_args(args, version, as_written=False) if p.severity == "error"]
    if errors:
        raise VllmArgsError(errors)
    if not isinstance(model, str) or not model:
        raise ValueError("model must be a non-empty string")
    table = flags_for(version)
    out: dict[str, Any] = {"model": model}
    for key, value in args.items():
        name = key.replace("_", "-")
        flag = table.flags[name]
        value = _plain(value)
        if flag.json and isinstance(value, list):
            # vLLM would spread a YAML list over separate argv words; a JSON flag takes one
            # JSON word, so the list goes in as its JSON text.
            value = json.dumps(value, sort_keys=True, separators=(",", ":"))
        out[name] = value
    return out


def lora_rank_for(rank: int, version: str) -> int | None:
    """The smallest `max-lora-rank` vLLM `version` allows that holds an adapter of `rank`
    (its flag's choices: 1, 8, 16, 32, 64, 128, 256, 320, 512 in 0.32); None when none does."""
    flag = flags_for(version).get("max-lora-rank")
    if flag is None:
        return None
    if flag.choices is None:  # older versions take any integer
        return rank
    return next((c for c in sorted(int(c) for c in flag.choices) if c >= rank), None)


def serving_args(node: Any) -> dict[str, Any]:
    """An `ir.Serving` node's engine args plus what its other fields set: `lora-modules` for
    its adapters (`name=path`, the path the platform's init step fetched them to) and the
    smallest `max-lora-rank` that holds the largest adapter, unless the spec gave one."""
    args = dict(node.engine_args)
    if node.adapters:
        args["lora-modules"] = [f"{a.name}={a.path}" for a in node.adapters]
        if "max-lora-rank" not in args:
            rank = lora_rank_for(max(a.rank for a in node.adapters), node.engine_version)
            if rank is not None:  # too large a rank is reported by the serving checks
                args["max-lora-rank"] = rank
    return dict(sorted(args.items()))


def node_serve_config(node: Any) -> bytes:
    """The `vllm serve --config` file of an `ir.Serving` node (see serving_args)."""
    return serve_config(serving_args(node), model=node.model_uri, version=node.engine_version)


def serve_config(args: Mapping[str, Any], *, model: str, version: str) -> bytes:
    """`vllm serve --config` YAML for `model` with engine `args`, checked against `version`.

    Raises VllmArgsError when check_args finds errors. Output: UTF-8 YAML, one flat mapping,
    keys sorted, block style; identical input gives identical bytes.
    """
    # The shared emitter: PyYAML-safe_dump-identical bytes (sorted keys, block style),
    # multi-line strings (chat templates) as literal blocks.
    data = serve_config_dict(args, model=model, version=version)
    text = yaml_emit.dump(data)
    loaded = _as_loaded(data)
    if loaded is not None:
        if len(_LOADED) >= _LOADED_MAX:
            del _LOADED[next(iter(_LOADED))]
        _LOADED[text] = loaded
    return text


# What YAML-loading an emitted serve config gives back, by its bytes: every serving platform
# reads the config it wraps (kubernetes.load_serve_config), two or three times per target
# right after it is emitted, and parsing it again was a tenth of a serving target's compile.
# The last few configs are enough.
_LOADED: dict[bytes, dict[str, Any]] = {}
_LOADED_MAX = 64
# Line breaks besides \n: libyaml's reader normalises some of them (\r\n, \x85) when they
# stand in a literal block. Text holding any of them is parsed, not assumed.
_NOT_KEPT = ("\r", "\x85", "\u2028", "\u2029")


def loaded_serve_config(text: bytes) -> dict[str, Any] | None:
    """`yaml.safe_load(text)` for a serve config this process emitted (a fresh copy), else None."""
    data = _LOADED.get(text)
    return _copy(data) if data is not None else None


def _as_loaded(value: Any) -> Any:
    """`value` as loading its YAML gives it back (mappings in key order, tuples as lists), or
    None where the two could differ."""
    t = type(value)
    if t is dict:
        out = {}
        for k in sorted(value):
            v = _as_loaded(value[k])
            if v is None and value[k] is not None:
                return None
            out[k] = v
        return out
    if t is list or t is tuple:
        items = [_as_loaded(v) for v in value]
        return None if any(a is None and b is not None for a, b in zip(items, value)) else items
    if t is str:
        return None if any(c in value for c in _NOT_KEPT) else value
    if t is float:
        return value if math.isfinite(value) else None
    if t is int or t is bool or value is None:
        return value
    return None


def _copy(value: Any) -> Any:
    t = type(value)
    if t is dict:
        return {k: _copy(v) for k, v in value.items()}
    if t is list:
        return [_copy(v) for v in value]
    return value


# ---- live check with vLLM's own parser ----------------------------------------------------

# Runs in the vLLM venv. Fixed code: the config path arrives as argv[1], never as code.
_LIVE_SCRIPT = r"""
import json, re, sys
import importlib
for mod in ("vllm.entrypoints.common.cli_args", "vllm.entrypoints.launchers.cli_args",
            "vllm.entrypoints.openai.cli_args"):
    try:
        cli_args = importlib.import_module(mod)
        make_arg_parser = cli_args.make_arg_parser
        break
    except (ImportError, AttributeError):
        continue
try:
    from vllm.utils.argparse_utils import FlexibleArgumentParser
except ImportError:
    from vllm.utils import FlexibleArgumentParser
import vllm

class ParseError(Exception):
    pass

class Parser(FlexibleArgumentParser):
    def error(self, message):
        raise ParseError(message)

parser = make_arg_parser(Parser(description="vLLM OpenAI-Compatible RESTful API server."))
options = parser._option_string_actions
def canonical(option):
    action = options.get(option)
    if action is None:
        return option.lstrip("-")
    longs = [s for s in action.option_strings if s.startswith("--") and not s.startswith("--no-")]
    return (longs or action.option_strings)[0].lstrip("-")

def check(path):
    problems = []
    try:
        words = parser.load_config_file(path)
    except Exception as exc:
        return [{"key": None, "code": "value", "message": f"{type(exc).__name__}: {exc}"}]
    # vLLM's argparse accepts abbreviations, so exactness is checked on the file's keys first.
    for word in words:
        if word.startswith("--") and word.replace("_", "-") not in options:
            key = word[2:]
            problems.append({"key": key, "code": "vllm-flag",
                             "message": f"'{key}' is not an exact serve flag of vLLM {vllm.__version__}"})
    try:
        ns = parser.parse_args(["--config", path])
    except ParseError as exc:
        m = re.match(r"argument (\S+?):", str(exc))
        key = canonical(m.group(1).split("/")[0]) if m else None
        problems.append({"key": key, "code": "value", "message": str(exc)})
    except Exception as exc:
        problems.append({"key": None, "code": "value", "message": f"{type(exc).__name__}: {exc}"})
    else:
        validate = getattr(cli_args, "validate_parsed_serve_args", None)
        if validate is not None:
            try:
                validate(ns)
            except Exception as exc:
                problems.append({"key": None, "code": "value", "message": f"{type(exc).__name__}: {exc}"})
    return problems

results = {path: check(path) for path in sys.argv[1:]}
print("SPECOPS-LIVE-CHECK " + json.dumps({"version": vllm.__version__, "results": results}))
"""


class LiveCheckUnavailable(RuntimeError):
    """No vLLM interpreter to run the live check with, or it failed to run."""


def default_vllm_python() -> Path | None:
    """$SPECOPS_VLLM_PYTHON if set, else <repo>/.venv-vllm/bin/python; None if it is missing."""
    env = os.environ.get("SPECOPS_VLLM_PYTHON")
    # An explicit setting is used alone: falling back would check with a different vLLM.
    c = Path(env) if env else Path(__file__).resolve().parent.parent / ".venv-vllm" / "bin" / "python"
    return c if c.is_file() and os.access(c, os.X_OK) else None


def vllm_env(extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """Environment for running CPU vLLM offline (see docs/FACTS.md)."""
    env = dict(os.environ)
    env.update({"VLLM_TARGET_DEVICE": "cpu", "HF_HUB_OFFLINE": "1", "VLLM_CONFIGURE_LOGGING": "0",
                "TRANSFORMERS_OFFLINE": "1"})
    env.update(extra or {})
    return env


def live_check_many(config_paths: list[str | os.PathLike[str]], python: str | os.PathLike[str] | None = None,
                    *, timeout: float = 180.0) -> dict[str, list[ArgProblem]]:
    """Parse serve configs with vLLM's own parser in one vLLM interpreter (vLLM's import takes
    ~15 s, so batching pays); problems per path as given. Keys are checked for exactness too
    (vLLM's argparse would accept abbreviations). Raises LiveCheckUnavailable when no vLLM
    interpreter is found or it does not report."""
    exe = Path(python) if python is not None else default_vllm_python()
    if exe is None or not exe.exists():
        raise LiveCheckUnavailable("no vLLM interpreter: set SPECOPS_VLLM_PYTHON or run tools/setup_vllm_venv.sh")
    resolved = {os.fspath(p): os.fspath(Path(p).resolve()) for p in config_paths}
    if not resolved:
        return {}
    import subprocess  # here: every compile imports this module, and only this check runs a program

    try:
        proc = subprocess.run([os.fspath(exe), "-c", _LIVE_SCRIPT, *resolved.values()], capture_output=True,
                              text=True, timeout=timeout, env=vllm_env(), check=False)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise LiveCheckUnavailable(f"vLLM parser did not run: {exc}") from exc
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("SPECOPS-LIVE-CHECK ")]
    if not lines:
        raise LiveCheckUnavailable(f"vLLM parser gave no report (exit {proc.returncode}): {proc.stderr[-2000:]}")
    results = json.loads(lines[-1][len("SPECOPS-LIVE-CHECK "):])["results"]
    return {given: [ArgProblem(p["key"], p["code"], p["message"]) for p in results[real]]
            for given, real in resolved.items()}


def live_check(config_path: str | os.PathLike[str], python: str | os.PathLike[str] | None = None,
               *, timeout: float = 180.0) -> list[ArgProblem]:
    """Problems vLLM's own parser finds in one serve config; see live_check_many."""
    return live_check_many([config_path], python, timeout=timeout)[os.fspath(config_path)]
