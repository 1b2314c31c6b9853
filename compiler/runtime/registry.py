"""Step `register`: put a trained model into the local model registry (idempotent).

Params::

    {"registry": "churn-classifier",     # required: the registered model name
     "model": "churn",                   # required: the Model spec's name (recorded)
     "version": "3",                     # optional; null = "sha-" + 12 hex of the content hash
     "aliases": ["staging"],             # optional; each alias is moved to this version
     "registry_root": ".specops/registry",  # optional; repo-relative (default) or absolute
     "base_model": null, "revision": null, "adapter": null,
                                         # a model served as published (no `model` input): the
                                         # version records this reference (base.json), no weights
     "env": "dev", "spec_digest": "<sha256>", "description": "...",
     "tracking": {"uri": null},          # present: the version goes to MLflow (register_mlflow.py):
                                         # uri null = $MLFLOW_TRACKING_URI or the embedded store;
                                         # `aliases` then move there, as `<env>` and `<env>-<alias>`
     "pin": {"version": 3, "digest": "sha256:..."} | null,
                                         # a pinned environment: nothing new is registered
     "move_aliases": true}               # false: register the version and move no alias, not even
                                         # the environment's own in MLflow (a monitor's retrain:
                                         # its promotion goes through git)

Names (registry, version, aliases) are single path segments: [A-Za-z0-9][A-Za-z0-9._-]*.

Layout (the local registry of the embedded default target)::

    <registry_root>/<registry>/<version>/      the model files + registration.json
    <registry_root>/<registry>/aliases.json    {alias: version}

Inputs: `model` (a train or finetune output, or the fetched pinned version; every file but
result.json is copied) and, optionally, `metrics` (an evaluate output; its metrics.json is
recorded), `gate`, `gate_1`... (gate outputs: their decisions are recorded with the version)
and `data`, `data_1`... (data_check outputs: the datasets' versions, digests and checks). Registering the same
content under the same version again changes nothing (`changed: false`); other content under
an existing version is an error (versions are immutable). A version lands by an atomic
rename of a fully written folder, so a crash never leaves a half version behind.

Output: `registration.json` (also inside the version folder): {registry, model, version,
sha256, files, metrics}. Returns {name, model, version, uri, sha256, aliases, changed};
`uri` is `file://<repo-relative path>` inside the repository, else `file:///<absolute>`.
"""

from __future__ import annotations

import json
import os
import re
import shutil
from pathlib import Path

from specops.runtime import register_mlflow, write_json
from specops.runtime.common import Params, require_input, resolve_path, sha256_tree
from specops.runtime.errors import ParamError, StepError

KEYS = ("registry", "model", "version", "aliases", "registry_root", "base_model", "revision", "adapter",
        "env", "spec_digest", "description", "tracking", "pin", "move_aliases")
SEGMENT = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}")
SKIP = ("result.json",)


def _segment(p: Params, key: str, value: str) -> str:
    if not SEGMENT.fullmatch(value) or ".." in value:
        raise p.error(key, f"must match [A-Za-z0-9][A-Za-z0-9._-]* (got {value!r})")
    return value


def file_uri(path: Path, repo_root: Path) -> str:
    root = Path(os.path.realpath(repo_root))
    path = Path(os.path.realpath(path))
    if path == root or root in path.parents:
        return "file://" + path.relative_to(root).as_posix()
    return "file://" + path.as_posix()


def _source_dir(p: Params, inputs: dict[str, Path], out: Path) -> Path:
    """The trained model (the `model` input), or a folder holding only the reference to the
    published base (and adapter) when nothing was trained."""
    base = p.str("base_model", None)
    if "model" in inputs or base is None:
        return require_input(inputs, "model", "register")
    ref = {"base_model": base, "revision": p.str("revision", None), "adapter": p.raw("adapter", None)}
    src = out / ".published"
    write_json(src / "base.json", ref)
    return src


def run(params: dict, inputs: dict[str, Path], out: Path, repo_root: Path) -> dict:
    p = Params(params, "register", KEYS)
    registry = _segment(p, "registry", p.str("registry"))
    model = p.str("model")
    version = p.raw("version", None)
    aliases = [_segment(p, "aliases", a) if isinstance(a, str) else _segment(p, "aliases", repr(a))
               for a in p.list("aliases", [])]
    root = resolve_path(p.str("registry_root", ".specops/registry"), repo_root,
                        what="register: registry_root", allow_absolute=True)

    src = _source_dir(p, inputs, out)
    files = sorted(f.relative_to(src).as_posix() for f in src.rglob("*")
                   if f.is_file() and f.relative_to(src).as_posix() not in SKIP)
    if not files:
        raise ParamError("register: input 'model' is empty")
    digest = sha256_tree(src, exclude=SKIP)
    version = f"sha-{digest[:12]}" if version is None else _segment(p, "version", str(version))
    metrics = None
    if "metrics" in inputs and (inputs["metrics"] / "metrics.json").is_file():
        metrics = json.loads((inputs["metrics"] / "metrics.json").read_text(encoding="utf-8"))
    registration = {"registry": registry, "model": model, "version": version, "sha256": digest,
                    "files": files, "metrics": metrics}

    home = root / registry
    home.mkdir(parents=True, exist_ok=True)
    dest = home / version
    changed = False
    if not dest.exists():
        tmp = home / f".tmp-{version}-{os.getpid()}"
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir()
        for rel in files:
            (tmp / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src / rel, tmp / rel)
        write_json(tmp / "registration.json", registration)
        try:
            os.rename(tmp, dest)
            changed = True
        except OSError:
            # Another run registered this version first: fall through to the content check.
            shutil.rmtree(tmp, ignore_errors=True)
    if not changed:
        have = sha256_tree(dest, exclude=("registration.json",))
        if have != digest:
            raise StepError(f"register: {registry!r} version {version!r} is already registered with other"
                            f" content (sha256 {have[:12]} != {digest[:12]}); versions are immutable")
        registration = json.loads((dest / "registration.json").read_text(encoding="utf-8"))

    tracked: dict = {}
    if p.raw("tracking", None) is not None:
        # MLflow is the registry: the version, its lineage and this env's aliases go there.
        tracked = register_mlflow.record(p, inputs, src, digest, metrics, repo_root)
        changed = changed or bool(tracked.pop("mlflow_changed", False))
    elif aliases:
        path = home / "aliases.json"
        current = json.loads(path.read_text(encoding="utf-8")) if path.is_file() else {}
        updated = {**current, **{a: version for a in aliases}}
        if updated != current:
            write_json(path, updated)
            changed = True

    write_json(out / "registration.json", registration)
    return {"name": registry, "model": model, "version": version, "uri": file_uri(dest, repo_root),
            "sha256": digest, "aliases": sorted(aliases), "changed": changed, **tracked}
