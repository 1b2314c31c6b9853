"""Compile twice gives identical bytes: across processes, hash seeds and working directories."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[3]


def tree(d: Path) -> dict[str, bytes]:
    return {p.relative_to(d).as_posix(): p.read_bytes() for p in sorted(d.rglob("*")) if p.is_file()}


def compile_in(repo: Path, out: Path, cwd: Path, seed: str) -> dict[str, bytes]:
    env = dict(os.environ, PYTHONHASHSEED=seed)
    subprocess.run([sys.executable, "-m", "specops", "compile", str(repo), "--out", str(out)],
                   cwd=cwd, env=env, check=True, capture_output=True)
    return tree(out)


def test_identical_bytes_across_seeds_and_working_directories(tmp_path: Path) -> None:
    repo = tmp_path / "a" / "support-assistant"
    shutil.copytree(ROOT / "examples" / "support-assistant", repo, ignore=shutil.ignore_patterns("build", ".specops"))
    other = tmp_path / "elsewhere" / "deeper"
    shutil.copytree(repo, other / "support-assistant")
    first = compile_in(repo, tmp_path / "out1", cwd=tmp_path, seed="0")
    second = compile_in(other / "support-assistant", tmp_path / "out2", cwd=other, seed="4242")
    assert len(first) > 10
    assert first == second
    # No absolute paths of either checkout leak into the output.
    for data in first.values():
        assert str(tmp_path).encode() not in data
