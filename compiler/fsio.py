"""Reading files without trusting them, and writing them so that a reader never sees half
of one (stdlib only).

Every file specops reads from a spec repo goes through `read_regular`: only a regular file is
read (a FIFO would block for ever, a character device such as /dev/zero would fill memory),
its size is checked before any byte is read, and the read itself is bounded (the file may grow
in between).

Every file specops writes for someone else to read — build output, caches, the GitOps
directory, the prompt registry, step outputs, state — goes through `write_atomic`: a temp
file in the same directory, then a rename over the target. `durable=True` adds the fsyncs a
crash-safe store needs (state files).
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import stat
from pathlib import Path
from typing import Any, Callable, Iterable, NamedTuple


class ReadRefused(Exception):
    """A path `read_regular` does not read: one human line (`str(e)`) saying why, and
    `too_large` telling a regular file over the limit from a special file."""

    def __init__(self, message: str, *, too_large: bool = False) -> None:
        super().__init__(message)
        self.too_large = too_large


_KINDS = ((stat.S_ISFIFO, "a FIFO (named pipe)"), (stat.S_ISCHR, "a character device"),
          (stat.S_ISBLK, "a block device"), (stat.S_ISSOCK, "a socket"), (stat.S_ISDIR, "a directory"))


def read_regular(path: str | os.PathLike[str], limit: int) -> bytes:
    """The bytes of the regular file at `path`, at most `limit` of them.

    Raises ReadRefused for anything that is not a regular file or holds more than `limit`
    bytes (checked with fstat on the opened descriptor, so a file swapped for a FIFO after a
    directory listing is still caught), and OSError when the file cannot be opened or read.
    """
    # O_NONBLOCK: opening a FIFO for reading would otherwise wait for a writer.
    fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_CLOEXEC", 0))
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            kind = next((name for test, name in _KINDS if test(st.st_mode)), "not a regular file")
            raise ReadRefused(f"{kind}, not a regular file; refusing to read it")
        if st.st_size > limit:
            raise ReadRefused(f"file is {st.st_size} bytes; the limit is {limit}", too_large=True)
        chunks, total = [], 0
        while total <= limit:
            chunk = os.read(fd, min(1 << 20, limit + 1 - total))
            if not chunk:
                break
            chunks.append(chunk)
            total += len(chunk)
        if total > limit:
            raise ReadRefused(f"file grew past the limit of {limit} bytes while being read", too_large=True)
        return b"".join(chunks)
    finally:
        os.close(fd)


def fsync_dir(path: Path) -> None:
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    except OSError:
        return  # not supported (e.g. Windows): rename is still atomic
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


class FileSlice(NamedTuple):
    """`size` bytes at `offset` of an open file (anything with fileno()): a chunk that
    write_atomic copies file to file in the kernel, never through Python's memory (a build
    pack replays most of the last pack's bytes: 139 MB at 10,000 specs)."""

    file: Any
    offset: int
    size: int


def write_atomic(path: Path, data: bytes | Iterable[bytes | FileSlice], *, durable: bool = False,
                 replace: Callable[[str, Path], None] = os.replace) -> None:
    """Write `data` to `path`: readers see the old bytes or the new ones, never a mix. On any
    error the temp file is removed and `path` is untouched. `data` may be an iterable of
    byte chunks, written in turn (a build pack: never joined into one copy in memory), and
    of FileSlices (adjacent ones of one file are copied as one)."""
    import tempfile  # here, not at the top: the no-op compile writes nothing (start-up, see compile_cmd)

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            if isinstance(data, (bytes, bytearray, memoryview)):
                f.write(data)
            else:
                _write_chunks(f, data)
            if durable:
                f.flush()
                os.fsync(f.fileno())
        replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    if durable:
        fsync_dir(path.parent)


def _write_chunks(f: Any, chunks: Iterable[bytes | FileSlice]) -> None:
    pending: FileSlice | None = None
    for c in chunks:
        if isinstance(c, FileSlice):
            if pending is not None and c.file is pending.file and c.offset == pending.offset + pending.size:
                pending = pending._replace(size=pending.size + c.size)
                continue
            if pending is not None:
                _copy_slice(f, pending)
            pending = c
            continue
        if pending is not None:
            _copy_slice(f, pending)
            pending = None
        f.write(c)
    if pending is not None:
        _copy_slice(f, pending)


def _copy_slice(f: Any, s: FileSlice) -> None:
    """Append the slice's bytes to the buffered file `f` (copy_file_range where the system has
    it, else read and written back in 1 MiB pieces)."""
    f.flush()  # the buffered bytes first: the copy writes at the descriptor's own offset
    src, dst, off, left = s.file.fileno(), f.fileno(), s.offset, s.size
    copy = getattr(os, "copy_file_range", None)
    while left > 0:
        n = 0
        if copy is not None:
            try:
                n = copy(src, dst, left, off)
            except OSError:
                copy = None  # another file system, or not supported here: copied by hand
        if n <= 0:
            data = os.pread(src, min(left, 1 << 20), off)
            if not data:
                raise OSError(f"{getattr(s.file, 'name', src)}: short read")
            view = memoryview(data)
            while view:
                view = view[os.write(dst, view):]
            n = len(data)
        off += n
        left -= n


def sha256_file(path: Path) -> str:
    """sha256 of a file's bytes, read in 1 MiB chunks (data files can be large)."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


# A safetensors file starts with an 8-byte little-endian length and that many bytes of JSON
# header (every tensor's dtype and shape); safetensors itself refuses headers over 100 MB.
SAFETENSORS_MAX_HEADER = 100_000_000
WEIGHTS_INDEX = "model.safetensors.index.json"


def weights_digest(folder: str | os.PathLike[str]) -> str | None:
    """sha256 over what capacity planning reads from a model folder's weights: the name and
    header (length prefix and JSON) of each `*.safetensors` file, and the bytes of
    `model.safetensors.index.json`; the tensors themselves are never read. None when the folder
    holds neither. A header that cannot be read counts by its name, size and why, so a repair
    changes the digest too."""
    folder = Path(folder)
    try:
        names = sorted(e.name for e in os.scandir(folder)
                       if e.name.endswith(".safetensors") or e.name == WEIGHTS_INDEX)
    except OSError:
        return None
    if not names:
        return None
    h = hashlib.sha256()
    for name in names:
        path = folder / name
        h.update(name.encode() + b"\0")
        try:
            if name == WEIGHTS_INDEX:
                h.update(read_regular(path, 64 << 20))
                continue
            if not stat.S_ISREG(os.stat(path).st_mode):
                raise ReadRefused("not a regular file")
            with open(path, "rb") as f:
                head = f.read(8)
                n = int.from_bytes(head, "little") if len(head) == 8 else -1
                if not 0 <= n <= SAFETENSORS_MAX_HEADER:
                    raise ReadRefused(f"header length {n}")
                h.update(head + f.read(n))
        except (OSError, ReadRefused) as e:
            size = path.stat().st_size if path.exists() else -1
            h.update(f"unreadable:{size}:{type(e).__name__}".encode())
        h.update(b"\n")
    return h.hexdigest()
