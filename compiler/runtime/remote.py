"""Step folders in object storage, for processes that see no shared volume (TrainJob pods).

`folders(inputs, output_dir)` yields local folders for a step: an `s3://` or `gs://` input is
copied down into a temp folder first; an `s3://` or `gs://` output is written to a temp folder
and copied up when the step returns without error, by rank 0 only under torchrun (the other
ranks write nothing). pyarrow's filesystems do the copying (S3 honours AWS_ENDPOINT_URL_S3 /
AWS_ENDPOINT_URL; credentials come from the ambient chain of the pod).
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from pathlib import Path
from typing import Iterator

from specops.runtime.errors import ParamError
from specops.runtime.sources import gcs_filesystem

SCHEMES = ("s3://", "gs://")


def is_remote(path: str) -> bool:
    return path.startswith(SCHEMES)


def _filesystem(uri: str):
    from pyarrow import fs

    if uri.startswith("s3://"):
        endpoint = os.environ.get("AWS_ENDPOINT_URL_S3") or os.environ.get("AWS_ENDPOINT_URL")
        region = os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION") or "us-east-1"
        kwargs = {"region": region}
        if endpoint:
            scheme, _, host = endpoint.partition("://")
            kwargs.update(endpoint_override=host or scheme, scheme=scheme if host else "https")
        return fs.S3FileSystem(**kwargs), uri[len("s3://"):].rstrip("/")
    return gcs_filesystem(), uri[len("gs://"):].rstrip("/")


def download(uri: str, dest: Path) -> None:
    from pyarrow import fs

    remote_fs, path = _filesystem(uri)
    try:
        fs.copy_files(path, str(dest), source_filesystem=remote_fs, destination_filesystem=fs.LocalFileSystem())
    except (OSError, ValueError) as e:
        raise ParamError(f"cannot copy {uri!r} down: {str(e).splitlines()[0]}") from None


def upload(src: Path, uri: str) -> None:
    from pyarrow import fs

    remote_fs, path = _filesystem(uri)
    try:
        fs.copy_files(str(src), path, source_filesystem=fs.LocalFileSystem(), destination_filesystem=remote_fs)
    except (OSError, ValueError) as e:
        raise ParamError(f"cannot copy the output up to {uri!r}: {str(e).splitlines()[0]}") from None


@contextlib.contextmanager
def folders(inputs: dict[str, str], output_dir: str) -> Iterator[tuple[dict[str, str], str]]:
    if not any(is_remote(p) for p in [*inputs.values(), output_dir]):
        yield inputs, output_dir
        return
    with tempfile.TemporaryDirectory(prefix="specops-step-") as tmp:
        local = {}
        for name, path in sorted(inputs.items()):
            if is_remote(path):
                dest = Path(tmp) / "in" / name
                dest.mkdir(parents=True)
                download(path, dest)
                local[name] = str(dest)
            else:
                local[name] = path
        out = str(Path(tmp) / "out") if is_remote(output_dir) else output_dir
        yield local, out
        if is_remote(output_dir) and os.environ.get("RANK", "0") == "0":
            upload(Path(out), output_dir)
