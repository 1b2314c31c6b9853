"""ZenML backend: an IR pipeline -> a ZenML pipeline module plus its run configuration.

Emits, per pipeline (FORMAT):

* ``pipeline.py`` — a ZenML (>= 0.92, checked on 0.98) pipeline module rendered from
  ``templates/zenml/pipeline.py.j2``. It is wiring only: one call per IR step into the fixed
  step set ``specops.backends.zenml_steps`` (one ZenML ``@step`` per step kind, each calling
  ``specops.runtime.run_step``; steps pass their output directories to each other as
  ``pathlib.Path`` artifacts, which ZenML's PathMaterializer stores in the artifact store).
  The only values in it are identifiers derived from step names and ``repr()`` literals, so
  a spec value can never become code.
* ``run.yaml`` — a ``zenml.config.pipeline_run_configuration.PipelineRunConfiguration``:
  cache policy, a run-name template (``{date}``/``{time}`` are filled by ZenML at run time,
  so the file holds no timestamp), the pipeline parameters, and per step its parameters
  (``step_name``, ``params``, ``input_names``), ``ResourceSettings`` and, on non-local
  targets, the Docker parent image. ZenML silently ignores unknown keys, so
  :func:`validate_run_config` checks every key against ZenML's own pydantic models.

ZenML is never imported by ``check``/``emit`` (they must stay fast); only
``validate_run_config`` and the runner (``specops.backends.zenml_run``, which this module does
not import: compile has no use for it or its subprocess) import it.
"""

from __future__ import annotations

import json
import keyword
import math
import re
from fractions import Fraction
from typing import Any, Iterable

from specops.backends.yaml_emit import dump
from specops.backends.zenml_validate import validate
from specops.diagnostics import Diagnostic, Pos
from specops.ir import Pipeline, Source, Step

NAME = "zenml"
FORMAT = "ZenML pipeline module (pipeline.py) + PipelineRunConfiguration YAML (run.yaml), ZenML >= 0.92 (checked on 0.98)"
RESOURCE_TYPE = "zenml_pipeline"
RUNS_ON_APPLY = True  # apply runs the pipeline on the target and records the gate verdicts it reached
PROVIDER = "specops.backends.zenml_provider"

# Step kinds with one fixed ZenML step each in specops.backends.zenml_steps.
STEP_KINDS = ("data_check", "train", "finetune", "evaluate", "gate", "register", "deploy", "command", "predict",
              "fetch", "monitor")
# Steps with side effects outside ZenML's artifact store (a registry write, a rollout, an
# opaque user command) must run every time; everything else is a pure function of its
# parameters (datasets are pinned by version) and inputs, so ZenML's cache is sound.
_UNCACHED_KINDS = frozenset({"register", "deploy", "command", "predict", "monitor"})

_IDENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


# ---- names -------------------------------------------------------------------------------


def py_ident(name: str) -> str:
    """A Python identifier for a validated (DNS-1123 style) name: 'check-data' -> 'check_data'."""
    ident = re.sub(r"[^0-9A-Za-z_]", "_", name)
    if not ident or ident[0].isdigit():
        ident = "s_" + ident
    if keyword.iskeyword(ident) or keyword.issoftkeyword(ident):
        ident += "_"
    return ident


def zenml_pipeline_name(pipeline: Pipeline) -> str:
    """The ZenML pipeline name: one per model and environment, so runs of dev and prod that
    share a store (the embedded local target) never mix."""
    return f"{pipeline.name}-{pipeline.env}"


def step_ids(pipeline: Pipeline) -> dict[str, str]:
    """IR step name -> ZenML step invocation id (a Python identifier); raises on a clash."""
    out: dict[str, str] = {}
    seen: dict[str, str] = {}
    for s in pipeline.steps:
        ident = py_ident(s.name)
        if ident in seen:
            raise ValueError(f"steps {seen[ident]!r} and {s.name!r} map to one ZenML step id {ident!r}")
        seen[ident] = s.name
        out[s.name] = ident
    return out


def _is_local(pipeline: Pipeline) -> bool:
    # The embedded default: ZenML's default stack, local orchestrator, steps in-process.
    return pipeline.target.provider == "local"


def unused_target_fields(target: Any) -> dict[str, str]:
    """Target fields (snake_case attribute names) ZenML cannot deliver for `target`, and why;
    specops.checks reports each one that is set as a warning at its line."""
    out = {"credentials": "the ZenML provider runs the pipeline on this machine's ZenML store; it sends no "
                          "credential"}
    if target.provider == "local":
        out["image_registry"] = "ZenML's local orchestrator runs the steps in this process, in no image"
        out["project"] = ("ZenML's local orchestrator runs the steps in this process: Google's clients read the "
                          "project from your own environment (GOOGLE_CLOUD_PROJECT)")
    return out


def can_schedule(pipeline: Pipeline) -> bool:
    """Whether this pipeline's orchestrator runs schedules (the local one refuses them); where it
    cannot, a monitor's schedule goes to the host's scheduler instead (build/compile.py)."""
    return not _is_local(pipeline)


# ---- Kubernetes quantities -> ZenML ResourceSettings -------------------------------------

_QTY = re.compile(r"^([0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE]([+-]?[0-9]+)|(Ki|Mi|Gi|Ti|Pi|Ei|m|k|K|M|G|T|P|E))?$")
_SUFFIX = {
    None: Fraction(1), "m": Fraction(1, 1000), "k": Fraction(10**3), "K": Fraction(10**3),
    "M": Fraction(10**6), "G": Fraction(10**9), "T": Fraction(10**12), "P": Fraction(10**15),
    "E": Fraction(10**18), "Ki": Fraction(2**10), "Mi": Fraction(2**20), "Gi": Fraction(2**30),
    "Ti": Fraction(2**40), "Pi": Fraction(2**50), "Ei": Fraction(2**60),
}
# ZenML's memory regex allows an integer and one of these units (no fractions, no EB).
_BINARY_UNITS = (("PiB", 2**50), ("TiB", 2**40), ("GiB", 2**30), ("MiB", 2**20), ("KiB", 2**10))
_DECIMAL_UNITS = (("PB", 10**15), ("TB", 10**12), ("GB", 10**9), ("MB", 10**6), ("KB", 10**3))


def _quantity(q: str) -> tuple[Fraction, str | None] | None:
    m = _QTY.match(str(q).strip())
    if not m:
        return None
    value = Fraction(m.group(1))
    if m.group(2) is not None:
        value *= Fraction(10) ** int(m.group(2))
    return value * _SUFFIX[m.group(3)], m.group(3)


def cpu_count(q: str) -> int | float | None:
    """'2' -> 2, '500m' -> 0.5; None when it is not a positive Kubernetes CPU quantity."""
    parsed = _quantity(q)
    if parsed is None or parsed[0] <= 0:
        return None
    v = parsed[0]
    return int(v) if v.denominator == 1 else float(v)


def zenml_memory(q: str) -> str | None:
    """A Kubernetes memory quantity as ZenML's '<int><unit>': '4Gi' -> '4GiB', '1.5Gi' ->
    '1536MiB', '8G' -> '8GB'; None when it is not a whole, positive number of bytes."""
    parsed = _quantity(q)
    if parsed is None or parsed[0] <= 0 or parsed[0].denominator != 1:
        return None
    n, suffix = int(parsed[0]), parsed[1]
    families = (_BINARY_UNITS, _DECIMAL_UNITS) if suffix and suffix.endswith("i") else (_DECIMAL_UNITS, _BINARY_UNITS)
    for family in families:
        for unit, size in family:
            if n % size == 0:
                return f"{n // size}{unit}"
    return f"{n}B"


# ---- check --------------------------------------------------------------------------------


def _diag(severity: str, code: str, message: str, src: Source | None, notes: Iterable[str] = ()) -> Diagnostic:
    return Diagnostic(severity, code, message, src.file if src else None,  # type: ignore[arg-type]
                      Pos(src.line, src.col) if src else None, tuple(notes))


def check(pipeline: Pipeline) -> list[Diagnostic]:
    """What ZenML (on this pipeline's target) cannot run, at the spec positions."""
    out: list[Diagnostic] = []
    target = pipeline.target
    local = _is_local(pipeline)
    if pipeline.schedule is not None and local:
        out.append(_diag(
            "error", "unsupported",
            f"target '{target.name}' (zenml local orchestrator) cannot schedule; remove `schedule` "
            "for this environment or use a target whose orchestrator schedules",
            pipeline.schedule.source or pipeline.source,
            ("ZenML's local stack refuses scheduled runs: 'Stack default does not support scheduling'",)))
    idents: dict[str, str] = {}
    names = {s.name for s in pipeline.steps}
    for s in pipeline.steps:
        src = s.source or pipeline.source
        if s.kind not in STEP_KINDS:
            out.append(_diag("error", "unsupported", f"step '{s.name}': ZenML backend has no step for kind {s.kind!r}", src))
        ident = py_ident(s.name)
        if ident in idents:
            out.append(_diag("error", "value", f"steps '{idents[ident]}' and '{s.name}' map to one ZenML step id '{ident}'", src))
        idents.setdefault(ident, s.name)
        for input_name, upstream in sorted(s.inputs.items()):
            if upstream not in names:
                out.append(_diag("error", "unresolved-ref", f"step '{s.name}': input '{input_name}' names no step '{upstream}'", src))
        if s.kind == "command" and not s.command:
            out.append(_diag("error", "missing-field", f"step '{s.name}' is a command step without a command", src))
        r = s.resources
        if r.nodes > 1:
            out.append(_diag(
                "error", "unsupported",
                f"step '{s.name}' spans {r.nodes} nodes, but ZenML runs a step on one machine and specops"
                " configures no step operator for it; use a SageMaker or KFP target, or one node with several"
                " accelerators (torchrun on one machine)", src))
        if r.cpu is not None and cpu_count(r.cpu) is None:
            out.append(_diag("error", "value", f"step '{s.name}': cpu {r.cpu!r} is not a positive CPU quantity (e.g. '2', '500m')", src))
        if r.memory is not None and zenml_memory(r.memory) is None:
            out.append(_diag("error", "value", f"step '{s.name}': memory {r.memory!r} is not a whole number of bytes (e.g. '8Gi', '512Mi')", src))
        if local and (r.accelerator or r.accelerator_count):
            gpu = f"{r.accelerator_count or 1} x {r.accelerator or 'GPU'}"
            out.append(_diag(
                "warning", "unsupported",
                f"step '{s.name}' asks for {gpu}, but target '{target.name}' (zenml local orchestrator) "
                "runs steps in-process on this machine and ignores accelerator requests", src))
    return out


# ---- emit ---------------------------------------------------------------------------------


def _json_safe(value: Any, where: str) -> Any:
    """Round-trip through JSON: the run config and the module hold only JSON data."""
    try:
        return _plain_copy(value)
    except _NotPlain:
        pass
    try:
        return json.loads(json.dumps(value, sort_keys=True, allow_nan=False))
    except (TypeError, ValueError) as e:
        raise ValueError(f"{where}: not JSON data ({e})") from None


class _NotPlain(Exception):
    pass


def _plain_copy(value: Any) -> Any:
    """What the JSON round trip gives for plain data (str keys; str, int, float, bool, None,
    list, tuple, dict values; finite floats), copied in Python at half its cost (2,288 step
    params per 1k-spec compile). Anything else raises _NotPlain and takes the round trip."""
    t = type(value)
    if t is str or t is int or t is bool or value is None:
        return value
    if t is float:
        if math.isfinite(value):
            return value
        raise _NotPlain
    if t is dict:
        for k in value:
            if type(k) is not str:
                raise _NotPlain
        return {k: _plain_copy(value[k]) for k in sorted(value)}  # json's sort_keys order
    if t is list or t is tuple:
        return [_plain_copy(v) for v in value]
    raise _NotPlain


def _resources(step: Step) -> dict[str, Any]:
    r = step.resources
    out: dict[str, Any] = {}
    if r.cpu is not None and (cpu := cpu_count(r.cpu)) is not None:
        out["cpu_count"] = cpu
    if r.memory is not None and (mem := zenml_memory(r.memory)) is not None:
        out["memory"] = mem
    if r.accelerator_count:
        out["gpu_count"] = r.accelerator_count
    return out


def run_config(pipeline: Pipeline) -> dict[str, Any]:
    """The run configuration as data (PipelineRunConfiguration field names)."""
    ids = step_ids(pipeline)
    local = _is_local(pipeline)
    steps: dict[str, Any] = {}
    for s in pipeline.steps:
        if s.kind not in STEP_KINDS:
            raise ValueError(f"step {s.name!r}: no ZenML step for kind {s.kind!r}")
        input_names = sorted(s.inputs)
        parameters: dict[str, Any] = {
            "step_name": s.name,
            "params": _json_safe(s.params, f"step {s.name!r} params"),
            "input_names": input_names,
        }
        if s.kind == "command":
            parameters["command"] = list(s.command or ())
        conf: dict[str, Any] = {"parameters": parameters}
        if s.kind in _UNCACHED_KINDS:
            conf["enable_cache"] = False
        settings: dict[str, Any] = {}
        if res := _resources(s):
            settings["resources"] = res
        if not local and s.image:
            # Containerised orchestrators build the step image on top of the runtime image.
            settings["docker"] = {"parent_image": s.image}
            if pipeline.target.project:
                # The project Google's client libraries use in the step (as kfp_trainjob.project_env).
                settings["docker"]["environment"] = {"GOOGLE_CLOUD_PROJECT": pipeline.target.project}
        if settings:
            conf["settings"] = settings
        extra = {k: v for k, v in (("kind", s.kind), ("image", s.image or None),
                                   ("accelerator", s.resources.accelerator),
                                   ("instance_type", s.resources.instance_type)) if v}
        conf["extra"] = {"specops": extra}
        steps[ids[s.name]] = conf
    doc: dict[str, Any] = {
        "enable_cache": True,
        # ZenML's default, pinned: independent steps (e.g. a second gate) still run after a
        # failure, so one run reports every gate's verdict; dependants of the failure are skipped.
        "execution_mode": "continue_on_failure",
        # ZenML fills {date} and {time} when the run starts; run names must be unique.
        "run_name": zenml_pipeline_name(pipeline) + "-{date}-{time}",
        "parameters": {"pipeline_parameters": _json_safe(pipeline.parameters, "pipeline parameters")},
        "tags": ["specops"],
        "extra": {"specops": {
            "env": pipeline.env, "model": pipeline.model, "target": pipeline.target.name,
            "artifact_root": pipeline.artifact_root, "labels": dict(pipeline.labels),
        }},
        "steps": steps,
    }
    if pipeline.schedule is not None:
        doc["schedule"] = {"cron_expression": pipeline.schedule.cron}
    return doc


_ENV = None
_TEMPLATE = None


def _ident_filter(value: Any) -> str:
    # Defence in depth: the template may only ever paste identifiers as bare names.
    if not isinstance(value, str) or not _IDENT.match(value) or keyword.iskeyword(value):
        raise ValueError(f"not a Python identifier: {value!r}")
    return value


def _pyrepr(value: Any) -> str:
    """A Python literal for JSON-safe data (str/int/float/bool/None/list/dict)."""
    return repr(_json_safe(value, "template value"))


def _template():
    global _ENV, _TEMPLATE
    if _TEMPLATE is None:
        from importlib.resources import files

        from jinja2 import StrictUndefined
        from jinja2.sandbox import SandboxedEnvironment

        text = files("specops.templates").joinpath("zenml", "pipeline.py.j2").read_text(encoding="utf-8")
        _ENV = SandboxedEnvironment(autoescape=False, keep_trailing_newline=True, trim_blocks=False,
                                    lstrip_blocks=False, undefined=StrictUndefined)
        _ENV.filters["pyrepr"] = _pyrepr
        _ENV.filters["ident"] = _ident_filter
        _TEMPLATE = _ENV.from_string(text)
    return _TEMPLATE


def _upstream(ids: dict[str, str], step: Step, input_name: str) -> str:
    try:
        return ids[step.inputs[input_name]]
    except KeyError:
        raise ValueError(f"step {step.name!r}: input {input_name!r} names no step "
                         f"{step.inputs[input_name]!r}") from None


def pipeline_module(pipeline: Pipeline) -> str:
    """The generated pipeline module's source text."""
    ids = step_ids(pipeline)
    steps = []
    for s in pipeline.steps:
        if s.kind not in STEP_KINDS:
            raise ValueError(f"step {s.name!r}: no ZenML step for kind {s.kind!r}")
        steps.append({
            "var": ids[s.name], "id": ids[s.name], "kind": s.kind,
            # Same order as `input_names` in run.yaml: sorted by input name.
            "upstream": [_upstream(ids, s, n) for n in sorted(s.inputs)],
        })
    return _template().render(
        zenml_name=zenml_pipeline_name(pipeline),
        func=py_ident(pipeline.name) + "_pipeline",
        steps=steps,
    )


def _yaml_dump(doc: dict[str, Any]) -> bytes:
    """Serialise JSON data as block YAML, keys sorted, on libyaml's C emitter (yaml_emit)."""

    return dump(doc)


_HEADER = (b"# ZenML run configuration generated by specops "
           b"(zenml.config.pipeline_run_configuration.PipelineRunConfiguration).\n"
           b"# Use with pipeline.py beside it: PIPELINE.with_options(config_path='run.yaml')().\n")


def emit(pipeline: Pipeline) -> dict[str, bytes]:
    """{"pipeline.py", "run.yaml"}; byte-identical for identical input."""
    return {
        "pipeline.py": pipeline_module(pipeline).encode("utf-8"),
        "run.yaml": _HEADER + _yaml_dump(run_config(pipeline)),
    }


# ---- strict run-config validation ---------------------------------------------------------


def validate_run_config(doc: Any, *, step_ids: Iterable[str] | None = None) -> list[str]:
    """Every problem in a run configuration, as 'path: message' lines (empty = valid).

    ZenML's models ignore unknown keys (`extra='ignore'`), so a misspelled `enable_cach`
    would be dropped without a word; this walks the document against the pydantic fields of
    PipelineRunConfiguration (recursively, through settings by key) and then lets pydantic
    validate the values. `step_ids`, when given, are the pipeline's step invocation ids.
    Imports zenml (about 2 s the first time).
    """

    return validate(doc, step_ids=step_ids)
