"""Diagnostic codes are objects in one registry; a code that is not registered fails here."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from specops import diagnostics as D

ROOT = Path(__file__).resolve().parents[2]


def test_an_unregistered_code_is_refused_at_construction():
    with pytest.raises(ValueError, match="unregistered diagnostic code 'no-such-code'"):
        D.Diagnostic("error", "no-such-code", "x")
    d = D.Diagnostic("error", D.UNKNOWN_FIELD, "x")
    assert d.code == "unknown-field" and d.to_json()["code"] == "unknown-field"


def test_a_code_cannot_be_registered_twice():
    with pytest.raises(ValueError, match="registered twice"):
        D.register("value", "again")


def _code_literals() -> list[tuple[str, int, str]]:
    """String constants in the places a diagnostic code goes: Diagnostic(severity, CODE, ...),
    <diagnostics>.error/.warning(CODE, ...), the checks' at(node, path, CODE, ...), and the
    spec models' PydanticCustomError(CODE, ...)."""
    found = []
    for src in ("compiler", "backends", "specs"):
        for f in sorted((ROOT / src).rglob("*.py")):
            if f.is_relative_to(ROOT / "compiler" / "runtime"):
                continue  # the step runtime reports step errors, not spec diagnostics
            for node in ast.walk(ast.parse(f.read_text(), str(f))):
                if not isinstance(node, ast.Call):
                    continue
                fn = node.func
                name = fn.attr if isinstance(fn, ast.Attribute) else fn.id if isinstance(fn, ast.Name) else ""
                pos = {"Diagnostic": 1, "error": 0, "warning": 0, "at": 2, "PydanticCustomError": 0}.get(name)
                if pos is None or len(node.args) <= pos:
                    continue
                arg = node.args[pos]
                if isinstance(arg, ast.Constant) and isinstance(arg.value, str):
                    found.append((f.relative_to(ROOT).as_posix(), node.lineno, arg.value))
    return found


def test_every_code_literal_in_the_source_is_registered():
    literals = _code_literals()
    assert len(literals) > 30  # the scan sees the codebase's diagnostics
    assert [f"{f}:{line}: {code}" for f, line, code in literals if code not in D.CODES] == []


def test_collapse_folds_identical_warnings_keeps_order_and_errors() -> None:
    w = [D.Diagnostic("warning", "unsupported", "same", f"f{i}.yaml", D.Pos(1, 1)) for i in range(3)]
    other = D.Diagnostic("warning", "unsupported", "different", "f0.yaml", D.Pos(2, 1))
    errs = [D.Diagnostic("error", "envelope", "bad", f"f{i}.yaml", D.Pos(3, 1)) for i in range(2)]
    items = [w[0], other, w[1], errs[0], w[2], errs[1]]
    out = D.collapse(items)
    assert [d.file for d in out] == ["f0.yaml", "f0.yaml", "f0.yaml", "f1.yaml"]
    assert out[0].message == "same (3 times)"
    assert out[0].notes[-1] == "the same warning at 2 more places in 3 files; --verbose shows each"
    assert out[1] is other and out[2] is errs[0] and out[3] is errs[1]
    assert D.summary(items, len(out)) == "2 errors, 4 warnings (2 identical ones folded; --verbose shows each)"
    assert D.summary(items) == "2 errors, 4 warnings"
    assert D.collapse([w[0]]) == [w[0]]


def test_a_very_long_source_line_is_shown_around_the_caret(tmp_path):
    """A 3,000-character line (minified JSON, a generated file) is cut to the part around
    the caret, which still points at the same character."""
    line = "a" * 2000 + "XYZ" + "b" * 1000
    (tmp_path / "f.yaml").write_text(line + "\n")
    d = D.Diagnostic("error", "value", "bad", "f.yaml", D.Pos(1, 2001, 1, 2004))
    text = D.render_text([d], tmp_path).splitlines()
    src, caret = text[1], text[2]
    assert len(src) < 200 and src.startswith("   1 | ...") and src.endswith("...")
    at = caret.index("^")
    assert src[at:at + 3] == "XYZ" and caret[at:] == "^^^"
    short = D.Diagnostic("error", "value", "bad", "f.yaml", D.Pos(1, 1))
    (tmp_path / "f.yaml").write_text("key: value\n")
    assert D.render_text([short], tmp_path).splitlines()[1] == "   1 | key: value"
