"""Provider `k8s_manifests`: rendered Kubernetes manifests written into a GitOps directory.

Argo CD or Flux syncs the directory; specops only writes it. Layout:
`<gitops_dir>/<serving name>/<file>` with the platform files of the serving target
(Deployment/Service/ConfigMap, KServe InferenceService, or production-stack Helm values).
`gitops_dir` is the target's `serving.gitopsDir` (repo-relative), by default
`.specops/gitops/<env>`. `read()` hashes what is in the directory now, so a hand edit there
(or a file added or removed) is drift.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

from specops.backends.provider import (
    Desired,
    Live,
    ProviderError,
    attributes_of,
    content_hash,
)
from specops.fsio import write_atomic


class GitopsProvider:
    TYPE = "k8s_manifests"

    def __init__(self, env: str, root: Path, gitops_dir: str | None) -> None:
        self.env, self.root = env, root
        if gitops_dir and ("://" in gitops_dir or gitops_dir.startswith("git@")):
            raise ProviderError(f"serving.gitopsDir {gitops_dir!r} is a git URL; give the path of a local "
                                "checkout of the GitOps repository (specops writes files, your CI commits them)")
        base = Path(gitops_dir) if gitops_dir else Path(".specops") / "gitops" / env
        self.base = base if base.is_absolute() else root / base

    def _dir(self, name: str) -> Path:
        if not name or "/" in name or name in (".", ".."):
            raise ProviderError(f"serving name {name!r} cannot name a directory")
        return self.base / name

    def _rel(self, p: Path) -> str:
        try:
            return p.relative_to(self.root).as_posix()
        except ValueError:
            return p.as_posix()

    def _files(self, d: Path) -> dict[str, bytes]:
        out: dict[str, bytes] = {}
        for p in sorted(d.rglob("*")):
            if p.is_file() and not p.name.startswith("."):
                out[p.relative_to(d).as_posix()] = p.read_bytes()
        return out

    def read(self, desired: Desired | None, current: Any) -> Live:
        name = desired.name if desired is not None else current.name
        d = self._dir(name)
        if not d.is_dir():
            return Live(exists=False)
        try:
            files = self._files(d)
        except OSError as e:
            raise ProviderError(f"{self._rel(d)}: cannot read ({e.strerror or e})") from None
        return Live(exists=True, content_hash=content_hash(files), attributes=attributes_of(files),
                    ids={"path": self._rel(d)})

    def apply(self, desired: Desired, current: Any) -> tuple[dict[str, str], dict[str, Any]]:
        d = self._dir(desired.name)
        try:
            d.mkdir(parents=True, exist_ok=True)
            for rel, data in sorted(desired.files.items()):
                p = d / rel
                if p.is_file() and p.read_bytes() == data:
                    continue
                write_atomic(p, data)  # Argo CD never sees a half-written manifest
            for rel in sorted(set(self._files(d)) - set(desired.files)):
                (d / rel).unlink()  # a manifest the spec no longer renders
        except OSError as e:
            raise ProviderError(f"{self._rel(d)}: cannot write manifests ({e.strerror or e})") from None
        return {"path": self._rel(d)}, {"files": sorted(desired.files)}

    def delete(self, current: Any) -> None:
        d = self._dir(current.name)
        try:
            shutil.rmtree(d)
        except FileNotFoundError:
            pass
        except OSError as e:
            raise ProviderError(f"{self._rel(d)}: cannot remove ({e.strerror or e})") from None


def provider(type: str, *, env: str, target: Any, root: Path, options: dict) -> GitopsProvider:
    return GitopsProvider(env, Path(root), options.get("gitops_dir"))
