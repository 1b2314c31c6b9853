"""Run an emitted ZenML pipeline (pipeline.py + run.yaml) on ZenML's local stack.

`run_local` runs it in a CHILD process (`python -m specops.backends.zenml_run REQUEST`):
ZenML reads ZENML_CONFIG_PATH once, on first import, and keeps process-wide state (global
config, active stack, client, logging handlers) for the life of the process. A child gets
exactly the store it was asked for, whatever the caller (CLI, test session) imported
before, and leaves the caller's environment, sys.path and logging untouched. The price is
ZenML's import (~2 s), which an in-process run pays once anyway.

The child writes the package `specops_generated` (the emitted files) into `workdir`, sets
`repo_root` (an absolute path, at run time only: the emitted run.yaml keeps ".") into the
pipeline parameters, runs the pipeline with ZenML's default stack under ZENML_CONFIG_PATH
(SQLite store and local artifact store; a fresh directory is initialised on first use,
~11-16 s), then reads the run back through ZenML's client: run status, each step's status,
its `result` artifact (metrics, verdicts) and its error message.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from specops.backends.crashpoint import pause_point
from specops.extras import require
from specops.runtime import StepError

PACKAGE = "specops_generated"


@dataclass(frozen=True)
class StepRun:
    name: str  # the IR step name ('gate-churn-auc')
    status: str  # ZenML ExecutionStatus value: completed | cached | failed | skipped | ...
    result: dict[str, Any] | None = None  # what specops.runtime.run_step returned
    error: str | None = None


@dataclass(frozen=True)
class RunResult:
    status: str  # the run's ZenML status ('completed', 'failed'), or 'failed' if none started
    pipeline: str  # the ZenML pipeline name
    run_name: str | None
    run_id: str | None
    steps: dict[str, StepRun] = field(default_factory=dict)  # by IR step name, run order
    error: str | None = None  # one line: why the run failed (a gate's message)
    log: str = ""  # path of the child's combined stdout/stderr
    wall_s: float = 0.0

    @property
    def ok(self) -> bool:
        return self.status == "completed"

    def to_dict(self) -> dict[str, Any]:
        from dataclasses import asdict

        return asdict(self)


def run_local(files: dict[str, bytes], *, workdir: str | os.PathLike, repo_root: str | os.PathLike,
              zenml_config_path: str | os.PathLike, timeout: float | None = None,
              pid_file: str | os.PathLike | None = None) -> RunResult:
    """Run `emit()`'s files on ZenML's local stack with all state under `zenml_config_path`.

    `workdir` receives the generated package, the effective run config and `run.log`;
    `repo_root` is where the steps resolve `file://` URIs and repo-relative paths. With
    `pid_file`, the child records its pid and start time there before the run starts, so a
    later apply can tell a run still going on (its parent was killed) from a dead one.
    Never raises for a failed run: the status and the failing step's message are returned.
    """
    extra = {"pid_file": str(Path(pid_file).resolve())} if pid_file is not None else {}
    return _run_child(files, workdir, repo_root, zenml_config_path, timeout, extra)


def collect_local(files: dict[str, bytes], run_id: str, *, workdir: str | os.PathLike,
                  repo_root: str | os.PathLike, zenml_config_path: str | os.PathLike) -> RunResult:
    """The result of the finished run `run_id`, read back from the store as `run_local` reads
    a run it started: for adopting a run whose parent died before it could read it."""
    return _run_child(files, workdir, repo_root, zenml_config_path, 300, {"collect": run_id})


def _run_child(files: dict[str, bytes], workdir: str | os.PathLike, repo_root: str | os.PathLike,
               zenml_config_path: str | os.PathLike, timeout: float | None, extra: dict[str, str]) -> RunResult:
    require("zenml")
    work = Path(workdir).resolve()
    pkg = work / PACKAGE
    pkg.mkdir(parents=True, exist_ok=True)
    (pkg / "__init__.py").write_bytes(b"")
    for name in ("pipeline.py", "run.yaml"):
        if name not in files:
            raise ValueError(f"run_local needs {name!r} from emit()")
        (pkg / name).write_bytes(files[name])
    tmp = work / "tmp"  # ZenML unpacks input artifacts into TMPDIR; removed after the run
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir()
    result_path = work / "result.json"
    result_path.unlink(missing_ok=True)
    request = work / "request.json"
    request.write_text(json.dumps({
        "package": PACKAGE, "repo_root": str(Path(repo_root).resolve()), "workdir": str(work),
        "result_path": str(result_path), **extra,
    }, sort_keys=True), encoding="utf-8")
    env = dict(os.environ)
    env.update({
        "ZENML_CONFIG_PATH": str(Path(zenml_config_path).resolve()),
        "ZENML_ANALYTICS_OPT_IN": "false",
        "ZENML_CUSTOM_SOURCE_ROOT": str(work),  # the generated package resolves as user code
        "ZENML_LOGGING_COLORS_DISABLED": "true",
        "ZENML_ENABLE_RICH_TRACEBACK": "false",
        "PYTHONPATH": os.pathsep.join([str(work)] + ([env["PYTHONPATH"]] if env.get("PYTHONPATH") else [])),
        "TMPDIR": str(tmp),
    })
    log = work / ("collect.log" if "collect" in extra else "run.log")
    start = time.monotonic()
    pipeline_name = _pipeline_name(files["pipeline.py"])
    try:
        with open(log, "wb") as out:
            # The child stays in this process's group: killing the group ends the run with it;
            # killing this process alone leaves it running, and the next apply waits for it.
            proc = subprocess.Popen([sys.executable, "-m", "specops.backends.zenml_run", str(request)],
                                    cwd=work, env=env, stdout=out, stderr=subprocess.STDOUT)
            if extra.get("pid_file"):
                # At once, and again by the child as its first act: whichever comes first
                # names the child should this process die now.
                record_pid(extra["pid_file"], proc.pid)
            pause_point("run-launched")
            try:
                proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
                return RunResult("failed", pipeline_name, None, None, error=f"ZenML run timed out after {timeout} s",
                                 log=str(log), wall_s=time.monotonic() - start)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    wall = time.monotonic() - start
    if not result_path.is_file():
        return RunResult("failed", pipeline_name, None, None,
                         error=f"ZenML runner exited with status {proc.returncode} without a result; "
                               f"last output: {_tail(log)}", log=str(log), wall_s=wall)
    return read_result(result_path, log=str(log), wall_s=wall)


def read_result(result_path: Path, *, log: str = "", wall_s: float = 0.0) -> RunResult:
    """The RunResult a child wrote to `result_path`."""
    data = json.loads(result_path.read_text(encoding="utf-8"))
    steps = {s["name"]: StepRun(**s) for s in data.pop("steps")}
    return RunResult(steps=steps, log=log, wall_s=wall_s, **data)


def process_start(pid: int) -> str | None:
    """The start time of process `pid` (Linux /proc, clock ticks since boot), or None when it
    is gone or a zombie. With the pid, it names one process: a pid reused later differs."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = stat[stat.rindex(")") + 2:].split()  # after "pid (comm) "
    return None if fields[0] in ("Z", "X") else fields[19]


def record_pid(pid_file: str, pid: int) -> None:
    """Record which process runs a pipeline (pid and start time), atomically."""
    path = Path(pid_file)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f"{path.name}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps({"pid": pid, "start": process_start(pid)}), encoding="utf-8")
    os.replace(tmp, path)


def _pipeline_name(module: bytes) -> str:
    import ast

    for node in ast.parse(module).body:
        if isinstance(node, ast.Assign) and any(isinstance(t, ast.Name) and t.id == "PIPELINE_NAME" for t in node.targets):
            return ast.literal_eval(node.value)
    return ""


def _tail(log: Path, n: int = 400) -> str:
    try:
        text = log.read_text(encoding="utf-8", errors="replace").strip()
    except OSError:
        return ""
    return " ".join(text[-n:].split())


def _one_line(e: BaseException) -> str:

    text = str(e).strip().splitlines()
    msg = text[0] if text else ""
    # StepFailed/ParamError messages are written for people; anything else names its type.
    return msg if isinstance(e, StepError) and msg else f"{type(e).__name__}: {msg}".rstrip(": ")


# ---- the child -----------------------------------------------------------------------------


def _child(request_path: str) -> int:
    import importlib

    import yaml

    req = json.loads(Path(request_path).read_text(encoding="utf-8"))
    work = Path(req["workdir"])
    if str(work) not in sys.path:
        sys.path.insert(0, str(work))
    pkg_dir = work / req["package"]
    config = yaml.safe_load((pkg_dir / "run.yaml").read_text(encoding="utf-8")) or {}
    names = {sid: (conf.get("parameters") or {}).get("step_name", sid)
             for sid, conf in (config.get("steps") or {}).items()}
    from zenml.client import Client

    if req.get("collect"):  # read back a run another child started
        run = Client().get_pipeline_run(req["collect"])
        out = _describe(run, run.pipeline.name if run.pipeline else "", names, None)
        Path(req["result_path"]).write_text(json.dumps(out, sort_keys=True, default=str), encoding="utf-8")
        return 0
    pause_point("child-started")
    params = config.setdefault("parameters", {}).setdefault("pipeline_parameters", {})
    params["repo_root"] = req["repo_root"]
    effective = work / "run.effective.yaml"
    effective.write_text(yaml.safe_dump(config, sort_keys=True), encoding="utf-8")

    module = importlib.import_module(f"{req['package']}.pipeline")
    pipeline = module.PIPELINE
    error = None
    try:
        pipeline.with_options(config_path=str(effective))()
    except Exception as e:  # the run's failure is reported as data, not as a traceback
        error = _one_line(e)
    pause_point("run-finished")

    runs = Client().list_pipeline_runs(pipeline_name=pipeline.name, sort_by="desc:created", size=1)
    out = _describe(runs.items[0] if runs.items else None, pipeline.name, names, error)
    Path(req["result_path"]).write_text(json.dumps(out, sort_keys=True, default=str), encoding="utf-8")
    return 0


def _describe(run: Any, pipeline_name: str, names: dict[str, str], error: str | None) -> dict[str, Any]:
    """A run as RunResult's fields: its status, each step's status, result and error."""
    out: dict[str, Any] = {"status": "failed", "pipeline": pipeline_name, "run_name": None,
                           "run_id": None, "steps": [], "error": error}
    step_error = None
    seen: set[str] = set()
    if run is not None:
        out.update(status=run.status.value, run_name=run.name, run_id=str(run.id))
        for sid, s in run.steps.items():
            seen.add(sid)
            status = s.status.value
            result = None
            if status in ("completed", "cached") and s.outputs.get("result"):
                result = s.outputs["result"][0].load()
            info = getattr(s, "exception_info", None)
            err = info.message.strip().splitlines()[0] if info is not None and info.message else None
            out["steps"].append({"name": names.get(sid, sid), "status": status, "result": result, "error": err})
            if step_error is None and status == "failed" and err:
                step_error = err
    # Steps ZenML never started (downstream of a failure) have no step run at all.
    for sid in names:
        if sid not in seen:
            out["steps"].append({"name": names[sid], "status": "skipped", "result": None, "error": None})
    # The failing step's own message (a gate's verdict) beats ZenML's summary exception
    # ("Pipeline run has failed due to failure in step(s): ...").
    out["error"] = step_error or error
    if out["status"] != "completed" and out["error"] is None:
        out["error"] = "the ZenML run did not complete"
    return out


if __name__ == "__main__":
    _req = json.loads(Path(sys.argv[1]).read_text(encoding="utf-8"))
    if _req.get("pid_file"):
        record_pid(_req["pid_file"], os.getpid())  # first, before ZenML's slow import
    sys.exit(_child(sys.argv[1]))
