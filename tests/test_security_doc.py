"""SECURITY.md names, for each defence, the test that proves it: every named test must exist,
so a defence cannot lose its proof silently (a renamed or deleted test fails here)."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DOC = ROOT / "SECURITY.md"


def _references(text: str) -> list[tuple[str, str | None]]:
    refs: list[tuple[str, str | None]] = []
    current: str | None = None
    for m in re.finditer(r"`((?:[\w/.-]+\.py)?)(?:::(\w+))?`", text):
        path, name = m.group(1) or None, m.group(2)
        if path:
            current = path
        elif name is None:
            continue
        # `::name` after a path names a test in the last file mentioned
        refs.append((path or current, name))
    return refs


def test_every_test_named_in_security_md_exists() -> None:
    refs = _references(DOC.read_text())
    assert len(refs) >= 30
    for path, name in refs:
        assert path is not None
        # a bare file name (`test_yamlio.py::x`) is the one test file of that name
        found = [ROOT / path] if "/" in path else sorted((ROOT / "tests").rglob(path))
        assert len(found) == 1, f"SECURITY.md names {path}: {len(found)} files match"
        src = found[0]
        assert src.is_file(), f"SECURITY.md names {path}, which does not exist"
        if name:
            assert re.search(rf"^def {name}\(", src.read_text(), re.M), f"SECURITY.md names {path}::{name}, which does not exist"


def test_every_bad_input_case_named_exists() -> None:
    corpus = ROOT / "tests" / "compiler" / "frontend" / "bad_inputs"
    lists = re.findall(r"bad_inputs ((?:`\w+`(?:, )?)+)", DOC.read_text())
    cases = {n for found in lists for n in re.findall(r"`(\w+)`", found)}
    assert cases
    for case in cases:
        assert list(corpus.glob(f"{case}.*")), f"SECURITY.md names bad-input case {case}, which does not exist"
