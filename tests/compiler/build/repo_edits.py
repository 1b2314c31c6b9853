"""Edits that the incremental-cache tests apply to a scaled repo (benchmarks/scale_repo.py),
each undone by applying it again, so random sequences keep the repo valid. `stamp` is called
on every file written (the validate cache's tests give each edit a new mtime)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Callable

ROOT = Path(__file__).resolve().parents[3]
Stamp = Callable[[Path], None]


def _nothing(_: Path) -> None:
    return None


def scaled_repo(out: Path, specs: int = 22) -> Path:
    """examples/support-assistant copied (specs - 1) / 7 times."""
    subprocess.run([sys.executable, str(ROOT / "benchmarks" / "scale_repo.py"), str(out), "--specs", str(specs)],
                   check=True, capture_output=True)
    return out


def toggle(p: Path, a: str, b: str, stamp: Stamp = _nothing) -> None:
    text = p.read_text()
    new = text.replace(a, b, 1) if a in text else text.replace(b, a, 1)
    assert new != text, (p, a)
    p.write_text(new)
    stamp(p)


def move(src: Path, dst: Path, stamp: Stamp = _nothing) -> None:
    a, b = (src, dst) if src.exists() else (dst, src)
    a.rename(b)
    stamp(b)


def remove_restore(p: Path, stash: Path, stamp: Stamp = _nothing) -> None:
    keep = stash / p.name
    if p.exists():
        stash.mkdir(exist_ok=True)
        shutil.copy2(p, keep)
        p.unlink()
    else:
        shutil.copy2(keep, p)
        stamp(p)


def add_remove(p: Path, text: str, stamp: Stamp = _nothing) -> None:
    if p.exists():
        p.unlink()
    else:
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(text)
        stamp(p)


def safetensors_header(path: Path, params: int, size: int = 512) -> None:
    """A safetensors file with only its header (capacity reads nothing else): the embedding
    and one tensor holding the rest, padded with spaces to `size` bytes as safetensors pads."""
    emb = 128256 * 4096
    header = {"model.embed_tokens.weight": {"dtype": "BF16", "shape": [128256, 4096], "data_offsets": [0, 0]},
              "model.rest.weight": {"dtype": "BF16", "shape": [params - emb], "data_offsets": [0, 0]}}
    raw = json.dumps(header).encode().ljust(size - 8)
    path.write_bytes(len(raw).to_bytes(8, "little") + raw)


def rewrite_keeping_stat(path: Path, write: Callable[[Path], None]) -> None:
    """Rewrite `path` and put its mtime back (rsync -t, a tar extract): only the bytes say so."""
    st = os.stat(path)
    write(path)
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns))
    assert os.stat(path).st_size == st.st_size
