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


def test_write_atomic_copies_file_slices_file_to_file(tmp_path, monkeypatch):
    """A FileSlice chunk is copied from its open file (copy_file_range, or read and written
    back where that fails): the result is the bytes in order, adjacent slices of one file
    joined, and the same without copy_file_range."""
    import os

    from specops.fsio import FileSlice, write_atomic

    a, b = tmp_path / "a", tmp_path / "b"
    a.write_bytes(bytes(range(256)) * 5000)  # 1.28 MB: more than one piece of the fallback
    b.write_bytes(b"0123456789")
    with open(a, "rb") as fa, open(b, "rb") as fb:
        chunks = [b"head\n", FileSlice(fa, 10, 100), FileSlice(fa, 110, 1_200_000), b"mid", FileSlice(fb, 2, 3),
                  FileSlice(fa, 0, 5)]
        want = b"head\n" + a.read_bytes()[10:1_200_110] + b"mid" + b"234" + a.read_bytes()[:5]
        write_atomic(tmp_path / "out", chunks)
        assert (tmp_path / "out").read_bytes() == want

        def refuse(*args):
            raise OSError(18, "Invalid cross-device link")

        monkeypatch.setattr(os, "copy_file_range", refuse, raising=False)
        write_atomic(tmp_path / "out2", chunks)
        assert (tmp_path / "out2").read_bytes() == want
