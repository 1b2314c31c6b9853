"""Provider `zenml_pipeline`: register and RUN a lifecycle pipeline on ZenML's local stack.

The embedded default. All ZenML state lives under `<root>/.specops/zenml` (SQLite store and
local artifact store); each run's work directory is `<root>/.specops/runs/<env>/<model>`.

How the content hash is carried: apply runs the pipeline with the run tag
`specops-hash:<sha256 of the compiled artifacts>`. `read()` asks ZenML's own client (in a
child process, like `zenml_run`: ZenML binds to one store per process) for the pipeline and
the tags of its runs; the live hash is the tag of its newest *completed* tagged run. So a
pipeline deleted from the store, or run by hand from other code under a specops tag, is
drift; untagged ad-hoc runs (`specops run`) are ignored.

Idempotency, whatever is killed: every run also carries the tag `specops-run:<run key>` (the
content hash, or the hash plus what forced a fresh run: `--replace`), and its child records
its pid and start time in `started/<key>.json` before the run starts. apply for a key first
returns a result recorded in `applied/<key>.json`; else, if a run for the key is still going
on (its apply was killed alone, the child lives on), it waits for that run to finish
(reattaches); then it adopts a completed run for the key from the store (reading its result
back when its apply died before it could), and only when there is none does it start one. A
run killed with its apply's whole process group never completes, so the next apply starts
one; in every case exactly one run completes per key.

Outputs recorded in state: pipeline, run_id, run_name, status, model_version, model_uri, and
`gates` ({gate: {model, version, passed, metrics, message, source: "run"}}), which the engine
moves into `state.gates`.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

from specops.backends.provider import Desired, Live, ProviderError
from specops.backends.zenml_run import RunResult, _pipeline_name, collect_local, process_start, read_result, run_local
from specops.extras import MissingExtra, require
from specops.fsio import write_atomic

HASH_TAG = "specops-hash:"
RUN_TAG = "specops-run:"


def _zenml_env(config_path: Path) -> dict[str, str]:
    env = dict(os.environ)
    env.update({"ZENML_CONFIG_PATH": str(config_path.resolve()), "ZENML_ANALYTICS_OPT_IN": "false",
                "ZENML_LOGGING_COLORS_DISABLED": "true", "ZENML_ENABLE_RICH_TRACEBACK": "false"})
    return env


class ZenmlProvider:
    TYPE = "zenml_pipeline"

    def __init__(self, env: str, root: Path, options: dict) -> None:
        self.env, self.root = env, root
        self.config_path = root / ".specops" / "zenml"
        self.runs = root / ".specops" / "runs" / env
        self.timeout = options.get("zenml_timeout")
        self._cache: dict[str, Any] | None = None
        self._lock = threading.Lock()

    # ---- the store, through ZenML's client in a child process ---------------------------------

    def _child(self, op: str, args: dict[str, Any]) -> Any:
        if not self.config_path.is_dir():
            return None  # nothing was ever run here: the store is empty
        try:
            proc = subprocess.run([sys.executable, "-m", "specops.backends.zenml_provider", op,
                                   json.dumps(args, sort_keys=True)],
                                  env=_zenml_env(self.config_path), capture_output=True, text=True,
                                  timeout=300, check=False)
        except subprocess.TimeoutExpired:
            raise ProviderError("ZenML store query timed out after 300 s") from None
        if proc.returncode != 0:
            tail = " ".join((proc.stderr or proc.stdout).strip().splitlines()[-1:])
            raise ProviderError(f"ZenML store query failed: {tail or f'exit {proc.returncode}'}")
        lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("{")]
        return json.loads(lines[-1]) if lines else None

    def _pipelines(self, refresh: bool = False) -> dict[str, Any]:
        """{pipeline name: [run {id, name, status, tags}] newest first}, one child per provider."""
        with self._lock:
            if self._cache is None or refresh:
                self._cache = (self._child("query", {}) or {}).get("pipelines", {})
            return self._cache

    @staticmethod
    def pipeline_name(desired: Desired | None, current: Any) -> str:
        if desired is not None:

            return _pipeline_name(desired.files["pipeline.py"]) or f"{desired.name}-{desired.env}"
        return current.ids.get("pipeline") or f"{current.name}"

    @staticmethod
    def _live_hash(runs: list[dict[str, Any]]) -> tuple[str | None, str | None]:
        for r in runs:
            if r["status"] != "completed":
                continue
            for t in r["tags"]:
                if t.startswith(HASH_TAG):
                    return t[len(HASH_TAG):], r["id"]
        return None, None

    def read(self, desired: Desired | None, current: Any) -> Live:
        name = self.pipeline_name(desired, current)
        runs = self._pipelines().get(name)
        if runs is None:
            return Live(exists=False)
        h, run_id = self._live_hash(runs)
        ids = {"pipeline": name}
        if run_id:
            ids["run_id"] = run_id
        return Live(exists=True, content_hash=h, ids=ids)

    # ---- apply -------------------------------------------------------------------------------

    def _dir(self, desired: Desired, what: str) -> Path:
        # Run keys are hex, '.', '-' and letters: safe file names as they are.
        return self.runs / desired.name / what / f"{desired.run_identity}.json"

    def apply(self, desired: Desired, current: Any) -> tuple[dict[str, str], dict[str, Any]]:
        name = self.pipeline_name(desired, None)
        marker = self._dir(desired, "applied")
        if marker.is_file():
            done = json.loads(marker.read_text(encoding="utf-8"))
            runs = self._pipelines(refresh=True).get(name) or []
            if any(r["id"] == done["ids"].get("run_id") and r["status"] == "completed" for r in runs):
                return done["ids"], done["outputs"]
        files = self._tagged(desired)
        result = self._adopt(desired, name, files)
        if result is None:
            result = run_local(files, workdir=self.runs / desired.name, repo_root=self.root,
                               zenml_config_path=self.config_path, timeout=self.timeout,
                               pid_file=self._dir(desired, "started"))
        return self._record(desired, name, result, marker)

    @staticmethod
    def _tagged(desired: Desired) -> dict[str, bytes]:
        import yaml

        files = dict(desired.files)
        config = yaml.safe_load(files["run.yaml"].decode("utf-8")) or {}
        tags = {HASH_TAG + desired.content_hash, RUN_TAG + desired.run_identity}
        config["tags"] = sorted(set(config.get("tags") or []) | tags)
        files["run.yaml"] = yaml.safe_dump(config, sort_keys=True).encode()
        return files

    def _adopt(self, desired: Desired, name: str, files: dict[str, bytes]) -> RunResult | None:
        """The result of a run already started or finished for this run key, or None."""
        started = self._dir(desired, "started")
        waited = started.is_file() and self._wait_for(name, json.loads(started.read_text(encoding="utf-8")))
        key = desired.run_identity
        # A plain key (the content hash) adopts any completed run of that content; a forced
        # fresh run (`--replace`) only its own.
        tag = HASH_TAG + key if key == desired.content_hash else RUN_TAG + key
        # What plan's refresh read is current unless a run was still going on since.
        runs = self._pipelines(refresh=waited).get(name) or []
        done = next((r for r in runs if r["status"] == "completed" and tag in r["tags"]), None)
        if done is None:
            return None
        work = self.runs / desired.name
        if (work / "result.json").is_file():
            result = read_result(work / "result.json", log=str(work / "run.log"))
            if result.run_id == done["id"]:
                return result
        return collect_local(files, done["id"], workdir=work, repo_root=self.root, zenml_config_path=self.config_path)

    def _wait_for(self, name: str, child: dict[str, Any]) -> bool:
        """Reattach to a run whose apply was killed while its child lives on: wait for it to
        end. Whether it was still going on."""
        pid, start = child.get("pid"), child.get("start")
        if not isinstance(pid, int) or start is None or process_start(pid) != start:
            return False
        deadline = time.monotonic() + (self.timeout or 24 * 3600)
        while process_start(pid) == start:
            if time.monotonic() > deadline:
                raise ProviderError(f"a run of {name} for this content is still going on (pid {pid}); "
                                    "let it finish or stop it, then apply again")
            time.sleep(0.5)
        return True

    def _record(self, desired: Desired, name: str, result: RunResult, marker: Path) -> tuple[dict[str, str], dict[str, Any]]:
        gates = self._gates(desired, result)
        if not result.ok:
            log = Path(result.log)
            try:
                log = log.relative_to(self.root.resolve())
            except ValueError:
                pass
            raise ProviderError(f"ZenML run of {name} failed: {result.error} (log: {log})",
                                outputs={"gates": gates})
        reg = next((s.result for s in result.steps.values() if s.name == "register" and s.result), None) or {}
        ids = {"pipeline": name, "run_id": result.run_id or ""}
        outputs = {"pipeline": name, "run_id": result.run_id, "run_name": result.run_name, "status": result.status,
                   "model_version": reg.get("version"), "model_uri": reg.get("uri"), "gates": gates}
        write_atomic(marker, (json.dumps({"ids": ids, "outputs": outputs}, sort_keys=True, indent=2, default=str)
                              + "\n").encode())
        with self._lock:
            self._cache = None
        return ids, outputs

    @staticmethod
    def _gates(desired: Desired, result: Any) -> dict[str, Any]:
        steps = result.steps
        evals = {s.name: s.result for s in steps.values() if isinstance(s.result, dict)}
        reg = evals.get("register") or {}
        out: dict[str, Any] = {}
        for s in steps.values():
            if not s.name.startswith("gate-") or s.status == "skipped":
                continue
            passed = s.status in ("completed", "cached") and bool((s.result or {}).get("passed"))
            gate = (s.result or {}).get("gate") or s.name[len("gate-"):]
            # A prompt gate measures in its own evaluate step (eval-<gate>), with row outcomes.
            ev = evals.get(f"eval-{gate}") or evals.get("evaluate") or {}
            out[gate] = {"model": desired.name, "version": reg.get("version") if passed else None,
                         "passed": passed, "metrics": ev.get("metrics") or {}, "message": s.error or "",
                         "run_id": result.run_id, "source": "run"}
            if isinstance(ev.get("row_outcomes"), dict):
                out[gate]["rows"] = dict(sorted(ev["row_outcomes"].items()))
        return out

    def delete(self, current: Any) -> None:
        self._child("delete", {"pipeline": self.pipeline_name(None, current)})
        with self._lock:
            self._cache = None


def provider(type: str, *, env: str, target: Any, root: Path, options: dict) -> ZenmlProvider:
    try:
        require("zenml")  # the pipeline runs in a child process: say which extra, not its ImportError
    except MissingExtra as e:
        raise ProviderError(str(e)) from None
    return ZenmlProvider(env, Path(root), options)


# ---- the child: ZenML's client against ZENML_CONFIG_PATH ----------------------------------------


def _child_main(op: str, args: dict[str, Any]) -> dict[str, Any]:
    from zenml.client import Client

    client = Client()
    if op == "query":
        out: dict[str, Any] = {}
        page = client.list_pipelines(size=1000, sort_by="asc:name")
        for p in page.items:
            runs = client.list_pipeline_runs(pipeline_name=p.name, sort_by="desc:created", size=50, hydrate=True)
            out[p.name] = [{"id": str(r.id), "name": r.name, "status": r.status.value,
                            "tags": sorted(t.name for t in (r.tags or []))} for r in runs.items]
        return {"pipelines": out}
    if op == "delete":
        try:
            client.delete_pipeline(args["pipeline"])
        except KeyError:
            pass  # already gone: deleting is idempotent
        return {"deleted": args["pipeline"]}
    raise SystemExit(f"unknown op {op!r}")


if __name__ == "__main__":
    import logging

    logging.disable(logging.CRITICAL)
    print(json.dumps(_child_main(sys.argv[1], json.loads(sys.argv[2])), sort_keys=True))
