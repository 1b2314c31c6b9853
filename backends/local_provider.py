"""Provider `local_server`: MLServer run as a managed process on this machine.

`apply` lays out `<repo>/.specops/serving/<env>/<name>/` (MLServer's settings.json and
model-settings.json from the compiled server.json, and the served model's file copied from the
local registry: the version its alias points at, else the newest registered version), starts
`mlserver start <dir>` in its own session on free 127.0.0.1 ports, waits until
`/v2/health/ready` answers, and records pid, port and URL. `read` (plan's refresh) checks that
the recorded process is still MLServer and still answers ready: a stopped or unhealthy server
reads as deleted, which plan reports as drift (and apply restarts under `drift: reconcile`).
`delete` (prune) stops the process group and removes the folder.

The MLServer executable: options["mlserver"], else $SPECOPS_MLSERVER, else the repo's
`.venv-mlserver/bin/mlserver` (tools/setup_mlserver_venv.sh), else `mlserver` on PATH.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

from specops.backends.provider import Desired, Live, ProviderError
from specops.fsio import write_atomic

READY_TIMEOUT_S = 180.0
STOP_TIMEOUT_S = 15.0
REGISTRY_ROOT = Path(".specops") / "registry"
SERVING_ROOT = Path(".specops") / "serving"


def _free_port() -> int:
    with contextlib.closing(socket.socket(socket.AF_INET, socket.SOCK_STREAM)) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _is_mlserver(pid: int) -> bool:
    """The pid is alive and runs MLServer (a reused pid never gets a signal from us)."""
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ")
    except OSError:
        return False
    return b"mlserver" in cmdline


def ready(url: str, timeout: float = 2.0) -> bool:
    try:
        with urllib.request.urlopen(f"{url}/v2/health/ready", timeout=timeout) as r:
            return r.status == 200
    except (urllib.error.URLError, OSError, ValueError):
        return False


def served_version(root: Path, registry: str, alias: str | None) -> tuple[str, Path]:
    """(version, folder) of the registered model the local server serves."""
    home = root / REGISTRY_ROOT / registry
    if alias:
        try:
            version = json.loads((home / "aliases.json").read_text(encoding="utf-8")).get(alias)
        except (OSError, ValueError):
            version = None
        if version and (home / version).is_dir():
            return version, home / version
    versions = [d for d in home.iterdir() if d.is_dir() and not d.name.startswith(".")] if home.is_dir() else []
    if not versions:
        raise ProviderError(f"no version of '{registry}' in the local registry ({home.relative_to(root)}): "
                            "its pipeline registers one first")
    newest = max(versions, key=lambda d: ((d / "registration.json").stat().st_mtime
                                         if (d / "registration.json").is_file() else 0.0, d.name))
    return newest.name, newest


class LocalServerProvider:
    TYPE = "local_server"

    def __init__(self, env: str, root: Path, options: dict[str, Any]) -> None:
        self.env, self.root, self.options = env, root, options

    def _executable(self) -> str:
        for cand in (self.options.get("mlserver"), os.environ.get("SPECOPS_MLSERVER"),
                     str(self.root / ".venv-mlserver" / "bin" / "mlserver"), shutil.which("mlserver")):
            if cand and Path(cand).is_file() and os.access(cand, os.X_OK):
                return str(cand)
        raise ProviderError("MLServer is not installed: run tools/setup_mlserver_venv.sh (it makes "
                            ".venv-mlserver), or set SPECOPS_MLSERVER to an `mlserver` executable")

    def _dir(self, name: str) -> Path:
        if not name or "/" in name or name in (".", ".."):
            raise ProviderError(f"serving name {name!r} cannot name a directory")
        return self.root / SERVING_ROOT / self.env / name

    def read(self, desired: Desired | None, current: Any) -> Live:
        if current is None:
            return Live(exists=False)
        pid, url = int(current.ids.get("pid") or 0), current.ids.get("url") or ""
        if pid and _is_mlserver(pid) and url and ready(url):
            return Live(exists=True, content_hash=current.content_hash, ids=dict(current.ids))
        return Live(exists=False)

    def apply(self, desired: Desired, current: Any) -> tuple[dict[str, str], dict[str, Any]]:
        if current is not None:
            self._stop(current.ids)
        doc = json.loads(desired.files["server.json"])
        version, src = served_version(self.root, doc["registry"], doc.get("alias"))
        model_file = src / doc["model_file"]
        if not model_file.is_file():
            raise ProviderError(f"'{doc['registry']}' version {version} has no {doc['model_file']} "
                                f"(the {doc['runtime']} runtime serves that file)")
        d = self._dir(desired.name)
        shutil.rmtree(d, ignore_errors=True)
        d.mkdir(parents=True)
        # Free loopback ports for this machine (settings.json beats MLSERVER_* variables).
        ports = {"http_port": _free_port(), "grpc_port": _free_port(), "metrics_port": _free_port()}
        write_atomic(d / "settings.json", _json({**doc["settings"], **ports, "host": "127.0.0.1"}))
        write_atomic(d / "model-settings.json", _json(doc["model_settings"]))
        shutil.copy2(model_file, d / doc["model_file"])
        env = dict(os.environ)
        log = open(d / "server.log", "wb")
        try:
            proc = subprocess.Popen([self._executable(), "start", str(d)], cwd=str(d), env=env, stdout=log,
                                    stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True)
        finally:
            log.close()
        url = f"http://127.0.0.1:{ports['http_port']}"
        deadline = time.monotonic() + float(self.options.get("mlserver_ready_timeout", READY_TIMEOUT_S))
        while not ready(url):
            if proc.poll() is not None or time.monotonic() > deadline:
                self._stop({"pid": str(proc.pid)})
                tail = (d / "server.log").read_text(encoding="utf-8", errors="replace").strip().splitlines()[-1:]
                raise ProviderError(f"MLServer for '{desired.name}' did not become ready"
                                    + (f": {tail[0]}" if tail else ""))
            time.sleep(0.25)
        ids = {"pid": str(proc.pid), "url": url, "dir": d.relative_to(self.root).as_posix()}
        return ids, {"url": url, "model_version": version,
                     "infer": f"{url}/v2/models/{doc['model_settings']['name']}/infer"}

    def _stop(self, ids: dict[str, Any]) -> None:
        pid = int(ids.get("pid") or 0)
        if not pid or not _is_mlserver(pid):
            return
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(pid, signal.SIGTERM)
        deadline = time.monotonic() + STOP_TIMEOUT_S
        while _is_mlserver(pid) and time.monotonic() < deadline:
            with contextlib.suppress(ChildProcessError, OSError):
                os.waitpid(pid, os.WNOHANG)
            time.sleep(0.1)
        if _is_mlserver(pid):
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(pid, signal.SIGKILL)

    def delete(self, current: Any) -> None:
        self._stop(current.ids)
        shutil.rmtree(self._dir(current.name), ignore_errors=True)


def _json(doc: Any) -> bytes:
    return (json.dumps(doc, indent=2, sort_keys=True) + "\n").encode()


def provider(type: str, *, env: str, target: Any, root: Path, options: dict) -> LocalServerProvider:
    return LocalServerProvider(env, root, options)
