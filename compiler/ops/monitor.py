"""`specops monitor run`: run one Monitor in one environment, record a breach, act on it.

A breach is recorded in the environment's state (under its lock) with the checks that failed
and the data window's digest. `onBreach.retrain` then starts the watched Model's pipeline as a
retrain run (specops.ir.monitors.retrain_pipeline: identified by the pipeline's content hash
plus the trigger, trained on the breached window or the pinned data, registering version
`retrain-<id>` without moving any alias, deploying nothing); on a local target it runs on
ZenML's local stack here, on SageMaker it starts as one pipeline execution named after the run
(the staged window uploaded to the artifact store), on KFP as one run in the environment's
experiment (a window from --data cannot be uploaded there: one line says so). Its outcome (gates, registered version) joins the breach record, and
`plan` shows the promotion it awaits. `onBreach.notify` sends the `breach` event.
"""

from __future__ import annotations

import hashlib
import shutil
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable

from specops.backends.provider import Desired, ProviderError, attributes_of, content_hash, make_provider
from specops.backends.registry import pipeline_backend
from specops.backends.zenml_run import run_local
from specops.diagnostics import suggestion
from specops.ir.lower import lower_pipeline
from specops.ir.monitors import monitor_params, retrain_pipeline, trigger_id
from specops.ops.resources import provider_options
from specops.resolve.refs import Resolved
from specops.runtime import run_step
from specops.runtime.errors import StepError
from specops.runtime.notify import Delivery, Event, Notifier, deliver
from specops.state import State, open_store

MAX_BREACHES = 50


class MonitorError(Exception):
    """One human line naming the monitor: exit 1, never a breach."""


@dataclass
class MonitorOutcome:
    monitor: str
    env: str
    breached: bool
    report: dict[str, Any]
    report_dir: Path
    breach: dict[str, Any] | None = None
    retrain: dict[str, Any] | None = None
    deliveries: list[Delivery] = field(default_factory=list)


def _now() -> str:
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def _stage_window(root: Path, data: Path, name: str) -> str:
    """The step runtime reads only inside the repository: a window file from elsewhere is copied
    under .specops/windows/ by its content hash."""
    try:
        raw = data.read_bytes()
    except OSError as e:
        raise MonitorError(f"monitor {name!r}: cannot read --data {data}: {e.strerror}") from None
    real, rroot = data.resolve(), root.resolve()
    if rroot in real.parents:
        return "file://" + real.relative_to(rroot).as_posix()
    digest = hashlib.sha256(raw).hexdigest()
    dest = root / ".specops" / "windows" / f"{digest[:16]}{''.join(data.suffixes[-1:])}"
    if not dest.exists():
        dest.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(data, dest)
    return "file://" + dest.relative_to(root).as_posix()


def run_monitor(resolved: Resolved, env: str, name: str, *, data: Path | None = None,
                echo: Callable[[str], None] = lambda _: None, act: bool = True) -> MonitorOutcome:
    if env not in resolved.envs:
        raise MonitorError(f"unknown environment {env!r}" + suggestion(env, resolved.envs))
    view = resolved.envs[env]
    node = view.get("Monitor", name)
    if node is None:
        raise MonitorError(f"unknown monitor {name!r} in environment {env!r}"
                           + suggestion(name, [n.name for n in view.of_kind("Monitor")]))
    root = resolved.repo.root
    params = monitor_params(resolved, view, node)
    if data is not None:
        if "current" not in params:
            raise MonitorError(f"monitor {name!r}: --data replaces the drift window, but it has no drift check")
        params["current_uri"] = _stage_window(root, Path(data), name)
    when = _now()
    out = root / ".specops" / "monitors" / env / name / when.replace(":", "")
    try:
        report = run_step("monitor", params, inputs={}, output_dir=str(out), repo_root=str(root))
    except StepError as e:
        raise MonitorError(str(e)) from None
    outcome = MonitorOutcome(name, env, bool(report["breached"]), report, out)
    if not outcome.breached or not act:
        return outcome
    failed = [c for c in report["checks"] if not c["passed"]]
    trigger = {"monitor": name, "time": when, "window": (report.get("window") or {}).get("sha256")}
    breach: dict[str, Any] = {"time": when, "window": report.get("window") or {}, "checks": failed,
                              "report": out.relative_to(root).as_posix(), "retrain": None}
    outcome.breach = breach
    store = open_store(resolved.project.state, env, root)
    _record(store, env, name, breach)
    retrain = node.spec.on_breach.retrain
    if retrain is not None:
        outcome.retrain = _retrain(resolved, env, node.spec.watch.model, trigger,
                                   params.get("current") if retrain.data == "window" else None,
                                   params.get("current_uri"), echo)
        breach["retrain"] = outcome.retrain
        _record(store, env, name, breach)
    if node.spec.on_breach.notify:
        outcome.deliveries = notify_breach(resolved, env, node, breach)
    return outcome


def breach_event(resolved: Resolved, env: str, node: Any, breach: dict[str, Any]) -> Event:
    """The `breach` event of the one notifier's payload (compiler/schemas/events)."""
    name = node.name
    checks = [{"name": c["name"], "passed": c["passed"], "value": c.get("value"),
               "threshold": None if c.get("threshold") is None else f"{c['threshold']:g}"
               if isinstance(c["threshold"], (int, float)) else str(c["threshold"]), "message": c.get("message", "")}
              for c in breach["checks"]]
    retrain = breach.get("retrain")
    actions = (["notify"] if node.spec.on_breach.notify else []) + (["retrain"] if node.spec.on_breach.retrain else [])
    details: dict[str, Any] = {"monitor": name, "checks": checks, "actions": actions,
                               "retrain_run": retrain.get("run") if retrain else None,
                               "window": breach.get("window", {}), "report": breach.get("report")}
    if retrain:
        details["retrain"] = {k: retrain[k] for k in ("pipeline", "status", "registered", "gates") if k in retrain}
    failing = ", ".join(c["name"] for c in checks)
    line = f"env {env}: monitor {name} breached ({failing})"
    if retrain:
        line += f"; retrain run {retrain['run'][:12]} {retrain.get('status')}"
    return Event("breach", resolved.project_name, env, "monitor", line, target=resolved.envs[env].target_name,
                 details=details, time=breach["time"])


def notify_breach(resolved: Resolved, env: str, node: Any, breach: dict[str, Any]) -> list[Delivery]:
    """Send the breach to the notifiers the monitor names (each still filters by its events and envs)."""
    declared = resolved.project.notifications
    chosen = [Notifier.from_spec(n, declared[n].model_dump()) for n in node.spec.on_breach.notify if n in declared]
    return deliver(chosen, breach_event(resolved, env, node, breach))


def _record(store: Any, env: str, name: str, breach: dict[str, Any]) -> None:
    """Add (or update, by its time) one breach record under the state lock."""
    with store.lock(f"monitor {name}"):
        state = store.read() or State.new(env)
        entry = state.monitors.setdefault(name, {"breaches": []})
        entry["breaches"] = [b for b in entry["breaches"] if b.get("time") != breach["time"]] + [dict(breach)]
        entry["breaches"] = entry["breaches"][-MAX_BREACHES:]
        store.write(state)


def _retrain(resolved: Resolved, env: str, model_name: str, trigger: dict[str, Any], window: dict[str, Any] | None,
             window_uri: str | None, echo: Callable[[str], None]) -> dict[str, Any]:
    view = resolved.envs[env]
    model = view.get("Model", model_name)
    pipeline = lower_pipeline(resolved, view, model) if model is not None else None
    if pipeline is None:
        raise MonitorError(f"model {model_name!r} has no pipeline to retrain in {env!r}")
    source = None
    if window is not None:
        source = dict(window["dataset"])
        if window_uri is not None:
            source["uri"] = window_uri
            if not window_uri.endswith(f".{source.get('format')}"):
                source.pop("format", None)  # read by the file's suffix
                source.pop("csv", None)
    root = resolved.repo.root
    backend = pipeline_backend(pipeline.target.backend)
    local = pipeline.target.provider == "local" and backend.NAME == "zenml"
    uploads: dict[str, bytes] = {}
    if source is not None and not local and str(source.get("uri", "")).startswith("file://.specops/windows/"):
        # A staged window lives on this machine only: the orchestrator reads it from the
        # target's artifact store, content-addressed like the staged file.
        rel = source["uri"].removeprefix("file://")
        source["uri"] = f"{pipeline.target.artifact_store.rstrip('/')}/specops/{rel.removeprefix('.specops/')}"
        uploads[source["uri"]] = (root / rel).read_bytes()
    run = retrain_pipeline(pipeline, trigger, source)
    record: dict[str, Any] = {"run": trigger_id(pipeline, trigger), "pipeline": run.name, "model": model_name,
                              "trigger": trigger, "data": "window" if window is not None else "pinned"}
    if not local:
        return _retrain_remote(run, backend, record, uploads, root, provider_options(resolved.envs[env]), echo)
    echo(f"breach: retraining {model_name} as run {record['run'][:12]} ({run.name}) on ZenML's local stack")
    result = run_local(backend.emit(run), workdir=root / ".specops" / "runs" / env / run.name, repo_root=root,
                       zenml_config_path=root / ".specops" / "zenml")
    steps = {n: s for n, s in result.steps.items()}
    record["status"] = "succeeded" if result.ok else "failed"
    record["gates"] = {n.removeprefix("gate-"): s.status for n, s in sorted(steps.items()) if n.startswith("gate-")}
    reg = steps.get("register")
    if reg is not None and reg.result:
        record["registered"] = {"registry": reg.result.get("name"), "version": reg.result.get("version"),
                                "aliases": reg.result.get("aliases", [])}
        if reg.result.get("mlflow_version"):  # the number `specops promote --version` takes
            record["registered"]["mlflow_version"] = str(reg.result["mlflow_version"])
    if not result.ok:
        record["message"] = result.error or "the retrain run failed"
    return record


def _retrain_remote(run: Any, backend: Any, record: dict[str, Any], uploads: dict[str, bytes], root: Path,
                    options: dict[str, Any], echo: Callable[[str], None]) -> dict[str, Any]:
    """Start the retrain run through the target's orchestrator API, where the pipeline
    provider can start runs (`start`): the run registers version retrain-<id> when it finishes,
    in the cluster. Elsewhere it is reported, not silently skipped."""
    files = backend.emit(run)
    desired = Desired(address=f"{backend.RESOURCE_TYPE}.{run.name}", type=backend.RESOURCE_TYPE, name=run.name,
                      env=run.env, content_hash=content_hash(files), files=dict(sorted(files.items())),
                      attributes=attributes_of(files), depends_on=(), target=run.target, spec=f"Model/{run.model}")
    try:
        prov = make_provider(backend.RESOURCE_TYPE, env=run.env, target=run.target, root=root, options=options)
        start = getattr(prov, "start", None)
        if start is None:
            record["status"] = "not-started"
            record["message"] = (f"target {run.target.name!r} ({backend.NAME}): specops cannot start runs there;"
                                 f" start pipeline {run.name!r} from its compiled files")
            return record
        echo(f"breach: starting retrain run {record['run'][:12]} ({run.name}) on {backend.NAME}")
        started = start(desired, record["run"], uploads)
    except ProviderError as e:
        raise MonitorError(f"retrain of {run.model!r} on target {run.target.name!r}: {e}") from None
    record.update(status="started", execution=started["execution"], orchestrator=backend.NAME,
                  message=f"registers version retrain-{record['run'][:12]} (no alias) when the run finishes")
    return record


def promote_command(resolved: Resolved, env: str, model: str, version: str | None = None) -> str | None:
    """The command that proposes a retrained version as a git change: `specops promote` of that
    registry version (`--version`, MLflow's number) from the environment whose monitor retrained
    it to the next environment that deploys the model, in the order the Project writes its
    environments (dev, staging, prod); None when no later environment does."""
    names = list(resolved.project.environments)  # as written: resolve sorts its views by name
    later = [e for e in names[names.index(env) + 1:]
             if e in resolved.envs and resolved.envs[e].get("Model", model) is not None]
    if not later:
        return None
    return f"specops promote {model} --from {env} --to {later[0]}" + (f" --version {version}" if version else "")


def pending_promotions(state: State | None) -> list[dict[str, Any]]:
    """Retrained versions awaiting promotion: the latest successful retrain per model."""
    latest: dict[str, dict[str, Any]] = {}
    for name, entry in sorted((state.monitors if state else {}).items()):
        for b in entry.get("breaches", []):
            r = b.get("retrain") or {}
            if r.get("status") == "succeeded" and r.get("registered"):
                cur = latest.get(r["model"])
                if cur is None or b["time"] >= cur["breach_time"]:
                    latest[r["model"]] = {"model": r["model"], "monitor": name, "breach_time": b["time"],
                                          "run": r["run"], **r["registered"], "gates": r.get("gates", {})}
    return [latest[m] for m in sorted(latest)]
