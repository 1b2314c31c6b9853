"""`specops lock`: resolve every pinned data source to its content and record it in specops.lock.

Per source (keyed by URI, across every environment's view of each Dataset):

- `file://`: sha256 of the bytes and the size (the stat cache spares unchanged files a read);
- `s3://`: the object's ETag and VersionId (HEAD through boto3, with the Dataset's secretRef
  credentials, as the step runtime reads it);
- `gs://`: the object generation through gcsfs when it is installed, else a capability
  diagnostic at the source's line (pyarrow, which reads GCS data, does not report generations);
- `hf://datasets/…`: the commit the revision resolves to (the local Hub cache first, then the
  Hub API).

`check=True` (`specops lock --check`) resolves the same pins and compares them with the
committed lock instead of writing: remote objects that moved behind git's back show up here.
`plan`, when it refreshes, makes the same lookups for the remote sources of the datasets its
environment uses (`remote_changes`): a moved object is a plan problem, and apply refuses.
This is the only command besides apply/plan that touches the network for data.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from specops.checks import analyze
from specops.diagnostics import Diagnostic, Diagnostics
from specops.resolve.lockfile import LOCK_FILE, PIN_KEYS, LockError, StatCache, read_lock, write_lock
from specops.resolve.refs import Resolved
from specops.runtime.errors import ParamError
from specops.runtime.sources import hf_repo_id, s3_client, split_bucket


@dataclass
class LockResult:
    root: Path
    sources: dict[str, dict] = field(default_factory=dict)
    # One line per source whose pin is new, changed or gone (relative to the lock on disk).
    changes: list[str] = field(default_factory=list)
    diagnostics: Diagnostics = field(default_factory=Diagnostics)
    written: bool = False


def lock_repo(path: str | Path = ".", check: bool = False) -> LockResult:
    resolved = analyze(path)
    root = resolved.repo.root
    result = LockResult(root)
    # A changed file is what locking is for: its data-lock error does not stop `lock`.
    errors = [d for d in resolved.diagnostics.sorted() if d.severity == "error" and d.code != "data-lock"]
    if errors:
        result.diagnostics.extend(errors)
        return result
    try:
        old = read_lock(root) or {}
    except LockError:
        old = {}
    stats = StatCache(root)
    seen: set[str] = set()
    for view in resolved.envs.values():
        for node in view.of_kind("Dataset"):
            src = node.spec.source
            if src.uri is None or src.uri in seen:  # a produced dataset: its producer's output
                continue
            seen.add(src.uri)
            try:
                pin = _pin(root, node, stats)
            except (ParamError, OSError, ValueError) as e:
                result.diagnostics.add(_at(node, "data-lock", f"cannot pin '{src.uri}': {e}"))
                continue
            if pin is None:
                continue
            result.sources[src.uri] = {"version": src.version, **pin}
    stats.save()
    if result.diagnostics.has_errors:
        return result
    for uri in sorted(set(old) | set(result.sources)):
        before, after = old.get(uri), result.sources.get(uri)
        if before == after:
            continue
        if before is None:
            result.changes.append(f"+ {uri}: {_show(after)}")
        elif after is None:
            result.changes.append(f"- {uri}")
        else:
            result.changes.append(f"~ {uri}: {_show(before)} -> {_show(after)}")
    if not check and (result.changes or not (root / LOCK_FILE).exists()):
        write_lock(root, result.sources)
        result.written = True
    return result


def remote_changes(resolved: Resolved, env: str) -> list[str]:
    """One line per remote source (s3://, gs://, hf://) of a Dataset `env` uses whose live pin
    differs from its entry in specops.lock, naming the dataset, the locked and the live pin.
    Sources the lock does not hold for the dataset's version are not checked (validate warns
    about a version bumped without relocking); a corrupt lock is validate's error."""
    root = resolved.repo.root
    try:
        lock = read_lock(root) or {}
    except LockError:
        return []
    out: list[str] = []
    seen: set[str] = set()
    stats = StatCache(root)  # unused by remote pins; _pin's signature
    for node in sorted(resolved.envs[env].of_kind("Dataset"), key=lambda n: n.name):
        src = node.spec.source
        locked = lock.get(src.uri or "")
        if (src.uri is None or src.uri.startswith("file://") or src.uri in seen or locked is None
                or locked.get("version") != src.version):
            continue
        seen.add(src.uri)
        try:
            live = _pin(root, node, stats) or {}
        except (ParamError, OSError, ValueError) as e:
            out.append(f"Dataset '{node.name}': {src.uri} cannot be checked against {LOCK_FILE}: {e}")
            continue
        if any(locked.get(k) != live.get(k) for k in PIN_KEYS):
            out.append(f"Dataset '{node.name}': {src.uri} changed since `specops lock`: locked "
                       f"{_show_pin(locked)}, live {_show_pin(live)}; its data_check step refuses it until "
                       "the data is reviewed and relocked")
    return out


def _show_pin(pin: dict) -> str:
    return ", ".join(f"{k} {pin[k]}" for k in PIN_KEYS if pin.get(k) is not None) or "none"


def _show(pin: dict | None) -> str:
    if not pin:
        return "-"
    keys = [k for k in ("version",) + PIN_KEYS if pin.get(k) is not None]
    return ", ".join(f"{k} {pin[k]}" for k in keys)


def _at(node: Any, code: str, msg: str, severity: str = "error") -> Diagnostic:
    return Diagnostic(severity, code, msg, node.file, node.doc.pos_of(("spec", "source", "uri")))  # type: ignore[arg-type]


def _pin(root: Path, node: Any, stats: StatCache) -> dict[str, Any] | None:
    spec = node.spec
    uri = spec.source.uri
    scheme = uri.split("://", 1)[0]
    cred = spec.credentials.secret_ref.model_dump(mode="json", exclude_none=True) if spec.credentials else None
    if scheme == "file":
        size, digest = stats.digest(uri[len("file://"):])
        return {"digest": digest, "size": size}
    if scheme == "s3":
        return _s3_pin(uri, cred)
    if scheme == "gs":
        return _gcs_pin(uri)
    if scheme == "hf":
        commit = _hf_commit(uri, spec.source.version)
        return {"digest": f"hf-commit:{commit}", "commit": commit}
    raise ValueError(f"{scheme}:// sources cannot be pinned (use file://, s3://, gs:// or hf://)")


def _s3_pin(uri: str, credentials: dict | None) -> dict[str, str]:
    from botocore.exceptions import BotoCoreError, ClientError

    bucket, key = split_bucket(uri)
    try:
        head = s3_client(credentials, "lock").head_object(Bucket=bucket, Key=key)
    except ClientError as e:
        raise ValueError(e.response.get("Error", {}).get("Code", "error")) from None
    except BotoCoreError as e:
        raise ValueError(str(e)) from None
    pin = {"etag": str(head.get("ETag", "")).strip('"')}
    if head.get("VersionId") and head["VersionId"] != "null":
        pin["versionId"] = head["VersionId"]
    return pin


def _gcs_pin(uri: str) -> dict[str, str]:
    try:
        import gcsfs
    except ImportError:
        raise ValueError("a gs:// pin is the object's generation, which needs gcsfs (pip install gcsfs);"
                         " pyarrow's GCS filesystem does not report it") from None
    info = gcsfs.GCSFileSystem().info(uri.split("://", 1)[1])
    return {"generation": str(info["generation"])}


def _hf_commit(uri: str, version: str | None) -> str:
    from huggingface_hub import HfApi, snapshot_download
    from huggingface_hub.errors import HfHubHTTPError, LocalEntryNotFoundError

    repo_id = hf_repo_id(uri, "lock")
    try:
        return Path(snapshot_download(repo_id, repo_type="dataset", revision=version, local_files_only=True)).name
    except (LocalEntryNotFoundError, FileNotFoundError):
        pass
    try:
        return HfApi().dataset_info(repo_id, revision=version).sha
    except (HfHubHTTPError, OSError) as e:
        raise ValueError(f"the Hub cannot resolve revision {version!r}: {str(e).splitlines()[0]}") from None
