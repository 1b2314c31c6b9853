"""Lowering of Monitors: a resolved environment -> each monitor's run parameters.

The parameters are what `specops monitor run` (specops.runtime.monitor) executes, and what the
scheduled monitoring jobs of each orchestrator receive: the data windows as data_check dataset
params (so the reference is exactly the split the model's pipeline trains on: same splits,
same seed), the checks with their thresholds, the schedule and the breach actions. JSON-able,
sorted, no absolute paths: compiled to `<env>/monitors/<name>/monitor.json`.

A monitor with a `schedule` is also a one-step pipeline (`monitor_job`): the step runtime's
`monitor` step with these params, lowered like any lifecycle pipeline so each orchestrator's
own emitter writes it (KFP recurring run, SageMaker pipeline + EventBridge Scheduler, ZenML
schedule). On such a job a breach fails the run (`fail_on_breach`), which is what the
orchestrator's own alerting sees.

A retrain is the watched Model's lifecycle pipeline, re-identified by its trigger
(`retrain_pipeline`): it trains on the breached window (or the pinned data), registers a
version named after the trigger and moves no alias, and deploys nothing; promotion stays a
git change.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import shlex
from collections.abc import Callable
from typing import Any

from specops import ir
from specops.frontend.overrides import Node
from specops.ir.lower import dataset_params, env_defaults, lower_target, spec_source, step_image
from specops.resolve.refs import EnvView, Resolved
from specops.runtime.thresholds import parse_threshold

MONITOR_PARAMS_VERSION = 1
# A monitor's scheduled job is pipeline `monitor-<name>` (resource `<backend>_pipeline.monitor-<name>`).
JOB_PREFIX = "monitor-"
# What the scheduled job computes; serving SLOs are evaluated by Prometheus or CloudWatch instead.
JOB_CHECKS = ("drift", "quality", "llm")
# The split name a whole production window gets when its data_check step reads it.
WINDOW_SPLIT = "window"


def _window(view: EnvView, w: Any, seed: int, root: Any, whole: bool) -> dict[str, Any] | None:
    ds = view.get("Dataset", w.dataset)
    if ds is None:
        return None  # an unresolved reference: reported by the resolver
    params = dataset_params(view, ds, seed, root)
    if whole and w.split is None:
        # Production data is read whole: one split, no data checks (a window that breaks the
        # training data's checks is what drift measures, not a reason to stop).
        params = {**params, "splits": {WINDOW_SPLIT: 1.0}, "checks": []}
        params.pop("lock", None)
    return {"dataset": params, "split": w.split or WINDOW_SPLIT if whole else w.split}


def _reference(view: EnvView, watch: Any, seed: int, root: Any) -> dict[str, Any] | None:
    if watch.reference is not None:
        ref = _window(view, watch.reference, seed, root, whole=False)
        if ref is not None and ref["split"] is None:
            ds = view.get("Dataset", watch.reference.dataset)
            ref["split"] = next(iter(ds.spec.splits), "train") if ds is not None else "train"
        return ref
    model = view.get("Model", watch.model) if watch.model else None
    if model is None or not model.spec.datasets:
        return None
    use = model.spec.datasets[0]
    ds = view.get("Dataset", use.dataset)
    if ds is None:
        return None
    return {"dataset": dataset_params(view, ds, seed, root), "split": use.split or "train"}


def _columns(view: EnvView, watch: Any) -> list[str]:
    if watch.columns:
        return list(watch.columns)
    model = view.get("Model", watch.model) if watch.model else None
    classical = getattr(model.spec, "classical", None) if model is not None else None
    return list(getattr(classical, "features", None) or [])


def monitor_params(resolved: Resolved, view: EnvView, node: Node) -> dict[str, Any]:
    s = node.spec
    w, c = s.watch, s.checks
    seed = env_defaults(resolved, view.name)["seed"]
    root = resolved.repo.root
    out: dict[str, Any] = {"version": MONITOR_PARAMS_VERSION, "monitor": node.name, "env": view.name,
                           "model": w.model, "checks": {}, "labels": dict(sorted(node.labels.items()))}
    if c.drift is not None and w.inputs is not None:
        d = c.drift
        out["current"] = _window(view, w.inputs, seed, root, whole=True)
        out["reference"] = _reference(view, w, seed, root)
        out["columns"] = _columns(view, w)
        out["checks"]["drift"] = {
            "method": d.method, "threshold": d.threshold, "drifted_share": d.drifted_share,
            "columns": {k: v.model_dump(mode="json") for k, v in sorted(d.columns.items())}}
    if c.quality and w.feedback is not None:
        f = w.feedback
        out["feedback"] = {**(_window(view, f, seed, root, whole=True) or {}), "label_column": f.label_column,
                           "prediction_column": f.prediction_column, "score_column": f.score_column}
        out["checks"]["quality"] = [parse_threshold(m.threshold).to_params(m.metric) for m in c.quality]
    if c.llm is not None and w.traffic is not None:
        t = w.traffic
        out["traffic"] = {**(_window(view, t, seed, root, whole=True) or {}), "response_column": t.response_column, "sample": t.sample}
        out["checks"]["llm"] = {"assertions": [a.model_dump(mode="json", exclude_none=True) for a in c.llm.assertions],
                                "min_pass_rate": c.llm.min_pass_rate}
    if c.slo is not None and w.serving is not None and view.get("ServingTarget", w.serving) is not None:
        out["serving"] = w.serving
        out["checks"]["slo"] = c.slo.model_dump(mode="json", by_alias=True)
    out["schedule"] = s.schedule.cron if s.schedule is not None else None
    out["on_breach"] = {"notify": list(s.on_breach.notify),
                        "retrain": s.on_breach.retrain.model_dump(mode="json") if s.on_breach.retrain else None}
    return out


def lower_monitors(resolved: Resolved, env: str, keep: Callable[[str], bool] | None = None
                   ) -> list[tuple[Node, dict[str, Any]]]:
    view = resolved.envs[env]
    return [(n, monitor_params(resolved, view, n)) for n in view.of_kind("Monitor") if keep is None or keep(n.key)]


def job_name(monitor: str) -> str:
    return f"{JOB_PREFIX}{monitor}"


def monitor_job(resolved: Resolved, view: EnvView, node: Node, params: dict[str, Any]) -> ir.Pipeline | None:
    """The scheduled monitoring job of a Monitor: one `monitor` step running its params, on the
    environment's target, on the monitor's cron. None when it has no schedule or nothing for a
    job to compute (SLO checks only: those are alerting rules)."""
    s = node.spec
    if s.schedule is None or not any(k in params["checks"] for k in JOB_CHECKS):
        return None
    defaults = env_defaults(resolved, view.name)
    step = ir.Step("monitor", "monitor", {**params, "fail_on_breach": True}, image=step_image(defaults["image"], view.target),
                   source=spec_source(node, ("checks",)))
    return ir.Pipeline(
        name=job_name(node.name), env=view.name, model=params.get("model") or "",
        target=lower_target(view.target_name, view.target), steps=(step,), parameters={"repo_root": "."},
        schedule=ir.Schedule(s.schedule.cron, spec_source(node, ("schedule", "cron"))),
        artifact_root=f"{view.target.artifact_store.rstrip('/')}/{view.name}/{job_name(node.name)}",
        labels={**dict(sorted(node.labels.items())), "specops-monitor": node.name}, source=spec_source(node))


def host_schedule_line(cron: str, monitor: str, env: str, repo: str = '"$SPECOPS_REPO"') -> str:
    """The crontab line that runs a monitor from the host's scheduler (`repo`: a shell word)."""
    return f"{cron} cd {repo} && specops monitor run {shlex.quote(monitor)} --env {shlex.quote(env)}"


def crontab_bytes(cron: str, monitor: str, env: str, target: str, backend: str) -> bytes:
    """`<env>/monitors/<name>/crontab`: where the target's orchestrator cannot schedule."""
    return (f"# specops: monitor {monitor} in environment {env}. Target '{target}' ({backend}) cannot\n"
            "# schedule runs, so the host's scheduler runs it. Install it with\n"
            "# `crontab -e`, setting SPECOPS_REPO to this repository's checkout above the line\n"
            f"# (`specops monitor schedule {monitor} --env {env}` prints it with the checkout's path).\n"
            "# A breach exits 2 and an error 1: cron mails the output.\n"
            f"{host_schedule_line(cron, monitor, env)}\n").encode()


def params_bytes(params: dict[str, Any]) -> bytes:
    return (json.dumps(params, sort_keys=True, indent=2, ensure_ascii=False) + "\n").encode()


# ---- retraining --------------------------------------------------------------------------


def trigger_id(pipeline: ir.Pipeline, trigger: dict[str, Any]) -> str:
    """A retrain run's identity: the pipeline's content hash plus its trigger (monitor, breach
    time, digest of the data window)."""
    blob = json.dumps({"pipeline": ir.fingerprint(pipeline), "trigger": trigger}, sort_keys=True)
    return hashlib.sha256(blob.encode()).hexdigest()


def retrain_pipeline(pipeline: ir.Pipeline, trigger: dict[str, Any], window: dict[str, Any] | None) -> ir.Pipeline:
    """The Model's pipeline as a retrain run: on `window` (data_check dataset params of the
    breached window) when given, registering version `retrain-<id>` with no alias, no deploy."""
    run = trigger_id(pipeline, trigger)
    steps = []
    trained_on = pipeline.steps[0].name if pipeline.steps else ""
    for st in pipeline.steps:
        if st.kind == "deploy":
            continue  # the environment changes only when the promotion merges
        params = dict(st.params)
        if st.kind == "data_check" and st.name == trained_on and window is not None:
            ds = dict(params["dataset"])
            for key in ("uri", "format", "version", "csv", "credentials"):
                ds.pop(key, None)
                if key in window:
                    ds[key] = window[key]
            ds.pop("lock", None)  # the window is not in specops.lock: its digest is in the trigger
            params["dataset"] = ds
        if st.kind == "register":
            # No alias moves, MLflow's environment alias included: promotion moves it, through git.
            params.update(version=f"retrain-{run[:12]}", aliases=[], move_aliases=False)
        steps.append(dataclasses.replace(st, params=params))
    return dataclasses.replace(pipeline, name=f"{pipeline.name}-retrain-{run[:8]}", steps=tuple(steps),
                               schedule=None, labels={**pipeline.labels, "specops-trigger": run[:12]})
