"""Step outputs another pipeline reads: named output folders, their data file, and publishing.

A Dataset `producedBy` a model's step is read by other models' pipelines, which run apart
from the producer's: so that step copies the output folder to a fixed place in the target's
artifact store, `<artifact_store>/<env>/<model>/outputs/<step>/<output>/` (the compiler names
it; see specops.ir.steps.published_uri), and the consumers' data checks read it there.

    publish_outputs(out_dir, {output: uri}, repo_root, step)

copies `<out_dir>/<output>/` to each URI: `file://` (repo-relative, or absolute inside the
repository) through a temp folder and an atomic rename, so a reader never sees half a folder;
`s3://` and `gs://` through pyarrow's filesystems (runtime/remote.py).
"""

from __future__ import annotations

import os
import re
import shutil
from pathlib import Path
from typing import Mapping

from specops.runtime import remote
from specops.runtime.common import resolve_path
from specops.runtime.errors import ParamError

# The data files a `table` folder may hold, in the order they are looked for.
DATA_FILES = ("data.parquet", "data.csv", "data.jsonl", "data.json")
_SEGMENT = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}")


def safe_segment(name: object, step: str) -> str:
    """One folder name (an output name or an output's sub-path): never '..' or a separator."""
    if not isinstance(name, str) or not _SEGMENT.fullmatch(name) or name in (".", ".."):
        raise ParamError(f"step {step!r}: {name!r} is not a plain folder name")
    return name


def data_file(folder: Path) -> Path | None:
    """The data file of a `table` output folder, or None."""
    for name in DATA_FILES:
        if (folder / name).is_file():
            return folder / name
    return None


def publish_outputs(out_dir: Path, publish: Mapping[str, str], repo_root: str | Path, step: str) -> None:
    for name, uri in sorted(publish.items()):
        src = Path(out_dir) / safe_segment(name, step)
        if not src.is_dir():
            raise ParamError(f"step {step!r}: output {name!r} to publish was not written")
        if not isinstance(uri, str) or not uri:
            raise ParamError(f"step {step!r}: publish target of {name!r} must be a URI")
        if remote.is_remote(uri):
            remote.upload(src, uri.rstrip("/"))
            continue
        dest = resolve_path(uri, Path(repo_root), what=f"step {step!r}: publish {name!r}")
        dest.parent.mkdir(parents=True, exist_ok=True)
        tmp = dest.parent / f".{dest.name}.tmp-{os.getpid()}"
        shutil.rmtree(tmp, ignore_errors=True)
        shutil.copytree(src, tmp)
        old = dest.parent / f".{dest.name}.old-{os.getpid()}"
        if dest.exists():
            os.rename(dest, old)
        os.rename(tmp, dest)
        shutil.rmtree(old, ignore_errors=True)
