"""`specops compile`: resolved and checked specs -> every backend's artifacts plus a manifest.

Output tree (all paths relative to the build directory)::

    <env>/<backend>/<model>/...          pipeline artifacts (one folder per pipeline backend)
    <env>/serving/<name>/vllm.yaml       the `vllm serve --config` file
    <env>/serving/<name>/capacity.json   the GPU capacity report (when a config.json is known)
    <env>/serving/<name>/<platform files>
    <env>/monitors/<name>/monitor.json   what `specops monitor run` and the scheduled job execute
    <env>/monitors/<name>/<backend>/...  a scheduled monitor's job, emitted by the target's
                                         pipeline backend (or `crontab` where it cannot schedule)
    manifest.json                        versioned: every artifact's sha256, source, deps

Backends come from the one registry (`specops.backends.registry`); their `emit` functions
return bytes, gathered here into one {path: bytes} mapping that the CLI writes. Identical
input gives identical bytes: no timestamps, no absolute paths, sorted keys, SDK versions
normalised by each backend.
"""

from __future__ import annotations

import dataclasses
import hashlib
import os
import tempfile
from pathlib import Path
from typing import Any, Callable, Iterable

from specops import ir
from specops.backends import cloudwatch, helm_stack, mlserver, prometheus, sagemaker_endpoint, vllm
from specops.backends.kubernetes import served_model_name
from specops.backends.registry import pipeline_backend, serving_platform
from specops.build import cache
from specops.build import units as units_mod
from specops.build.checkcache import probe_state
from specops.build.checkrecords import records_of
from specops.build.manifest import Artifact, Build, PackedArtifact, manifest_lines, sha_of, spec_digest
from specops.build.output import write_build
from specops.build.units import UnitIndex
from specops.checks import analyze
from specops.checks.capacity import capacity_report, startup_probe
from specops.diagnostics import Diagnostic, SpecError
from specops.fsio import weights_digest
from specops.ir.lower import gates_of_model, lower_env
from specops.ir.monitors import crontab_bytes, host_schedule_line, lower_monitors, monitor_job, params_bytes
from specops.ir.nodes import diagnostic_location
from specops.resolve.lockfile import lock_bytes
from specops.resolve.refs import EnvView, Resolved


def dependencies(view: EnvView, key: str) -> list[str]:
    """Spec keys an artifact of `key` depends on: what it references, transitively; for a
    Model also the gates evaluated in its pipeline (with their prompts and datasets) and the
    serving targets that deploy it. A ServingTarget reads only the names of its gates, so
    what a gate references (its prompt, its dataset) is not a dependency of serving."""
    seen = {key}
    todo = [key]
    if key.startswith("Model/"):
        model = view.nodes.get(key)
        extra = [f"EvalGate/{g.name}" for g in gates_of_model(view, model)] if model is not None else []
        extra += [k for k in view.referrers(key) if k.startswith("ServingTarget/")]
        for k in extra:
            if k not in seen:
                seen.add(k)
                todo.append(k)
    opaque = key.startswith("ServingTarget/")
    while todo:
        cur = todo.pop()
        if opaque and cur.startswith("EvalGate/"):
            continue
        for d in view.references(cur):
            if d not in seen:
                seen.add(d)
                todo.append(d)
    return sorted(seen | {"Project"})


def _src(source: Any) -> dict[str, Any]:
    # File only: lines are for diagnostics (computed on demand); the manifest must not
    # change when a comment above a spec moves it down a line.
    return {"file": source.file} if source else {}


def compile_env(resolved: Resolved, env: str, build: Build, cache_dir: Path | None = None,
                emitted: EmitCache | None = None) -> None:
    view = resolved.envs[env]
    emitted = emitted if emitted is not None else EmitCache(cache_dir)
    # With a cache, the units (build/units.py) the last build holds unchanged are replayed
    # from it; only the others are lowered and emitted, each through a sink that records
    # what it produced for the next compile.
    units = emitted.units(resolved, view)
    keep = units.compiles if units is not None else None

    def out(key: str) -> Any:
        return units.sink(build, key) if units is not None else build

    pipelines, servings = lower_env(resolved, env, keep)
    backend = pipeline_backend(view.target.backend)
    releases: dict[str, list[tuple[ir.Serving, dict[str, Any]]]] = {}
    for p in pipelines:
        key = f"Model/{p.model}"
        sink = out(key)
        sink.diagnostics.extend(backend.check(p))
        deps = dependencies(view, key)
        folder = f"{env}/{backend.NAME}/{p.name}"
        for rel, data in sorted(emitted.emit(backend, p, lambda rel, folder=folder: f"{folder}/{rel}").items()):
            sink.add(Artifact(f"{env}/{backend.NAME}/{p.name}/{rel}", data, env, backend.NAME, key,
                              _src(p.source), deps, "pipeline", p.name, rel))
    for s in servings:
        compile_serving(resolved, view, s, out(f"ServingTarget/{s.name}"), releases, emitted)
    for release, parts in sorted(releases.items()):
        compile_release(view, release, parts, out(f"ServingTarget/{parts[0][0].name}"))
    served = {s.name: s for s in servings}
    for node, params in lower_monitors(resolved, env, keep):
        key = node.key
        sink = out(key)
        sink.add(Artifact(f"{env}/monitors/{node.name}/monitor.json", params_bytes(params), env, "specops", key,
                          _src(node), dependencies(view, key), "monitor", node.name, "monitor.json"))
        slo = params["checks"].get("slo")
        if slo is not None and params.get("serving") in served:
            compile_alerts(view, node, served[params["serving"]], slo, sink)
        job = monitor_job(resolved, view, node, params)
        if job is not None:
            compile_monitor_job(view, node, job, backend, sink, emitted)
    if units is not None:
        emitted.replay(units, build)


def compile_monitor_job(view: EnvView, node: Any, job: ir.Pipeline, backend: Any, build: Any,
                        emitted: EmitCache) -> None:
    """A monitor's schedule: its one-step job emitted by the target's pipeline backend, through the
    same emitter and cache as lifecycle pipelines (role `pipeline`: plan and apply manage it as
    `<backend>_pipeline.monitor-<name>`). Where the orchestrator cannot schedule (ZenML's local
    one), the host's scheduler runs `specops monitor run`: a crontab line, and a note saying so."""
    key, base = node.key, f"{view.name}/monitors/{node.name}"
    deps = dependencies(view, key)
    if not getattr(backend, "can_schedule", lambda _p: True)(job):
        line = host_schedule_line(job.schedule.cron, node.name, view.name)
        data = crontab_bytes(job.schedule.cron, node.name, view.name, view.target_name, backend.NAME)
        build.add(Artifact(f"{base}/crontab", data, view.name, "specops", key, _src(node), deps, "monitor",
                           node.name, "crontab"))
        build.diagnostics.add(Diagnostic(
            "note", "unsupported", f"target '{view.target_name}' ({backend.NAME}) cannot schedule monitor "
            f"'{node.name}': the host's scheduler runs it with `{line}` "
            f"({base}/crontab; `specops monitor schedule {node.name} --env {view.name}` prints it for this checkout)",
            *diagnostic_location(job.schedule.source)))
        return
    build.diagnostics.extend(backend.check(job))
    folder = f"{base}/{backend.NAME}"
    for rel, data in sorted(emitted.emit(backend, job, lambda rel, folder=folder: f"{folder}/{rel}").items()):
        build.add(Artifact(f"{folder}/{rel}", data, view.name, backend.NAME, key, _src(node), deps, "pipeline",
                           job.name, rel))


def compile_alerts(view: EnvView, node: Any, s: ir.Serving, slo: dict[str, Any], build: Any) -> None:
    """A Monitor's serving SLOs: Prometheus rules (+ a PrometheusRule on Kubernetes platforms) and
    a Grafana dashboard, in the metric names of the serving target's vLLM version."""
    where = diagnostic_location(ir.Source(node.file, locate=lambda: _pos(node, ("spec", "checks", "slo"))))
    if s.engine != "vllm":
        build.diagnostics.add(Diagnostic("error", "unsupported", f"serving SLOs are alerting rules on vLLM's engine "
                                         f"metrics; serving target '{s.name}' runs {s.engine}", *where))
        return
    used, _ = prometheus.metric_list(s.engine_version)
    if used != s.engine_version:
        build.diagnostics.add(Diagnostic("warning", "unsupported", f"no reviewed metric list for vLLM "
                                         f"{s.engine_version}: the alerting rules and dashboard use vLLM {used}'s "
                                         "metric names", *where))
    platform = node_platform(view, s)
    if platform != "sagemaker":
        for key, why in sorted(prometheus.gaps(slo, s.engine_version).items()):
            at = diagnostic_location(ir.Source(node.file, locate=lambda k=key: _pos(node, ("spec", "checks", "slo", k))))
            build.diagnostics.add(Diagnostic("warning", "unsupported", f"{why}: no alerting rule for {key} on "
                                             f"serving target '{s.name}'", *at))
    deps = sorted(set(dependencies(view, node.key)) | set(dependencies(view, f"ServingTarget/{s.name}")))
    if platform == "sagemaker":
        # An endpoint publishes CloudWatch metrics, not vLLM's /metrics: alarms on what it publishes.
        missing = [k for k in cloudwatch.NOT_CARRIED if slo.get(k) is not None]
        if missing:
            build.diagnostics.add(Diagnostic("warning", "unsupported", "a SageMaker endpoint publishes no "
                                             f"{', '.join(missing)} metric to CloudWatch: no alarm for them", *where))
        endpoint = sagemaker_endpoint.endpoint_name(s)
        for file, data in cloudwatch.emit(node.name, view.name, endpoint, sagemaker_endpoint.VARIANT, slo,
                                          sagemaker_endpoint.sagemaker_tags(s)).items():
            build.add(Artifact(f"{view.name}/monitors/{node.name}/{file}", data, view.name, "cloudwatch", node.key,
                               _src(node), deps, "monitor", node.name, file))
        return
    if platform not in prometheus.OPERATOR_PLATFORMS:
        build.diagnostics.add(Diagnostic("warning", "unsupported", f"serving platform '{platform}' exposes no "
                                         "vLLM /metrics to Prometheus by itself: the rules need a Prometheus that "
                                         "scrapes the server", *where))
    labels = dict(sorted(node.labels.items()))
    files = prometheus.emit(node.name, view.name, s.name, served_model_name(s, s.engine_args), slo, s.engine_version,
                            platform, s.target.namespace, labels)
    for file, data in sorted(files.items()):
        build.add(Artifact(f"{view.name}/monitors/{node.name}/{file}", data, view.name, "prometheus", node.key,
                           _src(node), deps, "monitor", node.name, file))


def _pos(node: Any, path: tuple) -> tuple[int, int]:
    pos = node.doc.pos_of(path)
    return pos.line, pos.col


def node_platform(view: EnvView, s: ir.Serving) -> str:
    spec = view.get("ServingTarget", s.name)
    return (spec.spec.platform if spec is not None and spec.spec.platform else None) or s.target.serving_platform


def compile_release(view: EnvView, release: str, parts: list[tuple[ir.Serving, dict[str, Any]]],
                    build: Any) -> None:
    """One production-stack values file for the serving targets that share a Helm release."""
    parts = sorted(parts, key=lambda p: p[0].name)
    values, diags = helm_stack.combine(parts)
    build.diagnostics.extend(diags)
    first = parts[0][0]
    deps = sorted({d for s, _ in parts for d in dependencies(view, f"ServingTarget/{s.name}")})
    build.add(Artifact(f"{view.name}/serving/{release}/values.yaml", helm_stack.values_bytes(values), view.name,
                       helm_stack.ARTIFACT_BACKEND, f"ServingTarget/{first.name}", _src(first.source), deps,
                       "serving", release, "values.yaml"))


class EmitCache:
    """Emission cache: the files a backend emitted for an identical IR node (same IR
    fingerprint, same specops code) are taken from the last stored build instead of emitted
    again, so a change to one spec re-emits only the pipelines and serving targets it
    affects. The last build's pack (cache.py) is the cache: its index maps each emission key
    to the artifacts that emission became, so nothing is written per pipeline (a file per
    entry cost ~3 ms of open/mkdir each here) and the cache holds each artifact once.
    `index` is this compile's map, stored with its build."""

    def __init__(self, cache_dir: Path | None):
        self.dir = Path(cache_dir) if cache_dir is not None else None
        self._code: str | None = None
        self._models: dict[str, str] = {}  # model config path -> its state (serving)
        # The last build: its emission index, artifact entries by path, a reader of its
        # bytes, its unit records.
        self._prev: tuple[dict[str, Any], dict[str, dict[str, Any]], Any, dict[str, Any]] | None = None
        self.index: dict[str, Any] = {}
        self.unit_records: dict[str, Any] = {}
        self._owner: dict[str, str] | None = None
        # This compile's YAML inputs by sha256 (compile_repo sets it): with the last build's,
        # a spec in an unchanged file keeps its entry in the specs index (spec_specs).
        self.inputs: dict[str, str] = {}
        self._prev_specs: tuple[dict[str, Any], dict[str, str]] = ({}, {})
        self._lines_of: Callable[[], dict[str, str]] = dict
        self._lines: dict[str, str] | None = None
        self._where: Callable[[int], tuple[Any, int]] | None = None  # cache.PackView.where

    def _key(self, *parts: str) -> str:
        if self._code is None:
            self._code = cache.code_fingerprint()
        return hashlib.sha256("\n".join((self._code, *parts)).encode()).hexdigest()

    def _last(self) -> tuple[dict[str, Any], dict[str, dict[str, Any]], Any, dict[str, Any]]:
        if self._prev is None:
            rec = cache.latest_view(self.dir) if self.dir is not None else None
            if rec is None or not isinstance(rec.index.get("emit"), dict):
                self._prev = ({}, {}, None, {})
            else:
                arts = {a["path"]: a for a in rec.index["artifacts"]}
                units = rec.index.get("units")
                self._prev = (rec.index["emit"], arts, rec.read, units if isinstance(units, dict) else {})
                self._where = rec.where
                specs, inputs = rec.index.get("specs"), rec.index.get("inputs")
                if isinstance(specs, dict) and isinstance(inputs, dict) and inputs.get("code") == cache.code_fingerprint() \
                        and isinstance(inputs.get("files"), dict):
                    # Made by this very code: its specs-index entries and manifest lines hold.
                    self._prev_specs = (specs, inputs["files"])
                    self._lines_of = lambda: self._manifest_lines(rec)
        return self._prev

    def spec_entry(self, key: str, file: str, document: int) -> dict[str, Any] | None:
        """The last build's specs-index entry of `key` when it came from this very document of
        a file whose bytes did not change (its digest is then the same: not computed again)."""
        if self.dir is None or not self.inputs:
            return None
        self._last()
        specs, inputs = self._prev_specs
        old = specs.get(key)
        if (isinstance(old, dict) and old.get("file") == file and old.get("document") == document
                and inputs.get(file) is not None and inputs.get(file) == self.inputs.get(file)):
            return old
        return None

    @staticmethod
    def _manifest_lines(rec: Any) -> dict[str, str]:
        """Artifact path -> its line in the last build's manifest (in the same order as the
        pack's artifact entries: both sorted by path)."""
        arts = rec.index["artifacts"]
        off, size = rec.index["manifest"]
        lines = manifest_lines(rec.read(off, size), len(arts))
        return {} if lines is None else {a["path"]: line for a, line in zip(arts, lines)}

    def _bytes(self, path: str) -> bytes:
        _, arts, read, _ = self._last()
        a = arts[path]
        return read(a["offset"], a["size"])

    def _previous(self, key: str) -> tuple[dict[str, Any], Any] | None:
        """The last build's record of `key` and a reader of that build's artifact bytes."""
        if self.dir is None:
            return None
        got = self._last()[0].get(key)
        return None if got is None else (got, self._bytes)

    def units(self, resolved: Resolved, view: EnvView) -> UnitIndex | None:
        """The environment's units against the last build's (None without a cache)."""
        if self.dir is None:
            return None
        unit_of, sigs = units_mod.env_units(resolved, view)  # the semantic checks' records used them too
        _, arts, _, previous = self._last()
        return UnitIndex(sigs, unit_of, previous, arts)

    def release(self) -> None:
        """Drop the last build's index and close its pack (~50 MB of objects at 10,000 specs);
        this compile's own indexes stay."""
        self._prev = ({}, {}, None, {})
        self._where = None
        self._prev_specs = ({}, {})
        self._lines_of, self._lines = dict, None
        self._owner = None

    def probes(self, resolved: Resolved) -> dict[str, str]:
        """cache.probes_of(resolved), once per run (the units' key and the store use it)."""
        return units_mod.probes(resolved)

    def replay(self, units: UnitIndex, build: Any) -> None:
        """Add the reused units' artifacts and diagnostics, as the last build had them, and
        carry their records (units and emission entries) into this compile's index."""
        emit, arts, read, _ = self._last()
        if self._owner is None and units.reused:  # artifact path -> the emission entry that made it
            self._owner = {}
            for k, e in emit.items():
                files = e.get("files") if isinstance(e, dict) else None
                for path in files.values() if isinstance(files, dict) else [f[1] for f in files or ()]:
                    self._owner[path] = k
        owner = self._owner or {}
        if self._lines is None and units.reused:
            self._lines = self._lines_of()
        lines = self._lines or {}
        where = self._where
        for sig in sorted(units.reused):
            rec = units.previous[sig]
            for path in rec["paths"]:
                a = arts[path]
                build.add(PackedArtifact(
                    lambda off=a["offset"], size=a["size"]: read(off, size), a["size"], path=path, env=a["env"],
                    backend=a["backend"], spec=a["spec"], source=a["source"], depends_on=list(a["dependsOn"]),
                    role=a["role"], resource=a["resource"], file=a["file"], sha=a["sha256"], line=lines.get(path, ""),
                    where=where(a["offset"]) if where is not None else None))
                if (k := owner.get(path)) is not None:
                    self.index[k] = emit[k]
            build.diagnostics.extend(Diagnostic.from_row(r) for r in rec["diags"])
            self.unit_records[sig] = rec
        self.unit_records.update(units.records)

    def emit(self, backend: Any, pipeline: ir.Pipeline, path_of: Callable[[str], str]) -> dict[str, bytes]:
        if self.dir is None:
            return backend.emit(pipeline)
        key = self._key(backend.NAME, ir.fingerprint(pipeline))
        prev = self._previous(key)
        files: dict[str, bytes] | None = None
        if prev is not None:
            try:
                files = {rel: prev[1](path) for rel, path in prev[0]["files"].items()}
            except (KeyError, TypeError, AttributeError):
                files = None
        if files is None:
            files = backend.emit(pipeline)
        self.index[key] = {"files": {rel: path_of(rel) for rel in sorted(files)}}
        return files

    def serving(self, resolved: Resolved, s: ir.Serving, releases: dict | None, base: str
                ) -> tuple[list[tuple[str, bytes, str, str]], list[Diagnostic]]:
        """serving_outputs through the cache: keyed by the Serving IR, the specops code and
        the model folder capacity planning reads (config.json bytes, weights' headers). The IR
        keeps no line numbers, so a hit also needs the files its diagnostics point into to
        hold the same bytes (their positions are then the same). A target of a
        production-stack release is not cached (its values join the release's file)."""
        repo = resolved.repo
        if self.dir is None or (s.release and releases is not None
                                and serving_platform(s.target.serving_platform) is helm_stack):
            return serving_outputs(repo.root, s, releases)
        model = ""
        if s.model_config:
            model = self._models.get(s.model_config)
            if model is None:
                folder = s.model_config.rsplit("/", 1)[0] if s.model_config.endswith("config.json") else s.model_config
                # The config's bytes and the weights' headers (fsio.weights_digest): what the
                # capacity report counts from, by content, not by the folder's mtimes. Once a
                # compile per folder: serving targets share base models.
                model = self._models[s.model_config] = (f"{probe_state(repo.root, s.model_config)}\n"
                                                        f"{weights_digest(repo.root / folder)}")
        key = self._key("serving", ir.fingerprint(s), model)
        prev = self._previous(key)
        got = None
        if prev is not None:
            rec, read = prev
            try:
                if all(units_mod.file_sha(resolved, f) == sha for f, sha in rec["pos_files"].items()):
                    got = ([(f, read(path), backend, role) for f, path, backend, role in rec["files"]],
                           [Diagnostic.from_row(r) for r in rec["diags"]])
            except (KeyError, TypeError, ValueError):
                got = None
        files, diags = got if got is not None else serving_outputs(repo.root, s, releases)
        self.index[key] = {"files": [[f, f"{base}/{f}", backend, role] for f, _, backend, role in files],
                           "pos_files": {d.file: units_mod.file_sha(resolved, d.file) for d in diags if d.file is not None},
                           "diags": [d.to_row() for d in diags]}
        return files, diags


def compile_serving(resolved: Resolved, view: EnvView, s: ir.Serving, build: Any,
                    releases: dict[str, list[tuple[ir.Serving, dict[str, Any]]]] | None = None,
                    emitted: EmitCache | None = None) -> None:
    key = f"ServingTarget/{s.name}"
    deps = dependencies(view, key)
    base = f"{view.name}/serving/{s.name}"
    src = _src(s.source)
    files, diags = (emitted.serving(resolved, s, releases, base) if emitted is not None
                    else serving_outputs(resolved.repo.root, s, releases))
    build.diagnostics.extend(diags)
    for file, data, backend, role in files:
        build.add(Artifact(f"{base}/{file}", data, view.name, backend, key, src, deps, role, s.name, file))


def serving_outputs(root: Path, s: ir.Serving, releases: dict[str, list[tuple[ir.Serving, dict[str, Any]]]] | None
                    ) -> tuple[list[tuple[str, bytes, str, str]], list[Diagnostic]]:
    """One serving target's artifacts as (file, bytes, backend, role) and its diagnostics; a
    target of a production-stack release joins `releases` instead of emitting its values."""
    files: list[tuple[str, bytes, str, str]] = []
    diags: list[Diagnostic] = []
    platform = serving_platform(s.target.serving_platform)
    if s.engine == "mlserver":
        # A classical model: MLServer's settings are the serving config; no GPU capacity.
        files.extend((file, data, "mlserver", "serving-config") for file, data in sorted(mlserver.serve_config(s).items()))
        diags.extend(mlserver.check(s) + platform.check(s, None))
        if _has_error(diags):
            return files, diags
        files.extend((file, data, platform.ARTIFACT_BACKEND, "serving") for file, data in sorted(platform.emit(s, None).items()))
        return files, diags
    try:
        config = vllm.node_serve_config(s)
    except vllm.VllmArgsError as e:  # already reported by validate at the flag's line
        return files, [Diagnostic("error", "vllm-flag", str(e), *diagnostic_location(s.source))]
    files.append(("vllm.yaml", config, "vllm", "serving-config"))
    if s.model_config:
        report = capacity_report(root, s)
        if isinstance(report, Diagnostic):
            diags.append(report)
        else:
            files.append(("capacity.json", report.to_json().encode(), "capacity", "report"))
            d = report.to_diagnostic(*diagnostic_location(s.source)) if report.verdict != "ok" else None
            if d is not None:
                diags.append(d)
            if "startup" not in s.probes:
                # Unless the spec says otherwise, the server gets as long to start as its weights need.
                s = dataclasses.replace(s, probes={**s.probes, "startup": startup_probe(report)})
    problems = platform.check(s, config)
    diags.extend(problems)
    if _has_error(problems):
        # The platform said it cannot take this target (an unknown region, a refused shape):
        # emitting anyway would fail inside the emitter instead of at the spec's line.
        return files, diags
    if platform is helm_stack and s.release and releases is not None:
        # Targets of one release share a values file: emitted once all of them are lowered.
        releases.setdefault(s.release, []).append((s, helm_stack.helm_values(s, config)))
        return files, diags
    files.extend((file, data, platform.ARTIFACT_BACKEND, "serving") for file, data in sorted(platform.emit(s, config).items()))
    return files, diags


def _has_error(problems: list[Diagnostic]) -> bool:
    return any(d.severity == "error" for d in problems)


def compile_repo(resolved: Resolved, envs: list[str] | None = None, cache_dir: Path | None = None) -> Build:
    """Every environment's artifacts. With `cache_dir`, a build of exactly these inputs (YAML
    bytes, the repo files they name, the specops code) is read back from the cache instead of
    recomputed, and a fresh build is stored there (see cache.py); the bytes are the same."""
    if cache_dir is None or resolved.diagnostics.has_errors:
        return _compile_repo(resolved, envs, cache_dir)
    root = resolved.repo.root
    shas = {rel: units_mod.file_sha(resolved, rel) for rel in resolved.repo.files}  # memoised: the units hashed them
    ikey = cache.inputs_key(resolved.repo.files, envs, cache.ignore_bytes(root), lock_bytes(root), shas)
    hit = cache.lookup(Path(cache_dir), root, ikey)
    index = hit.build_index() if hit is not None else None
    if hit is not None and index is not None:
        return Build.from_record(index, hit.blob)
    emitted = EmitCache(cache_dir)
    emitted.inputs = shas
    build = _compile_repo(resolved, envs, cache_dir, emitted)
    emitted.release()  # the last build's index, before the new one is made (peak memory)
    if not build.diagnostics.has_errors:  # only clean builds: a hit must reproduce a full compile
        index, chunks = build.to_record()
        index["emit"] = emitted.index  # the next compile's emission cache
        index["units"] = emitted.unit_records  # and its dependency index (build/units.py)
        # and what its specs index was made of (by which code: a digest is only as good as it)
        index["inputs"] = {"code": cache.code_fingerprint(), "files": shas}
        cache.store(Path(cache_dir), ikey, emitted.probes(resolved), sorted(resolved.envs), index, chunks)
        # Bounded: at most about twice the build output on disk.
        cache.prune(Path(cache_dir), 2 * sum(index["manifest"]))
    return build


class Spool:
    """Where a compile with a cache puts each environment's new artifact bytes once it is
    compiled: an unlinked temp file in the cache folder, read back (pread) when the bytes are
    asked for (the manifest's hashes, the pack, the build tree), so the loaded repo and the
    whole build (155 MB at 10,000 specs) are not in memory at once. Replayed artifacts are
    in the last pack already and stay there."""

    def __init__(self, cache_dir: Path):
        self._dir = Path(cache_dir)
        self._f: Any = None
        self._end = 0

    def spill(self, build: Build) -> None:
        fresh = [a for a in build.artifacts.values() if not isinstance(a, PackedArtifact)]
        if not fresh:
            return
        try:
            if self._f is None:
                self._dir.mkdir(parents=True, exist_ok=True)
                self._f = tempfile.TemporaryFile(dir=self._dir, prefix="spool-")  # noqa: SIM115 (held for the compile)
            self._f.seek(self._end)
            for a in fresh:
                self._f.write(a.data)
            self._f.flush()
        except OSError:
            return  # a full or read-only disk: the bytes stay in memory
        for a in fresh:
            off, size = self._end, len(a.data)
            self._end += size
            build.artifacts[a.path] = PackedArtifact(
                lambda off=off, size=size, f=self._f: _pread(f, off, size), size, (self._f, off), path=a.path, env=a.env,
                backend=a.backend, spec=a.spec, source=a.source, depends_on=a.depends_on, role=a.role,
                resource=a.resource, file=a.file, sha=sha_of(a))  # hashed while in memory, not read back


def _pread(f: Any, off: int, size: int) -> bytes:
    data = os.pread(f.fileno(), size, off)
    if len(data) != size:
        raise OSError(f"{f.name}: short read")
    return data


def _compile_repo(resolved: Resolved, envs: list[str] | None = None, cache_dir: Path | None = None,
                  emitted: EmitCache | None = None) -> Build:
    build = Build()
    emitted = emitted if emitted is not None else EmitCache(cache_dir)
    spool = Spool(cache_dir) if cache_dir is not None else None
    for env in sorted(envs or resolved.envs):
        compile_env(resolved, env, build, cache_dir, emitted)
        if spool is not None:
            spool.spill(build)
    specs = {}
    for sp in sorted(resolved.repo.specs, key=lambda s: s.key):
        key = "Project" if sp.kind == "Project" else sp.key
        specs[key] = emitted.spec_entry(key, sp.file, sp.doc.index) or {
            "file": sp.file, "document": sp.doc.index, "digest": spec_digest(sp.doc.data)}
    build.specs = specs
    return build


def cached_build(path: str | Path = ".", envs: Iterable[str] | None = None) -> tuple[Path, Build]:
    """(root, Build) for the repo at `path`, through the fast path when nothing changed and a
    full analyze/compile (which refreshes the cache) otherwise. Raises SpecError when the
    specs have errors."""
    envs = sorted(set(envs)) if envs else None
    fast = cache.fast_compile(path, envs)
    if fast is not None and all(e in fast.cached.envs for e in envs or ()):
        index = fast.cached.build_index()
        if index is not None:
            return fast.root, Build.from_record(index, fast.cached.blob)
    resolved = analyze(path, parse_memo=True, records=records_of)  # as `specops compile` checks
    if resolved.diagnostics.has_errors:
        raise SpecError(resolved.diagnostics)
    root = resolved.repo.root
    build = compile_repo(resolved, envs, cache_dir=cache.cache_dir_of(root))
    if build.diagnostics.has_errors:
        raise SpecError(build.diagnostics)
    return root, build


def noop_compile(path: str | Path = ".", out: str | Path | None = None,
                 envs: Iterable[str] | None = None) -> tuple[int, int]:
    """`specops compile PATH --out OUT` in-process: returns (written, removed). Used by the
    benchmark for the no-op recompile (every input unchanged since the last compile)."""
    root, build = cached_build(path, envs)
    return write_build(build.lazy_files(), Path(out) if out else root / "build", cache.tree_record(root), build.shas())


def live_check_serving(build: Build) -> list[Diagnostic]:
    """Parse every emitted serve config with vLLM's own parser (one vLLM import for all)."""
    configs = {p: a for p, a in build.artifacts.items() if a.backend == "vllm"}
    if not configs:
        return []
    out: list[Diagnostic] = []
    with tempfile.TemporaryDirectory() as d:
        paths = {}
        for i, (p, a) in enumerate(sorted(configs.items())):
            f = Path(d) / f"{i}.yaml"
            f.write_bytes(a.data)
            paths[str(f)] = a
        try:
            results = vllm.live_check_many(list(paths))
        except vllm.LiveCheckUnavailable as e:
            return [Diagnostic("error", "vllm-flag", f"--vllm-live: {e}")]
        for f, problems in sorted(results.items()):
            a = paths[f]
            for prob in problems:
                out.append(Diagnostic(prob.severity, prob.code, f"vLLM's parser on {a.path}: {prob.message}",
                                      a.source.get("file")))
    return out
