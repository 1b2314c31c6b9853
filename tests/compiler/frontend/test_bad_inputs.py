"""Golden corpus of bad input: each file in bad_inputs/ is placed into a copy of an example
repo and must produce exactly the errors its `# expect:` lines name, at their line:col.

Header lines of a case (they are part of the file, so positions count them):
    # base: churn | support-assistant      which example repo the case is dropped into
    # file: models/churn.yaml               where it goes (replacing the example's file)
    # expect: LINE:COL CODE [text]          one per expected error; text must appear in it
    # make: GENERATOR                       optional: the file put in place is made by
                                            GENERATORS[GENERATOR] (special files, inputs too
                                            big to commit), not copied from the case
A `# kind: NAME` line at the end of a case (after the content, so no position moves) groups
cases by the kind of mistake they make; a case without one counts under its first code.

Every case also holds to the rules for all bad input: no `internal` error, every error has a
line and column inside the file, and no message or rendered line shows a secret.
"""

from __future__ import annotations

import os
import re
import shutil
from pathlib import Path
from typing import Callable

import pytest

from specops.checks import analyze
from specops.diagnostics import render_text

ROOT = Path(__file__).resolve().parents[3]
CASES = sorted((Path(__file__).parent / "bad_inputs").glob("*.yaml"))
_EXPECT = re.compile(r"^# expect: (\d+):(\d+) ([a-z-]+)(?: (.*))?$")
# Secrets planted in the corpus: none may appear in any message or rendered source line.
PLANTED = ("AKIAIOSFODNN7EXAMPLE", "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY", "S3cr3t", "hunter2",
           "ghp_aBcDeFgHiJkLmNoPqRsTuVwXyZ0123456789", "hf_AbCdEfGhIjKlMnOpQrStUvWxYz012345")


def _nest(depth: int) -> bytes:
    return (b"apiVersion: specops.dev/v1alpha1\nkind: Dataset\nmetadata: {name: customers}\nspec: "
            + b"[" * depth + b"]" * depth + b"\n")


def _fifo(path: Path) -> None:
    os.mkfifo(path)


def _sparse(path: Path) -> None:
    with open(path, "wb") as f:
        f.truncate(1 << 30)  # 1 GiB, no disk used: must be refused by its size, unread


# name -> bytes to write, or a function that makes the file itself.
GENERATORS: dict[str, bytes | Callable[[Path], None]] = {
    "fifo": _fifo,
    "sparse-1gib": _sparse,
    # 100,000 levels overflow libyaml's recursive C composer (SIGSEGV) if it ever sees them.
    "nest-100000": _nest(100_000),
    "nodes-150000": (b"apiVersion: specops.dev/v1alpha1\nkind: Dataset\nmetadata: {name: customers}\n"
                     b"spec:\n  columns: [" + b"x," * 150_000 + b"x]\n"),
    "line-500000": (b"apiVersion: specops.dev/v1alpha1\nkind: Dataset\nmetadata: {name: customers, description: '"
                    + b"x" * 500_000 + b"', bogus: 1}\n"
                    b"spec:\n  source: {uri: file://data/customers.csv, format: csv, version: '1'}\n"),
    "sexagesimal": (b"apiVersion: specops.dev/v1alpha1\nkind: ServingTarget\nmetadata: {name: support-llm}\n"
                    b"spec:\n  replicas: {max: 1" + b":1" * 200_000 + b"}\n"),
    "two-mib": b"# " + b"x" * (2 << 20) + b"\n",
}


def parse_case(path: Path) -> tuple[str, str, str | None, list[tuple[int, int, str, str]], str | None]:
    text = path.read_bytes().decode("utf-8-sig", errors="replace").replace("\r\n", "\n").replace("\r", "\n")
    base = re.search(r"^# base: (\S+)$", text, re.M).group(1)
    file = re.search(r"^# file: (\S+)$", text, re.M).group(1)
    make = re.search(r"^# make: (\S+)$", text, re.M)
    kind = re.search(r"^# kind: (\S+)$", text, re.M)
    expects = []
    for line in text.splitlines():
        m = _EXPECT.match(line)
        if m:
            expects.append((int(m.group(1)), int(m.group(2)), m.group(3), m.group(4) or ""))
    return base, file, make.group(1) if make else None, expects, kind.group(1) if kind else None


def place_case(path: Path, tmp: Path) -> tuple[Path, str, list[tuple[int, int, str, str]]]:
    base, file, make, expects, _ = parse_case(path)
    repo = tmp / "repo"
    shutil.copytree(ROOT / "examples" / base, repo, ignore=shutil.ignore_patterns(".specops", "build"))
    target = repo / file
    target.parent.mkdir(parents=True, exist_ok=True)
    target.unlink(missing_ok=True)
    if make is None:
        shutil.copyfile(path, target)
    elif callable(GENERATORS[make]):
        GENERATORS[make](target)  # type: ignore[operator]
    else:
        target.write_bytes(GENERATORS[make])  # type: ignore[arg-type]
    return repo, file, expects


def run_case(path: Path, tmp: Path):
    repo, file, expects = place_case(path, tmp)
    resolved = analyze(repo)
    return repo, file, expects, resolved.diagnostics.sorted()


@pytest.mark.parametrize("case", CASES, ids=[c.stem for c in CASES])
def test_bad_input(case: Path, tmp_path: Path) -> None:
    repo, file, expects, diags = run_case(case, tmp_path)
    assert expects, f"{case.name} has no `# expect:` lines"
    errors = [d for d in diags if d.severity == "error"]
    got = sorted((d.pos.line if d.pos else 0, d.pos.col if d.pos else 0, d.code) for d in errors if d.file == file)
    want = sorted((line, col, code) for line, col, code, _ in expects)
    assert got == want, "\n".join(d.headline() for d in errors)
    assert all(d.file == file for d in errors), "errors outside the case file:\n" + "\n".join(
        d.headline() for d in errors if d.file != file)
    for line, col, code, text in expects:
        if text:
            msgs = [d.message for d in errors if d.pos and (d.pos.line, d.pos.col, code) == (line, col, d.code)]
            assert any(text in m for m in msgs), f"{text!r} not in {msgs}"
    assert not any(d.code == "internal" for d in diags)
    rendered = render_text(diags, repo)
    for secret in PLANTED:
        assert secret not in rendered, f"{secret!r} shown in:\n{rendered}"


def test_corpus_is_large_and_varied() -> None:
    kinds: dict[str, list[str]] = {}
    for c in CASES:
        _, _, _, expects, kind = parse_case(c)
        kinds.setdefault(kind or expects[0][2], []).append(c.stem)
    assert len(CASES) >= 150 and len(kinds) >= 50, (len(CASES), len(kinds))


def test_every_generator_is_used() -> None:
    used = {parse_case(c)[2] for c in CASES}
    assert set(GENERATORS) <= used
