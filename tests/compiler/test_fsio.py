"""Reading untrusted paths: only regular files, size checked before reading, bounded reads."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from specops.fsio import ReadRefused, read_regular


def test_regular_file_is_read_whole(tmp_path: Path) -> None:
    p = tmp_path / "a.yaml"
    p.write_bytes(b"x" * 1000)
    assert read_regular(p, 1000) == b"x" * 1000


def test_character_device_is_refused_not_read() -> None:
    # /dev/zero never ends: reading it would fill memory.
    with pytest.raises(ReadRefused, match="character device") as e:
        read_regular("/dev/zero", 1 << 20)
    assert not e.value.too_large


def test_fifo_is_refused_without_blocking(tmp_path: Path) -> None:
    p = tmp_path / "pipe.yaml"
    os.mkfifo(p)
    with pytest.raises(ReadRefused, match="FIFO"):
        read_regular(p, 1 << 20)


def test_directory_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ReadRefused, match="directory"):
        read_regular(tmp_path, 1 << 20)


def test_size_is_checked_before_reading(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    p = tmp_path / "big.yaml"
    with open(p, "wb") as f:
        f.truncate(1 << 30)
    monkeypatch.setattr(os, "read", lambda *a: pytest.fail("read a file that is over the limit"))
    with pytest.raises(ReadRefused, match="1073741824 bytes") as e:
        read_regular(p, 1 << 20)
    assert e.value.too_large


def test_missing_file_is_an_oserror(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        read_regular(tmp_path / "nope.yaml", 10)
