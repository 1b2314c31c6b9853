"""Diagnostics as data: every problem specops finds carries a position and a named code.

Problems are collected into a `Diagnostics` list, sorted into a stable order and reported
together; nothing is raised per problem. Rendering (text with source line and caret, JSON,
GitHub workflow annotations) lives here too so every command reports the same way.
"""

from __future__ import annotations

import difflib
import json
import re
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Iterable, Iterator, Literal

from specops.fsio import ReadRefused, read_regular
from specops.redact import redact

Severity = Literal["error", "warning", "note"]

@dataclass(frozen=True, slots=True)
class Code:
    """A named diagnostic code (mypy's ErrorCode): what `--json` and GitHub annotations carry,
    so CI tooling can filter on it. Every code is registered once, below; a Diagnostic with
    an unregistered code is a programming error, refused at construction (and by the tests)."""

    name: str
    description: str

    def __str__(self) -> str:
        return self.name


# The one registry: code name -> Code.
CODES: dict[str, Code] = {}


def register(name: str, description: str) -> Code:
    if name in CODES:
        raise ValueError(f"diagnostic code {name!r} is registered twice")
    code = CODES[name] = Code(name, description)
    return code


YAML_SYNTAX = register("yaml-syntax", "the file is not well-formed YAML")
YAML_DUPLICATE_KEY = register("yaml-duplicate-key", "a mapping holds the same key twice")
YAML_TAG = register("yaml-tag", "a custom or unsafe YAML tag")
YAML_ALIAS_LIMIT = register("yaml-alias-limit", "alias expansion exceeds the limit (billion-laughs guard)")
YAML_ENCODING = register("yaml-encoding", "the file is not UTF-8")
YAML_TOO_LARGE = register("yaml-too-large", "the file exceeds the size limit")
YAML_KEY_TYPE = register("yaml-key-type", "a mapping key is not a string")
YAML_LIMIT = register("yaml-limit", "nesting depth, node count or integer size exceeds specops's limit")
FILE_TYPE = register("file-type", "a spec path is a FIFO, device, socket or other special file")
FILE_READ = register("file-read", "a file or folder cannot be read")
PATH_ESCAPE = register("path-escape", "a path or symlink leaves the repository")
NO_PROJECT = register("no-project", "no specops.yaml at the repository root")
ENVELOPE = register("envelope", "apiVersion/kind/metadata/spec envelope is malformed")
UNKNOWN_KIND = register("unknown-kind", "kind is not one specops knows")
UNKNOWN_FIELD = register("unknown-field", "a key the schema does not have")
MISSING_FIELD = register("missing-field", "a required key is absent")
TYPE = register("type", "a value has the wrong type")
VALUE = register("value", "a value is out of range or malformed")
DUPLICATE_NAME = register("duplicate-name", "two specs of one kind share a name")
UNRESOLVED_REF = register("unresolved-ref", "a reference names no spec")
WRONG_KIND_REF = register("wrong-kind-ref", "a reference names a spec of the wrong kind")
CYCLE = register("cycle", "references form a cycle")
TEMPLATE_VARS = register("template-vars", "a prompt's template variables and declared variables disagree")
TEMPLATE_SYNTAX = register("template-syntax", "a prompt template does not parse")
THRESHOLD = register("threshold", "an eval-gate threshold does not parse")
UNKNOWN_ENV = register("unknown-env", "an environment name that the Project does not declare")
UNKNOWN_TARGET = register("unknown-target", "a target name that the Project does not declare")
PLAINTEXT_SECRET = register("plaintext-secret", "a secret field holds a plaintext value instead of a secret reference")
CREDENTIALS_IN_URI = register("credentials-in-uri", "a URI embeds credentials")
UNSUPPORTED = register("unsupported", "the chosen backend cannot express this")
VLLM_FLAG = register("vllm-flag", "not an exact vLLM serve flag for the chosen version")
VLLM_REMOVED_FLAG = register("vllm-removed-flag", "a vLLM flag that the chosen version removed")
CAPACITY = register("capacity", "the serving target does not fit its GPUs")
CAPACITY_TIGHT = register("capacity-tight", "the serving target fits its GPUs with little headroom")
CAPACITY_SKIPPED = register("capacity-skipped", "capacity was not planned: the model's parameters cannot be counted")
DATA_SCHEMA = register("data-schema", "a local data file's header or schema disagrees with the declared columns")
DATA_LOCK = register("data-lock", "a data source differs from its pin in specops.lock")
HYPERPARAMETER = register("hyperparameter", "an estimator has no such hyperparameter, or a value of the wrong type")
MONITOR = register("monitor", "a monitor's data, columns and checks do not fit together")
RULE_SYNTAX = register("rule-syntax", "a policy rule's CEL expression does not parse or exceeds the size limits")
RULE_BINDING = register("rule-binding", "a policy rule reads a name that is not one of its bindings")
RULE_EVAL = register("rule-eval", "a policy rule cannot be evaluated (a type error, a missing key, its step budget)")
POLICY = register("policy", "a policy rule (a Rule spec or a built-in rule) does not hold")
INTERNAL = register("internal", "specops itself failed; please report it")


@dataclass(frozen=True, slots=True)
class Pos:
    """A 1-based line and column in a file; `end_*` spans the offending token when known."""

    line: int
    col: int
    end_line: int | None = None
    end_col: int | None = None


_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029]")


def _printable(text: str) -> str:
    return _CONTROL.sub(lambda m: repr(m.group())[1:-1], text) if _CONTROL.search(text) else text


@dataclass(frozen=True, slots=True)
class Diagnostic:
    """One problem at one place. `file` is repo-relative (posix) or None for repo-wide ones."""

    severity: Severity
    code: str
    message: str
    file: str | None = None
    pos: Pos | None = None
    # Extra lines shown under the caret: "did you mean", the numbers behind a capacity error.
    notes: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        code = str(self.code)  # a Code object or its name
        if code not in CODES:
            raise ValueError(f"unregistered diagnostic code {code!r}: add it to specops.diagnostics")
        if code is not self.code:
            object.__setattr__(self, "code", code)
        # No message ever prints a secret, whoever wrote it (a pydantic error echoing the
        # input, a URI in an "unsupported scheme" message): credential shapes are redacted.
        # Nor a control character: a quoted YAML value may hold "\e[2J" or a newline, and a
        # message is one line that must not drive the terminal of whoever reads the CI log.
        object.__setattr__(self, "message", _printable(redact(self.message)))
        if self.notes:
            object.__setattr__(self, "notes", tuple(_printable(redact(n)) for n in self.notes))

    def sort_key(self) -> tuple:
        return (
            self.file or "",
            self.pos.line if self.pos else 0,
            self.pos.col if self.pos else 0,
            self.code,
            self.message,
        )

    def location(self) -> str:
        if self.file is None:
            return "<repo>"
        if self.pos is None:
            return self.file
        return f"{self.file}:{self.pos.line}:{self.pos.col}"

    def headline(self) -> str:
        return f"{self.location()}: {self.severity}: {self.message} [{self.code}]"

    def to_row(self) -> list:
        """Every field as plain JSON-able data (caches); `from_row` gives the same object back."""
        p = self.pos
        return [self.severity, self.code, self.message, self.file,
                *([p.line, p.col, p.end_line, p.end_col] if p else [None] * 4), list(self.notes)]

    @classmethod
    def from_row(cls, row: list) -> "Diagnostic":
        sev, code, msg, file, line, col, end_line, end_col, notes = row
        # Stored after __post_init__ (redaction, printable): set as they were, not processed twice.
        d = object.__new__(cls)
        for name, value in (("severity", sev), ("code", code), ("message", msg), ("file", file),
                            ("pos", Pos(line, col, end_line, end_col) if line is not None else None),
                            ("notes", tuple(notes))):
            object.__setattr__(d, name, value)
        return d

    def to_json(self) -> dict:
        out: dict = {
            "file": self.file,
            "line": self.pos.line if self.pos else None,
            "column": self.pos.col if self.pos else None,
            "severity": self.severity,
            "code": self.code,
            "message": self.message,
        }
        if self.notes:
            out["notes"] = list(self.notes)
        return out


@dataclass
class Diagnostics:
    """An ordered, de-duplicated collection of diagnostics."""

    items: list[Diagnostic] = field(default_factory=list)

    def add(self, d: Diagnostic) -> None:
        self.items.append(d)

    def error(self, code: str, message: str, file: str | None = None, pos: Pos | None = None,
              notes: Iterable[str] = ()) -> None:
        self.items.append(Diagnostic("error", code, message, file, pos, tuple(notes)))

    def warning(self, code: str, message: str, file: str | None = None, pos: Pos | None = None,
                notes: Iterable[str] = ()) -> None:
        self.items.append(Diagnostic("warning", code, message, file, pos, tuple(notes)))

    def extend(self, other: Iterable[Diagnostic]) -> None:
        self.items.extend(other)

    @property
    def has_errors(self) -> bool:
        return any(d.severity == "error" for d in self.items)

    def sorted(self) -> list[Diagnostic]:
        seen: set[Diagnostic] = set()
        out = []
        for d in sorted(self.items, key=Diagnostic.sort_key):
            if d not in seen:
                seen.add(d)
                out.append(d)
        return out

    def __iter__(self) -> Iterator[Diagnostic]:
        return iter(self.sorted())

    def __len__(self) -> int:
        return len(self.items)


class SpecError(Exception):
    """Raised to stop a command once diagnostics with errors are collected.

    Carries the diagnostics; the CLI renders them and exits 1. Never shown as a traceback.
    """

    def __init__(self, diagnostics: Diagnostics | Iterable[Diagnostic]):
        if not isinstance(diagnostics, Diagnostics):
            diagnostics = Diagnostics(list(diagnostics))
        self.diagnostics = diagnostics
        super().__init__("; ".join(d.headline() for d in diagnostics.sorted()[:3]))


def did_you_mean(word: str, candidates: Iterable[str], cutoff: float = 0.6) -> str | None:
    """The closest candidate to a misspelled word, or None when nothing is close."""
    matches = difflib.get_close_matches(word, sorted(set(candidates)), n=1, cutoff=cutoff)
    return matches[0] if matches else None


def suggestion(word: str, candidates: Iterable[str]) -> str:
    """'; did you mean 'x'?' or an empty string, to append to a message."""
    best = did_you_mean(word, candidates)
    return f"; did you mean '{best}'?" if best else ""


# ---- rendering ---------------------------------------------------------------------------

_LINE_BREAK = re.compile("\r\n|[\r\n\x85\u2028\u2029]")
_MAX_SOURCE_BYTES = 4 << 20
# What a plaintext-secret diagnostic points at is the secret (a credential in a URI is masked
# by `redact`, which keeps the rest of the URI readable).
_SECRET_CODES = ("plaintext-secret",)
_TOKEN_END = re.compile(r"[\s,\]}\"'#]|$")


def _token_end(text: str, start: int) -> int:
    m = _TOKEN_END.search(text, start + 1)
    return m.start() if m else len(text)


# The most characters of a source line shown under a diagnostic.
_MAX_SHOWN = 160


def _source_line(root: Path | None, d: Diagnostic, cache: dict[str, list[str]]) -> list[str]:
    if root is None or d.file is None or d.pos is None:
        return []
    lines = cache.get(d.file)
    if lines is None:
        try:
            raw = read_regular(root / d.file, _MAX_SOURCE_BYTES)
            # Lines as YAML counts them (Python's splitlines also breaks at \f, \v, \x1c…).
            lines = _LINE_BREAK.split(raw.decode("utf-8-sig", errors="replace"))
        except (OSError, ReadRefused):
            lines = []  # a special or oversized file: the headline says so, no source line
        cache[d.file] = lines
    if not 1 <= d.pos.line <= len(lines):
        return []
    text = lines[d.pos.line - 1].replace("\t", " ")
    width = 1
    if d.pos.end_line == d.pos.line and d.pos.end_col and d.pos.end_col > d.pos.col:
        width = d.pos.end_col - d.pos.col
    if d.code in _SECRET_CODES:
        # The source line shows the secret itself: mask what the diagnostic points at, to the
        # end of its token, keeping columns so the caret still lines up.
        start = d.pos.col - 1
        end = start + width if width > 1 else _token_end(text, start)
        text = text[:start] + "*" * (end - start) + text[end:]
    text = _CONTROL.sub("?", redact(text))  # one character each: the caret stays in place
    col = d.pos.col
    if len(text) > _MAX_SHOWN:
        # A very long line (minified JSON, a generated blob): the part around the caret, so
        # one diagnostic stays a few lines of output.
        start = max(0, min(col - 1 - _MAX_SHOWN // 3, len(text) - _MAX_SHOWN))
        shown = text[start:start + _MAX_SHOWN]
        text = ("..." if start else "") + shown + ("..." if start + _MAX_SHOWN < len(text) else "")
        col = col - start + (3 if start else 0)
        width = max(1, min(width, _MAX_SHOWN - (col - 1) + (3 if start else 0)))
    gutter = f"{d.pos.line:>4} | "
    return [gutter + text, " " * (len(gutter) + col - 1) + "^" * width]


def render_text(diags: Iterable[Diagnostic], root: Path | None = None) -> str:
    cache: dict[str, list[str]] = {}
    out: list[str] = []
    for d in diags:
        out.append(d.headline())
        out.extend(_source_line(root, d, cache))
        out.extend(f"     = {n}" for n in d.notes)
    return "\n".join(out) + ("\n" if out else "")


def collapse(diags: Iterable[Diagnostic]) -> list[Diagnostic]:
    """Identical warnings and notes (same severity, code, message and notes at different places)
    as one: the first place, its headline ending in `(N times)` and a note naming how many
    more places there are. A repo of thousands of specs made from one pattern otherwise prints
    the same warning thousands of times and buries the one that differs. Errors are never
    collapsed: each is a place to fix. Order is kept (the first of each group stays where it
    was); `--verbose` prints the input as it is."""
    diags = list(diags)
    groups: dict[tuple, list[Diagnostic]] = {}
    for d in diags:
        if d.severity != "error":
            groups.setdefault((d.severity, d.code, d.message, d.notes), []).append(d)
    out: list[Diagnostic] = []
    for d in diags:
        same = groups.get((d.severity, d.code, d.message, d.notes)) if d.severity != "error" else None
        if same is None or len(same) == 1:
            out.append(d)
        elif same[0] is d:
            files = len({x.file for x in same})
            where = f" in {files} files" if files > 1 else ""
            out.append(replace(d, message=f"{d.message} ({len(same)} times)",
                               notes=d.notes + (f"the same {d.severity} at {len(same) - 1} more places{where}; "
                                                f"--verbose shows each",)))
    return out


def render_json(diags: Iterable[Diagnostic]) -> str:
    return json.dumps({"diagnostics": [d.to_json() for d in diags]}, indent=2, sort_keys=True) + "\n"


def _gh_escape(s: str, prop: bool = False) -> str:
    s = s.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")
    if prop:
        s = s.replace(":", "%3A").replace(",", "%2C")
    return s


def render_github(diags: Iterable[Diagnostic], prefix: str = "") -> str:
    """GitHub Actions workflow commands (`::error file=..,line=..,col=..::msg`)."""
    out = []
    level = {"error": "error", "warning": "warning", "note": "notice"}
    for d in diags:
        props = []
        if d.file:
            props.append("file=" + _gh_escape(prefix + d.file, True))
        if d.pos:
            props.append(f"line={d.pos.line}")
            props.append(f"col={d.pos.col}")
        props.append("title=" + _gh_escape(f"specops {d.code}", True))
        msg = d.message + "".join(f"\n{n}" for n in d.notes)
        out.append(f"::{level[d.severity]} {','.join(props)}::{_gh_escape(msg)}")
    return "\n".join(out) + ("\n" if out else "")


def summary(diags: list[Diagnostic], shown: int | None = None) -> str:
    """`N errors, M warnings`; with `shown` (the lines left after `collapse`) also how many
    identical ones were folded."""
    e = sum(d.severity == "error" for d in diags)
    w = sum(d.severity == "warning" for d in diags)
    out = f"{e} error{'s' if e != 1 else ''}, {w} warning{'s' if w != 1 else ''}"
    if shown is not None and shown < len(diags):
        out += f" ({len(diags) - shown} identical ones folded; --verbose shows each)"
    return out
