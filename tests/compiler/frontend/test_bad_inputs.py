"""Golden corpus of bad input: each file in bad_inputs/ is placed into a copy of an example
repo and must produce exactly the errors its `# expect:` lines name, at their line:col.

Header lines of a case (they are part of the file, so positions count them):
    # base: churn | support-assistant      which example repo the case is dropped into
    # file: models/churn.yaml               where it goes (replacing the example's file)
    # expect: LINE:COL CODE [text]          one per expected error; text must appear in it
"""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest

from specops.checks import analyze

ROOT = Path(__file__).resolve().parents[3]
CASES = sorted((Path(__file__).parent / "bad_inputs").glob("*.yaml"))
_EXPECT = re.compile(r"^# expect: (\d+):(\d+) ([a-z-]+)(?: (.*))?$")


def parse_case(path: Path) -> tuple[str, str, list[tuple[int, int, str, str]]]:
    text = path.read_text(encoding="utf-8")
    base = re.search(r"^# base: (\S+)$", text, re.M).group(1)
    file = re.search(r"^# file: (\S+)$", text, re.M).group(1)
    expects = []
    for line in text.splitlines():
        m = _EXPECT.match(line)
        if m:
            expects.append((int(m.group(1)), int(m.group(2)), m.group(3), m.group(4) or ""))
    return base, file, expects


def run_case(path: Path, tmp: Path):
    base, file, expects = parse_case(path)
    repo = tmp / "repo"
    shutil.copytree(ROOT / "examples" / base, repo)
    target = repo / file
    target.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(path, target)
    resolved = analyze(repo)
    return file, expects, resolved.diagnostics.sorted()


@pytest.mark.parametrize("case", CASES, ids=[c.stem for c in CASES])
def test_bad_input(case: Path, tmp_path: Path) -> None:
    file, expects, diags = run_case(case, tmp_path)
    assert expects, f"{case.name} has no `# expect:` lines"
    errors = [d for d in diags if d.severity == "error"]
    got = sorted((d.pos.line if d.pos else 0, d.pos.col if d.pos else 0, d.code) for d in errors if d.file == file)
    want = sorted((line, col, code) for line, col, code, _ in expects)
    assert got == want, "\n".join(d.headline() for d in errors)
    assert all(d.file == file for d in errors), "errors outside the case file:\n" + "\n".join(
        d.headline() for d in errors if d.file != file)
    for line, col, code, text in expects:
        if text:
            msgs = [d.message for d in errors if d.pos and (d.pos.line, d.pos.col, d.code) == (line, col, code)]
            assert any(text in m for m in msgs), f"{text!r} not in {msgs}"


def test_corpus_is_large_enough() -> None:
    assert len(CASES) >= 40
