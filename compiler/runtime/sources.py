"""Where a dataset's bytes come from: one local file per source, whatever its scheme.

    with materialize(uri, repo_root, what=..., version=..., credentials=...) as src:
        src.paths    # local files the engine reads (one, or the data files of an HF snapshot)
        src.digest   # "sha256:<hex>" of the bytes read, or "hf-commit:<sha>" for a Hub snapshot
        src.pin      # what a remote store says about the object (ETag, VersionId, generation)

- `file://` and plain paths are repo-relative (absolute ones must lie inside the repo). The
  file is read in place; its sha256 is computed in one streaming pass.
- `s3://` is read with boto3 (already a dependency of the SageMaker backend; s3fs resolves to a
  years-old release under the project's constraints). The object is streamed to a temp file
  while hashing, so memory does not grow with its size. Credentials come from the dataset's
  `secretRef` (see `aws_credentials`), else the ambient chain (an IAM role in SageMaker, the
  pod's service account in KFP). `AWS_ENDPOINT_URL_S3` / `AWS_ENDPOINT_URL` point it elsewhere
  (moto in tests).
- `gs://` is read with pyarrow's GcsFileSystem (pyarrow is the engine's own dependency, so GCS
  adds no package), streamed to a temp file like S3.
- `hf://datasets/<org>/<name>` is a Hugging Face dataset already in the local Hub cache: the
  runtime never downloads. `version` is the revision; the snapshot's commit is the digest.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import tempfile
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO, Iterator

from specops.runtime.common import resolve_path
from specops.runtime.errors import ParamError

CHUNK = 1 << 20
# Data files taken from a Hub snapshot, in order of preference.
HF_DATA_SUFFIXES = (".parquet", ".jsonl", ".json", ".csv")


@dataclass
class Materialized:
    paths: list[Path]
    # "sha256:<hex>" / "hf-commit:<sha>", or a Future of it (a local file is hashed in a thread
    # while the engine reads it: both share the page cache, and DuckDB and hashlib release the GIL).
    _digest: "str | Future[str]"
    # The remote store's own pin of the object: {"etag": ..., "versionId": ...} for S3,
    # {"generation": ...} for GCS, {"commit": ...} for the Hub; {} for local files.
    pin: dict[str, str] = field(default_factory=dict)
    # Format the files hold when the source itself decides it (an HF snapshot).
    format: str | None = None

    @property
    def digest(self) -> str:
        return self._digest if isinstance(self._digest, str) else self._digest.result()


def _sha256_path(path: Path) -> str:
    with open(path, "rb") as f:
        return f"sha256:{sha256_stream(f)}"


def sha256_stream(src: BinaryIO, dst: BinaryIO | None = None) -> str:
    h = hashlib.sha256()
    for chunk in iter(lambda: src.read(CHUNK), b""):
        h.update(chunk)
        if dst is not None:
            dst.write(chunk)
    return h.hexdigest()


@contextlib.contextmanager
def materialize(uri: str, repo_root: Path, *, what: str, version: str | None = None,
                credentials: dict | None = None, scratch: Path | None = None) -> Iterator[Materialized]:
    """Local files for `uri`; temp copies of remote objects are removed on exit."""
    scheme = uri.split("://", 1)[0] if "://" in uri else "file"
    if scheme == "file":
        path = resolve_path(uri, repo_root, what=what)
        if not path.is_file():
            raise ParamError(f"{what}: no such file: {uri!r}")
        with ThreadPoolExecutor(max_workers=1, thread_name_prefix="specops-sha256") as pool:
            yield Materialized([path], pool.submit(_sha256_path, path))
        return
    if scheme == "hf":
        yield _hf_snapshot(uri, version, what)
        return
    if scheme not in ("s3", "gs", "gcs"):
        raise ParamError(f"{what}: the step runtime cannot read {scheme}:// URIs ({uri!r});"
                         f" use file://, s3://, gs:// or hf://")
    with tempfile.TemporaryDirectory(prefix="specops-src-", dir=scratch) as tmp:
        local = Path(tmp) / (uri.rsplit("/", 1)[-1] or "object")
        with open(local, "wb") as dst:
            if scheme == "s3":
                digest, pin = _s3_copy(uri, dst, credentials, what)
            else:
                digest, pin = _gcs_copy(uri, dst, what)
        yield Materialized([local], f"sha256:{digest}", pin)


# ---- S3 ------------------------------------------------------------------------------------


def split_bucket(uri: str) -> tuple[str, str]:
    rest = uri.split("://", 1)[1]
    bucket, _, key = rest.partition("/")
    if not bucket or not key:
        raise ParamError(f"{uri!r} needs a bucket and a key")
    return bucket, key


def aws_credentials(credentials: dict | None, what: str) -> dict[str, str]:
    """boto3 client kwargs from a dataset's secret reference (never from params themselves).

    `{"provider": "env", "name": "VAR"}`: the environment variable VAR holds a JSON object with
    `aws_access_key_id`, `aws_secret_access_key` and optionally `aws_session_token` (the shape
    of an AWS Secrets Manager secret rendered into the step's environment). Other providers are
    mounted by the platform as the ambient credential chain, so nothing is passed here.
    """
    if not credentials or credentials.get("provider") != "env":
        return {}
    name = credentials.get("name") or ""
    raw = os.environ.get(name)
    if raw is None:
        raise ParamError(f"{what}: the credentials secret is read from the environment variable"
                         f" {name!r}, which is not set")
    try:
        data = json.loads(raw)
    except json.JSONDecodeError:
        data = None
    if isinstance(data, dict) and credentials.get("key"):
        data = data.get(credentials["key"])
    keys = ("aws_access_key_id", "aws_secret_access_key", "aws_session_token")
    if not isinstance(data, dict) or not all(isinstance(data.get(k), str) for k in keys[:2]):
        # Never echo the value: it is a secret, whatever shape it has.
        raise ParamError(f"{what}: the environment variable {name!r} must hold a JSON object with"
                         f" aws_access_key_id and aws_secret_access_key")
    return {k: data[k] for k in keys if isinstance(data.get(k), str)}


def s3_client(credentials: dict | None, what: str) -> Any:
    import boto3

    endpoint = os.environ.get("AWS_ENDPOINT_URL_S3") or os.environ.get("AWS_ENDPOINT_URL") or None
    return boto3.client("s3", endpoint_url=endpoint, **aws_credentials(credentials, what))


def _s3_copy(uri: str, dst: BinaryIO, credentials: dict | None, what: str) -> tuple[str, dict[str, str]]:
    from botocore.exceptions import BotoCoreError, ClientError

    bucket, key = split_bucket(uri)
    try:
        obj = s3_client(credentials, what).get_object(Bucket=bucket, Key=key)
        digest = sha256_stream(obj["Body"], dst)
    except ClientError as e:
        code = e.response.get("Error", {}).get("Code", "error")
        raise ParamError(f"{what}: cannot read {uri!r}: {code}") from None
    except BotoCoreError as e:
        raise ParamError(f"{what}: cannot read {uri!r}: {e}") from None
    pin = {"etag": str(obj.get("ETag", "")).strip('"')}
    if obj.get("VersionId") and obj["VersionId"] != "null":
        pin["versionId"] = obj["VersionId"]
    return digest, pin


# ---- GCS -----------------------------------------------------------------------------------


def gcs_filesystem() -> Any:
    """pyarrow's GCS filesystem (anonymous when no credentials are in the environment)."""
    from pyarrow import fs

    endpoint = os.environ.get("STORAGE_EMULATOR_HOST")
    if endpoint:
        host = endpoint.split("://", 1)[-1]
        scheme = endpoint.split("://", 1)[0] if "://" in endpoint else "http"
        return fs.GcsFileSystem(anonymous=True, endpoint_override=host, scheme=scheme)
    return fs.GcsFileSystem()


def _gcs_copy(uri: str, dst: BinaryIO, what: str) -> tuple[str, dict[str, str]]:
    path = uri.split("://", 1)[1]
    try:
        gcs = gcs_filesystem()
        with gcs.open_input_stream(path) as src:
            digest = sha256_stream(src, dst)
    except (OSError, ValueError) as e:
        raise ParamError(f"{what}: cannot read {uri!r}: {str(e).splitlines()[0]}") from None
    return digest, {}


# ---- Hugging Face Hub cache ------------------------------------------------------------------


def hf_repo_id(uri: str, what: str) -> str:
    rest = uri.split("://", 1)[1]
    parts = [p for p in rest.split("/") if p]
    if parts[:1] == ["datasets"]:
        parts = parts[1:]
    if len(parts) != 2:
        raise ParamError(f"{what}: {uri!r} must read hf://datasets/<org>/<name>")
    return "/".join(parts)


def _hf_snapshot(uri: str, version: str | None, what: str) -> Materialized:
    from huggingface_hub import snapshot_download
    from huggingface_hub.errors import LocalEntryNotFoundError

    repo_id = hf_repo_id(uri, what)
    try:
        folder = Path(snapshot_download(repo_id, repo_type="dataset", revision=version, local_files_only=True))
    except (LocalEntryNotFoundError, FileNotFoundError, ValueError):
        raise ParamError(f"{what}: {uri!r} at revision {version!r} is not in the local Hugging Face cache;"
                         f" the step runtime never downloads (run `huggingface-cli download --repo-type"
                         f" dataset {repo_id}` where the network is allowed)") from None
    for suffix in HF_DATA_SUFFIXES:
        files = sorted(p for p in folder.rglob(f"*{suffix}") if p.is_file())
        if files:
            fmt = {".parquet": "parquet", ".jsonl": "jsonl", ".json": "jsonl", ".csv": "csv"}[suffix]
            commit = folder.name
            return Materialized(files, f"hf-commit:{commit}", {"commit": commit}, fmt)
    raise ParamError(f"{what}: the cached snapshot of {uri!r} holds no data files"
                     f" ({', '.join(HF_DATA_SUFFIXES)})")
