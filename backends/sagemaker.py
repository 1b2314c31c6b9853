"""SageMaker Pipelines backend: IR pipeline -> pipeline definition JSON (Version 2020-12-01).

Emitted files (relative to build/<env>/sagemaker/<pipeline>/ or wherever the CLI puts them):

- `definition.json`: the pipeline definition, built as plain dicts and serialised with
  sorted keys (no SDK at emit time: ~600 pipelines must emit in well under a second).
- `params/<step>.json`: each runtime step's params, as the step runtime receives them. The
  definition reads them from `<artifact_root>/sagemaker/params/<step>-<sha256[:16]>.json`
  (content-addressed, so a params change is a definition change); `uploads()` lists what
  the provider puts there before `upsert`. Params never travel as shell or argument text.
- `schedule.json` when the pipeline has a schedule: an EventBridge Scheduler
  `CreateSchedule` request (SageMaker Pipelines has no cron of its own in the definition;
  the v3 SDK's `PipelineSchedule` uses EventBridge Scheduler the same way). Unix cron is
  converted to EventBridge's six-field form; what it cannot express is a check() error.

Step shapes, kept inside the official schema (see `sagemaker_schema`):

- data_check / evaluate / deploy / command / monitor -> Processing step running
  `python -m specops.runtime <kind> --params-json F --input name=DIR ... --output-dir DIR
  --repo-root DIR` (exec form, no shell); a user `command` is exec'd as given.
- train / finetune -> Training step. The schema has no ContainerEntrypoint for training, so
  the image's own entrypoint runs and must be `python -m specops.backends.sagemaker_entry`
  (it reads the `specops.*` hyperparameters and execs the same runtime CLI).
  `OutputDataConfig.CompressionType: NONE` keeps the model a directory downstream.
- the step that feeds a gate's `metrics` input gets a PropertyFile `metrics` (metrics.json,
  a flat {metric: number} mapping at the root of its output).
- gate -> Condition step: one BinaryCondition per check on `Std:JsonGet` of that property
  file against the bound (baseline-relative bounds are computed here from the IR's
  baseline), with a Fail step carrying a clear ErrorMessage in ElseSteps. Everything
  downstream of the gates sits in IfSteps (one gate) or in IfSteps of a `gates-passed`
  Condition step that ANDs all gates' checks (several gates), so nothing is registered
  unless every gate held.
- register -> RegisterModel step (ModelPackageGroupName = registry; the service's default
  approval status, PendingManualApproval, applies).

Known limits of staying inside the schema: no `Std:Join`, so processing outputs go to fixed
S3 prefixes per step (a later execution overwrites an earlier one's outputs).
"""

from __future__ import annotations

import hashlib
import json
import re
from typing import Any

from specops.backends import jsonfmt
from specops.backends.sagemaker_schedule import eventbridge_cron
from specops.backends.sagemaker_schedule import schedule_request as _schedule_request
from specops.diagnostics import Diagnostic, Pos
from specops.ir import Pipeline, Source, Step
from specops.runtime.placeholders import substitute
from specops.runtime.thresholds import Threshold

NAME = "sagemaker"
FORMAT = "SageMaker Pipelines definition JSON, Version 2020-12-01"
RESOURCE_TYPE = "sagemaker_pipeline"
RUNS_ON_APPLY = False  # apply upserts the pipeline definition; executions happen on AWS, later
PROVIDER = "specops.backends.sagemaker_provider"
DEFINITION_VERSION = "2020-12-01"
CONTENT_HASH_TAG = "specops:content-hash"

PROCESSING_KINDS = frozenset({"data_check", "evaluate", "deploy", "command", "predict", "fetch", "monitor"})
TRAINING_KINDS = frozenset({"train", "finetune"})
PROPERTY_FILE = "metrics"
METRICS_FILE = "metrics.json"
GATES_PASSED = "gates-passed"

DEFAULT_PROCESSING_INSTANCE = "ml.m5.large"
DEFAULT_TRAINING_INSTANCE = "ml.m5.xlarge"
RUNTIME_ENTRYPOINT = ("python", "-m", "specops.runtime")

# Processing containers see inputs under /opt/ml/processing; training channels under
# /opt/ml/input/data/<channel>; a training job's /opt/ml/model is its model artifact.
_PROC = "/opt/ml/processing"
_TRAIN_DATA = "/opt/ml/input/data"

# (GPU type, count) -> the SageMaker instance type carrying exactly that many of them.
GPU_INSTANCES: dict[tuple[str, int], str] = {
    ("T4", 1): "ml.g4dn.xlarge", ("T4", 4): "ml.g4dn.12xlarge",
    ("A10G", 1): "ml.g5.xlarge", ("A10G", 4): "ml.g5.12xlarge", ("A10G", 8): "ml.g5.48xlarge",
    ("L4", 1): "ml.g6.xlarge", ("L4", 4): "ml.g6.12xlarge", ("L4", 8): "ml.g6.48xlarge",
    ("L40S", 1): "ml.g6e.xlarge", ("L40S", 4): "ml.g6e.12xlarge", ("L40S", 8): "ml.g6e.48xlarge",
    ("V100", 1): "ml.p3.2xlarge", ("V100", 4): "ml.p3.8xlarge", ("V100", 8): "ml.p3.16xlarge",
    ("A100", 8): "ml.p4d.24xlarge", ("A100-80GB", 8): "ml.p4de.24xlarge",
    ("H100", 8): "ml.p5.48xlarge", ("H200", 8): "ml.p5en.48xlarge",
}
# General-purpose CPU instances, smallest first: (type, vCPU, GiB).
CPU_INSTANCES = (
    ("ml.m5.large", 2, 8), ("ml.m5.xlarge", 4, 16), ("ml.m5.2xlarge", 8, 32),
    ("ml.m5.4xlarge", 16, 64), ("ml.m5.12xlarge", 48, 192), ("ml.m5.24xlarge", 96, 384),
)

_CONDITION_TYPES = {">=": "GreaterThanOrEqualTo", ">": "GreaterThan", "<=": "LessThanOrEqualTo",
                    "<": "LessThan", "==": "Equals"}
# A JsonGet path the service resolves without quoting: a plain identifier.
_PLAIN_PATH = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_STEP_NAME = re.compile(r"^[A-Za-z0-9\-_]{1,64}$")
_INPUT_NAME = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.\-]{0,50}$")
_MEMORY = re.compile(r"^([0-9.]+)([KMGTPE]i?)?$")
_MEM_UNITS = {None: 1, "K": 1e3, "M": 1e6, "G": 1e9, "T": 1e12, "P": 1e15, "E": 1e18,
              "Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "Ti": 2**40, "Pi": 2**50, "Ei": 2**60}


# ---- naming ------------------------------------------------------------------------------


def pipeline_name(pipeline: Pipeline) -> str:
    """The SageMaker pipeline name: `<name>-<env>` (pattern `[a-zA-Z0-9](-*[a-zA-Z0-9]){0,255}`)."""
    raw = re.sub(r"[^A-Za-z0-9-]+", "-", f"{pipeline.name}-{pipeline.env}").strip("-")
    return raw[:256].rstrip("-")


def _fit(name: str) -> str:
    """A step name within the schema's 64 characters, kept unique by a hash suffix."""
    if len(name) <= 64:
        return name
    return f"{name[:55]}-{hashlib.sha256(name.encode()).hexdigest()[:8]}"


def _root(pipeline: Pipeline) -> str:
    return pipeline.artifact_root.rstrip("/")


def _dump(doc: Any) -> bytes:
    """Exactly `json.dumps(doc, sort_keys=True, indent=2) + "\\n"` (see jsonfmt: json's
    indenting encoder was 90 % of emit time)."""
    return (jsonfmt.pretty(doc) + "\n").encode("ascii")


def _params_bytes(step: Step) -> bytes:
    return _dump(step.params)


def _params_key(step: Step, data: bytes) -> str:
    return f"{step.name}-{hashlib.sha256(data).hexdigest()[:16]}.json"


# ---- instance types ----------------------------------------------------------------------


def _cpu_count(cpu: str | None) -> float:
    if cpu is None:
        return 0.0
    s = str(cpu)
    return float(s[:-1]) / 1000 if s.endswith("m") else float(s)


def _memory_gib(memory: str | None) -> float:
    if not memory:
        return 0.0
    m = _MEMORY.match(memory.strip())
    if not m:
        raise ValueError(memory)
    return float(m.group(1)) * _MEM_UNITS[m.group(2)] / 2**30


def instance_type(step: Step) -> str | None:
    """The instance a step needs, or None when the pipeline parameter's default will do.

    An explicit `resources.instance_type` wins; a GPU maps through `GPU_INSTANCES`; cpu and
    memory pick the smallest general-purpose instance that holds them. Raises ValueError
    for a GPU with no SageMaker instance (check() reports it at the spec).
    """
    r = step.resources
    if r.instance_type:
        return r.instance_type
    if r.accelerator:
        count = max(1, r.accelerator_count)
        found = GPU_INSTANCES.get((r.accelerator, count))
        if found is None:
            raise ValueError(f"{r.accelerator} x{count}")
        return found
    if r.cpu is None and r.memory is None:
        return None
    try:
        cpu, mem = _cpu_count(r.cpu), _memory_gib(r.memory)
    except ValueError:
        raise ValueError(f"cpu {r.cpu}, memory {r.memory}") from None
    for name, vcpu, gib in CPU_INSTANCES:
        if vcpu >= cpu and gib >= mem:
            return name
    raise ValueError(f"cpu {r.cpu}, memory {r.memory}")


# ---- check -------------------------------------------------------------------------------


def _diag(severity: str, code: str, message: str, source: Source | None,
          notes: tuple[str, ...] = ()) -> Diagnostic:
    if source is None:
        return Diagnostic(severity, code, message, None, None, notes)  # type: ignore[arg-type]
    return Diagnostic(severity, code, message, source.file, Pos(source.line, source.col), notes)  # type: ignore[arg-type]


def check(pipeline: Pipeline) -> list[Diagnostic]:
    """What this pipeline needs that SageMaker Pipelines cannot express, at the spec's position."""
    out: list[Diagnostic] = []
    target = pipeline.target
    tsrc = target.source or pipeline.source
    if not target.role_arn:
        out.append(_diag("error", "missing-field",
                         f"target '{target.name}' has no role_arn: SageMaker runs every step as an "
                         "execution role; set the target's roleArn", tsrc))
    if not pipeline.artifact_root.startswith("s3://"):
        out.append(_diag("error", "unsupported",
                         f"SageMaker reads and writes artifacts in S3, but the artifact root is "
                         f"'{pipeline.artifact_root}'; set the target's artifactStore to an s3:// URI", tsrc))
    extra = sorted(k for k in pipeline.parameters if k != "repo_root")
    if extra:
        out.append(_diag("warning", "unsupported",
                         f"SageMaker backend does not forward pipeline parameter(s) {', '.join(extra)}; "
                         "steps receive their params from the spec", pipeline.source))
    names = {s.name for s in pipeline.steps}
    gate_names = {s.name for s in pipeline.steps if s.kind == "gate"}
    if len(gate_names) > 1 and GATES_PASSED in names:
        out.append(_diag("error", "unsupported",
                         f"step name '{GATES_PASSED}' is reserved by the SageMaker backend", pipeline.source))
    for step in pipeline.steps:
        out.extend(_check_step(pipeline, step))
    if pipeline.schedule is not None:
        try:
            eventbridge_cron(pipeline.schedule.cron)
        except ValueError as e:
            out.append(_diag("error", "unsupported",
                             f"schedule '{pipeline.schedule.cron}' cannot run on EventBridge Scheduler: {e}",
                             pipeline.schedule.source or pipeline.source))
    return sorted(out, key=Diagnostic.sort_key)


def unused_target_fields(target: Any) -> dict[str, str]:
    """Target fields (snake_case attribute names) SageMaker cannot deliver, and why; specops.checks
    reports each one that is set as a warning at its line. (`imageRegistry` is delivered: step
    images are pulled from it, see ir.lower.step_image.)"""
    return {
        "project": "a GCP project means nothing to SageMaker: pipelines run in the AWS account of `roleArn`",
        "credentials": "the SageMaker provider signs its calls with the ambient AWS credentials (a profile, an "
                       "OIDC role) and runs the steps as `roleArn`; it sends no other credential",
    }


def _check_step(pipeline: Pipeline, step: Step) -> list[Diagnostic]:
    out: list[Diagnostic] = []
    src = step.source or pipeline.source
    if not _STEP_NAME.match(step.name):
        out.append(_diag("error", "unsupported",
                         f"step name '{step.name}' is not a SageMaker step name ([A-Za-z0-9-_], at most 64)", src))
    for name in step.inputs:
        if not _INPUT_NAME.match(name):
            out.append(_diag("error", "unsupported", f"step '{step.name}': input name '{name}' cannot be "
                             "a SageMaker channel name ([A-Za-z0-9_.-], at most 51)", src))
    if step.kind in PROCESSING_KINDS | TRAINING_KINDS and not step.image:
        out.append(_diag("error", "missing-field", f"step '{step.name}' has no image: SageMaker runs "
                         "every step in a container image; set the image or the target's imageRegistry", src))
    try:
        instance_type(step)
    except ValueError as e:
        r = step.resources
        if r.accelerator:
            offers = sorted(f"{t} ({n} x {g})" for (g, n), t in GPU_INSTANCES.items() if g == r.accelerator)
            notes = (f"SageMaker instances with {r.accelerator}: {', '.join(offers)}",) if offers else ()
            out.append(_diag("error", "unsupported",
                             f"step '{step.name}': no SageMaker instance type has exactly {e}; set "
                             "resources.instanceType (e.g. 'ml.g5.2xlarge')", src, notes))
        else:
            out.append(_diag("error", "unsupported",
                             f"step '{step.name}': no general-purpose SageMaker instance holds {e}; set "
                             "resources.instanceType", src))
    if step.command is not None:
        if len(step.command) > 100 or any(len(a) > 256 for a in step.command):
            out.append(_diag("error", "unsupported", f"step '{step.name}': SageMaker takes at most 100 "
                             "command items of at most 256 characters each", src))
        elif step.kind in TRAINING_KINDS and len(json.dumps(list(step.command))) > 2500:
            out.append(_diag("error", "unsupported", f"step '{step.name}': a training command travels as a "
                             "hyperparameter and must stay under 2500 characters as JSON", src))
    kinds = {s.name: s.kind for s in pipeline.steps}
    if step.kind in TRAINING_KINDS and any(kinds.get(u) == "register" for u in step.inputs.values()):
        out.append(_diag("error", "unsupported", f"step '{step.name}': a SageMaker training step cannot "
                         "receive a model package ARN from a register step", src))
    if step.kind == "gate":
        out.extend(_check_gate(pipeline, step, src))
    if (step.kind == "register" and step.inputs.get("model") not in {s.name for s in pipeline.steps}
            and not step.params.get("base_model")):
        out.append(_diag("error", "unsupported",
                         f"step '{step.name}': RegisterModel needs a 'model' input naming the training step", src))
    if step.kind not in PROCESSING_KINDS | TRAINING_KINDS | {"gate", "register"}:
        out.append(_diag("error", "unsupported", f"step kind '{step.kind}' has no SageMaker shape", src))
    return out


def _check_gate(pipeline: Pipeline, step: Step, src: Source | None) -> list[Diagnostic]:
    out: list[Diagnostic] = []
    upstream = step.inputs.get("metrics")
    kinds = {s.name: s.kind for s in pipeline.steps}
    if upstream not in kinds or kinds[upstream] not in PROCESSING_KINDS:
        out.append(_diag("error", "unsupported",
                         f"gate step '{step.name}' reads metrics from '{upstream}', which is not a "
                         "Processing step; only Processing steps carry SageMaker property files", src))
    for chk in step.params.get("metrics", []):
        metric = str(chk.get("metric"))
        if not _PLAIN_PATH.match(metric):
            out.append(_diag("error", "unsupported",
                             f"gate '{step.params.get('gate')}': metric name '{metric}' is not a plain "
                             "identifier, which a SageMaker JsonGet path needs ([A-Za-z_][A-Za-z0-9_]*)", src))
        if chk.get("op") not in _CONDITION_TYPES:
            out.append(_diag("error", "unsupported",
                             f"gate '{step.params.get('gate')}': operator '{chk.get('op')}' has no SageMaker "
                             "condition", src))
        elif chk.get("op") == "==":
            out.append(_diag("warning", "unsupported",
                             f"gate '{step.params.get('gate')}': SageMaker's Equals compares '{metric}' exactly "
                             "(the local runtime allows 1e-9)", src))
    return out


# ---- EventBridge schedule ----------------------------------------------------------------


def schedule_request(pipeline: Pipeline) -> dict[str, Any] | None:
    """The EventBridge Scheduler CreateSchedule request that starts the pipeline, or None."""
    name = pipeline_name(pipeline)
    return _schedule_request(pipeline, name, _fit(f"specops-{name}"))


# ---- emit --------------------------------------------------------------------------------


class _Builder:
    """Builds the definition dict; remembers which parameters the steps reference."""

    def __init__(self, pipeline: Pipeline):
        self.p = pipeline
        self.root = _root(pipeline)
        self.role = pipeline.target.role_arn or ""
        self.by_name = {s.name: s for s in pipeline.steps}
        self.used_params: set[str] = set()
        self.params_files: dict[str, tuple[str, bytes]] = {}  # step -> (object key, bytes)
        # Steps whose output feeds a gate's metrics: they carry the property file.
        self.metric_sources = {s.inputs.get("metrics") for s in pipeline.steps if s.kind == "gate"}

    def param(self, name: str) -> dict[str, str]:
        self.used_params.add(name)
        return {"Get": f"Parameters.{name}"}

    def output_ref(self, name: str) -> dict[str, str] | None:
        """A `Get` on the S3 location of an upstream step's output, or None (no S3 output)."""
        up = self.by_name.get(name)
        if up is None:
            return None
        if up.kind in TRAINING_KINDS:
            return {"Get": f"Steps.{_fit(up.name)}.ModelArtifacts.S3ModelArtifacts"}
        if up.kind in PROCESSING_KINDS:
            return {"Get": f"Steps.{_fit(up.name)}.ProcessingOutputConfig.Outputs['output'].S3Output.S3Uri"}
        return None

    def output_uri(self, name: str) -> str:
        return f"{self.root}/sagemaker/steps/{name}"

    def params_file(self, step: Step) -> str:
        data = _params_bytes(step)
        key = _params_key(step, data)
        self.params_files[step.name] = (key, data)
        return key

    def depends_on(self, step: Step, skip: set[str]) -> list[str]:
        return [_fit(n) for n in step.depends_on if n in self.by_name and n not in skip]

    # -- runtime argv shared by processing and training --

    def runtime_args(self, step: Step, kind: str, params_path: str, inputs: dict[str, str],
                     output_dir: str, repo_root: str) -> list[str]:
        args = [kind, "--params-json", params_path]
        for name in sorted(inputs):
            args += ["--input", f"{name}={inputs[name]}"]
        return args + ["--output-dir", output_dir, "--repo-root", repo_root]

    def env_for(self, step: Step, inputs: dict[str, str], params_path: str, output_dir: str,
                repo_root: str) -> dict[str, Any]:
        env: dict[str, Any] = {}
        if self.p.target.registry_uri:
            # Steps reach the MLflow registry through its standard variable (SageMaker's own
            # MlflowConfig fails the official definition schema).
            env["MLFLOW_TRACKING_URI"] = self.p.target.registry_uri
        for name, up in sorted(step.inputs.items()):
            upstream = self.by_name.get(up)
            if upstream is not None and upstream.kind == "register":
                # A registration has no files: the runtime gets the model package ARN.
                env[f"SPECOPS_INPUT_{_env_name(name)}"] = {"Get": f"Steps.{_fit(up)}.ModelPackageArn"}
        if step.command is not None:
            # A user command learns where things are from the environment (command-job style).
            sub = step.params.get("input_paths") or {}
            env.update({f"SPECOPS_INPUT_{_env_name(n)}": f"{d}/{sub[n]}" if n in sub else d
                        for n, d in sorted(inputs.items())})
            env.update({f"SPECOPS_OUTPUT_{_env_name(n)}": f"{output_dir}/{n}"
                        for n in sorted(step.params.get("outputs") or {})})
            env.update({"SPECOPS_PARAMS_JSON": params_path, "SPECOPS_OUTPUT_DIR": output_dir,
                        "SPECOPS_REPO_ROOT": repo_root})
        return env

    # -- step shapes --

    def processing(self, step: Step, skip: set[str]) -> dict[str, Any]:
        key = self.params_file(step)
        params_dir, repo_dir = f"{_PROC}/specops/params", f"{_PROC}/specops/repo"
        proc_inputs = [
            _proc_input("specops-params", f"{self.root}/sagemaker/params/{key}", params_dir),
            _proc_input("specops-repo", self.param("RepoUri"), repo_dir),
        ]
        local_inputs: dict[str, str] = {}
        for name, up in sorted(step.inputs.items()):
            ref = self.output_ref(up)
            if ref is None:
                continue
            local_inputs[name] = f"{_PROC}/input/{name}"
            proc_inputs.append(_proc_input(f"input-{name}", ref, local_inputs[name]))
        params_path, out_dir = f"{params_dir}/{key}", f"{_PROC}/output"
        outputs = dict(step.params.get("outputs") or {}) if step.command is not None else {}
        if step.command is not None:
            # ${{inputs.x}} / ${{outputs.y}} become the container's folders here, as the
            # runtime's command contract does it elsewhere (specops.runtime.command).
            sub = step.params.get("input_paths") or {}
            folders = {("inputs", n): f"{d}/{sub[n]}" if n in sub else d for n, d in local_inputs.items()}
            folders.update({("outputs", n): f"{out_dir}/{n}" for n in outputs})
            entry, args = [substitute(a, folders, step.name) for a in step.command], []
        else:
            entry = list(RUNTIME_ENTRYPOINT)
            args = self.runtime_args(step, step.kind, params_path, local_inputs, out_dir, repo_dir)
        app: dict[str, Any] = {"ImageUri": step.image, "ContainerEntrypoint": entry}
        if args:
            app["ContainerArguments"] = args
        itype = instance_type_or_none(step)
        arguments: dict[str, Any] = {
            "AppSpecification": app,
            "ProcessingInputs": proc_inputs,
            "ProcessingOutputConfig": {"Outputs": [{
                "OutputName": "output",
                "S3Output": {"LocalPath": out_dir, "S3Uri": self.output_uri(step.name),
                             "S3UploadMode": "EndOfJob"},
            }] + [{
                # An output another model's Dataset reads: also copied to where it is published.
                "OutputName": f"publish-{name}",
                "S3Output": {"LocalPath": f"{out_dir}/{name}", "S3Uri": uri, "S3UploadMode": "EndOfJob"},
            } for name, uri in sorted((step.params.get("publish") or {}).items())]},
            "ProcessingResources": {"ClusterConfig": {
                "InstanceCount": 1,
                "InstanceType": itype or self.param("ProcessingInstanceType"),
                "VolumeSizeInGB": 100 if step.resources.accelerator else 30,
            }},
            "RoleArn": self.role,
            "StoppingCondition": {"MaxRuntimeInSeconds": 86400},
        }
        env = self.env_for(step, local_inputs, params_path, out_dir, repo_dir)
        if env:
            arguments["Environment"] = env
        out = self.step_doc(step, "Processing", f"specops {step.kind} step '{step.name}'", arguments, skip)
        if step.name in self.metric_sources:
            out["PropertyFiles"] = [{"PropertyFileName": PROPERTY_FILE, "OutputName": "output",
                                     "FilePath": METRICS_FILE}]
        return out

    def step_doc(self, step: Step, type_: str, description: str, arguments: dict[str, Any],
                 skip: set[str]) -> dict[str, Any]:
        """A definition step: name, type, description, arguments, and DependsOn when any."""
        out: dict[str, Any] = {"Name": _fit(step.name), "Type": type_, "Description": description,
                               "Arguments": arguments}
        deps = self.depends_on(step, skip)
        if deps:
            out["DependsOn"] = deps
        return out

    def training(self, step: Step, skip: set[str]) -> dict[str, Any]:
        key = self.params_file(step)
        params_dir, repo_dir = f"{_TRAIN_DATA}/specops-params", f"{_TRAIN_DATA}/specops-repo"
        channels = [_channel("specops-params", f"{self.root}/sagemaker/params/{key}"),
                    _channel("specops-repo", self.param("RepoUri"))]
        local_inputs: dict[str, str] = {}
        for name, up in sorted(step.inputs.items()):
            ref = self.output_ref(up)
            if ref is None:
                continue
            local_inputs[name] = f"{_TRAIN_DATA}/input-{name}"
            channels.append(_channel(f"input-{name}", ref))
        params_path, out_dir = f"{params_dir}/{key}", "/opt/ml/model"
        # Read by specops.backends.sagemaker_entry, which execs the runtime CLI with them.
        hp: dict[str, Any] = {"specops.argv": json.dumps(
            self.runtime_args(step, step.kind, params_path, local_inputs, out_dir, repo_dir),
            separators=(",", ":"))}
        if step.command is not None:
            hp = {"specops.command": json.dumps(list(step.command), separators=(",", ":"))}
            env = self.env_for(step, local_inputs, params_path, out_dir, repo_dir)
            hp["specops.env"] = json.dumps(env, sort_keys=True, separators=(",", ":"))
        dist = step.params.get("distributed") if step.kind == "finetune" else None
        if dist:
            # sagemaker_entry starts torchrun on every instance (rank from resourceconfig.json).
            hp["specops.torchrun"] = json.dumps({"nproc_per_node": dist["nproc_per_node"]},
                                                separators=(",", ":"))
        itype = instance_type_or_none(step)
        gpu = bool(step.resources.accelerator)
        arguments = {
            "AlgorithmSpecification": {"TrainingImage": step.image, "TrainingInputMode": "File"},
            "HyperParameters": hp,
            "InputDataConfig": channels,
            "OutputDataConfig": {"S3OutputPath": self.output_uri(step.name), "CompressionType": "NONE"},
            "ResourceConfig": {"InstanceCount": step.resources.nodes,
                               "InstanceType": itype or self.param("TrainingInstanceType"),
                               "VolumeSizeInGB": 200 if gpu else 30},
            "RoleArn": self.role,
            "StoppingCondition": {"MaxRuntimeInSeconds": 86400 * (3 if gpu else 1)},
        }
        if self.p.target.registry_uri:
            arguments["Environment"] = {"MLFLOW_TRACKING_URI": self.p.target.registry_uri}
        return self.step_doc(step, "Training", f"specops {step.kind} step '{step.name}'", arguments, skip)

    def register(self, step: Step, skip: set[str]) -> dict[str, Any]:
        prm = step.params
        container: dict[str, Any] = {"Image": step.image}
        if "model" in step.inputs or not prm.get("base_model"):
            container["ModelDataUrl"] = self.output_ref(step.inputs.get("model", "")) or ""
        else:  # a model served as published: the package names its pinned base, no weights
            container["Environment"] = {"SPECOPS_BASE_MODEL": str(prm["base_model"]),
                                        "SPECOPS_BASE_REVISION": str(prm.get("revision") or "")}
        metrics_from = step.inputs.get("metrics")
        aliases = ",".join(prm.get("aliases") or []) or "none"
        # The schema's RegisterModel arguments have no ModelApprovalStatus (the service's
        # default, PendingManualApproval, is what we want) and no CustomerMetadataProperties:
        # the specops identity travels in the description.
        arguments: dict[str, Any] = {
            "ModelPackageGroupName": str(prm.get("registry") or self.p.model),
            "ModelPackageDescription": (
                f"specops model={prm.get('model') or self.p.model} version={prm.get('version', '')} "
                f"env={self.p.env} aliases={aliases}"),
            "InferenceSpecification": {
                "Containers": [container],
                "SupportedContentTypes": ["application/json"],
                "SupportedResponseMIMETypes": ["application/json"],
            },
        }
        if metrics_from in self.by_name and self.by_name[metrics_from].kind in PROCESSING_KINDS:
            arguments["ModelMetrics"] = {"ModelQuality": {"Statistics": {
                "ContentType": "application/json",
                "S3Uri": f"{self.output_uri(metrics_from)}/{METRICS_FILE}",
            }}}
        return self.step_doc(step, "RegisterModel", f"specops register step '{step.name}'", arguments, skip)

    def conditions(self, gate: Step) -> tuple[list[dict[str, Any]], list[str]]:
        """The gate's BinaryConditions and the human text of each check, for the message."""

        source = gate.inputs.get("metrics", "")
        baseline = gate.params.get("baseline") or {}
        conds: list[dict[str, Any]] = []
        texts: list[str] = []
        for chk in gate.params.get("metrics", []):
            metric = str(chk["metric"])
            t = Threshold.from_params(chk)
            base = baseline.get(metric)
            if t.relative and base is None:
                if gate.params.get("on_missing_baseline", "pass") == "pass":
                    texts.append(f"{metric} {t.raw} skipped (no baseline in {self.p.env})")
                    continue
                # No baseline and the policy says fail: a condition that never holds.
                conds.append({"Type": "Equals", "LeftValue": "baseline-missing", "RightValue": "baseline-present"})
                texts.append(f"{metric} {t.raw}: no baseline in {self.p.env}")
                continue
            bound = float(f"{t.bound(base):.12g}")  # 0.45 - 0.01 -> 0.44, not 0.44000000000000006
            conds.append({
                "Type": _CONDITION_TYPES[t.op],
                "LeftValue": {"Std:JsonGet": {
                    "PropertyFile": {"Get": f"Steps.{_fit(source)}.PropertyFiles.{PROPERTY_FILE}"},
                    "Path": metric,
                }},
                "RightValue": bound,
            })
            detail = f" ({t.raw}, baseline {base:g})" if t.relative else ""
            texts.append(f"{metric} {t.op} {bound:g}{detail}")
        if not conds:
            # Every check was skipped by policy: the gate holds (a literal true condition).
            conds.append({"Type": "Equals", "LeftValue": "no-checks", "RightValue": "no-checks"})
        return conds, texts

    def fail_step(self, gate: Step, texts: list[str]) -> dict[str, Any]:
        # The file only: a Source's line is computed lazily, by a second parse, which
        # emission must not trigger (only files with a diagnostic pay for positions).
        where = f" ({gate.source.file})" if gate.source else ""
        msg = (f"specops eval gate '{gate.params.get('gate', gate.name)}' failed in env "
               f"'{self.p.env}'{where}: requires {'; '.join(texts) or 'its checks'}")
        return {"Name": _fit(f"{gate.name}-failed"), "Type": "Fail",
                "Description": f"stop the pipeline: gate '{gate.name}' did not hold",
                "Arguments": {"ErrorMessage": msg[:1024]}}

    def build(self) -> dict[str, Any]:
        steps = self.p.steps
        gates = [s for s in steps if s.kind == "gate"]
        gate_names = {g.name for g in gates}
        # Everything that depends, transitively, on a gate runs only after the gates held.
        downstream: set[str] = set()
        for s in steps:  # topological order: upstreams are decided first
            if any(u in gate_names or u in downstream for u in s.depends_on):
                downstream.add(s.name)
        skip = gate_names  # DependsOn on a Condition step from its own branch would loop

        def shape(s: Step) -> dict[str, Any]:
            if s.kind in TRAINING_KINDS:
                return self.training(s, skip)
            if s.kind == "register":
                return self.register(s, skip)
            return self.processing(s, skip)

        top: list[dict[str, Any]] = []
        guarded = [shape(s) for s in steps if s.name in downstream and s.kind != "gate"]
        all_conds: list[dict[str, Any]] = []
        for s in steps:
            if s.kind == "gate":
                conds, texts = self.conditions(s)
                all_conds.extend(conds)
                cond_step: dict[str, Any] = {
                    "Name": _fit(s.name), "Type": "Condition",
                    "Description": f"specops eval gate '{s.params.get('gate', s.name)}'",
                    "Arguments": {"Conditions": conds,
                                  "IfSteps": guarded if len(gates) == 1 else [],
                                  "ElseSteps": [self.fail_step(s, texts)]},
                }
                deps = self.depends_on(s, gate_names)
                if deps:
                    cond_step["DependsOn"] = deps
                top.append(cond_step)
            elif s.name not in downstream:
                top.append(shape(s))
        if len(gates) > 1:
            top.append({
                "Name": GATES_PASSED, "Type": "Condition",
                "Description": "every eval gate held: " + ", ".join(sorted(gate_names)),
                "DependsOn": sorted(_fit(g) for g in gate_names),
                "Arguments": {"Conditions": all_conds, "IfSteps": guarded, "ElseSteps": []},
            })
        parameters = [
            {"Name": "ProcessingInstanceType", "Type": "String", "DefaultValue": DEFAULT_PROCESSING_INSTANCE},
            {"Name": "RepoUri", "Type": "String", "DefaultValue": f"{self.root}/repo/"},
            {"Name": "TrainingInstanceType", "Type": "String", "DefaultValue": DEFAULT_TRAINING_INSTANCE},
        ]
        return {
            "Version": DEFINITION_VERSION,
            "Metadata": {},
            "Parameters": [p for p in parameters if p["Name"] in self.used_params],
            "Steps": top,
        }


def instance_type_or_none(step: Step) -> str | None:
    """`instance_type(step)`, or None where check() has already reported that none fits."""
    try:
        return instance_type(step)
    except ValueError:
        return None


def _env_name(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9]", "_", name).upper()


def _proc_input(name: str, uri: Any, local: str) -> dict[str, Any]:
    return {"InputName": name, "S3Input": {
        "LocalPath": local, "S3Uri": uri, "S3DataType": "S3Prefix", "S3InputMode": "File",
        "S3DataDistributionType": "FullyReplicated"}}


def _channel(name: str, uri: Any) -> dict[str, Any]:
    return {"ChannelName": name, "DataSource": {"S3DataSource": {
        "S3Uri": uri, "S3DataType": "S3Prefix", "S3DataDistributionType": "FullyReplicated"}}}


def definition(pipeline: Pipeline) -> dict[str, Any]:
    """The pipeline definition as a dict (what `definition.json` holds)."""
    return _Builder(pipeline).build()


def emit(pipeline: Pipeline) -> dict[str, bytes]:
    """definition.json, params/<step>.json per runtime step, and schedule.json if scheduled."""
    b = _Builder(pipeline)
    files = {"definition.json": _dump(b.build())}
    for step, (_key, data) in sorted(b.params_files.items()):
        files[f"params/{step}.json"] = data
    sched = schedule_request(pipeline) if pipeline.schedule is not None else None
    if sched is not None:
        files["schedule.json"] = _dump(sched)
    return files


def uploads(pipeline: Pipeline) -> dict[str, bytes]:
    """S3 URI -> bytes the provider uploads before creating or updating the pipeline."""
    b = _Builder(pipeline)
    b.build()
    root = _root(pipeline)
    return {f"{root}/sagemaker/params/{key}": data for key, data in sorted(b.params_files.values())}


def default_tags(pipeline: Pipeline) -> dict[str, str]:
    """Tags for the live pipeline (upsert adds the content hash)."""
    tags = dict(sorted(pipeline.labels.items()))
    tags.update({"specops:model": pipeline.model, "specops:env": pipeline.env, "specops:managed-by": "specops"})
    return tags


# ---- live system -------------------------------------------------------------------------


def content_hash(definition_bytes: bytes) -> str:
    return hashlib.sha256(definition_bytes).hexdigest()


def _not_found(err: Exception) -> bool:
    code = getattr(err, "response", {}).get("Error", {}).get("Code", "")
    msg = getattr(err, "response", {}).get("Error", {}).get("Message", "")
    # AWS answers ResourceNotFound; moto answers ValidationException "Could not find pipeline".
    return code == "ResourceNotFound" or (code == "ValidationException" and "Could not find pipeline" in msg)


def upsert(client: Any, name: str, definition_bytes: bytes, role_arn: str,
           tags: dict[str, str] | None = None, *, description: str | None = None) -> dict[str, str]:
    """Create the pipeline, or update it when its definition, role or content-hash tag differ.

    `client` is a boto3 SageMaker client. Returns {"action": "create"|"update"|"noop",
    "arn": ..., "content_hash": ...}. The `specops:content-hash` tag is the sha256 of
    `definition_bytes`, the drift key a later plan compares without parsing the definition.
    """
    digest = content_hash(definition_bytes)
    want_tags = {**(tags or {}), CONTENT_HASH_TAG: digest}
    text = definition_bytes.decode("utf-8")
    try:
        live = client.describe_pipeline(PipelineName=name)
    except Exception as err:  # botocore.exceptions.ClientError, not imported at module level
        if not _not_found(err):
            raise
        kwargs: dict[str, Any] = {
            "PipelineName": name, "PipelineDefinition": text, "RoleArn": role_arn,
            "Tags": [{"Key": k, "Value": v} for k, v in sorted(want_tags.items())],
            # Idempotent retries: the same request carries the same token.
            "ClientRequestToken": hashlib.sha256(f"{name}\n{digest}".encode()).hexdigest(),
        }
        if description:
            kwargs["PipelineDescription"] = description
        arn = client.create_pipeline(**kwargs)["PipelineArn"]
        return {"action": "create", "arn": arn, "content_hash": digest}
    arn = live["PipelineArn"]
    live_tags = {t["Key"]: t["Value"] for t in client.list_tags(ResourceArn=arn).get("Tags", [])}
    same = (live.get("PipelineDefinition") == text and live.get("RoleArn") == role_arn
            and all(live_tags.get(k) == v for k, v in want_tags.items()))
    if same:
        return {"action": "noop", "arn": arn, "content_hash": digest}
    kwargs = {"PipelineName": name, "PipelineDefinition": text, "RoleArn": role_arn}
    if description:
        kwargs["PipelineDescription"] = description
    client.update_pipeline(**kwargs)
    stale = sorted(k for k, v in want_tags.items() if k in live_tags and live_tags[k] != v)
    if stale:
        # AddTags overwrites on AWS but appends on moto: remove first, then add.
        client.delete_tags(ResourceArn=arn, TagKeys=stale)
    missing = sorted(k for k, v in want_tags.items() if live_tags.get(k) != v)
    if missing:
        client.add_tags(ResourceArn=arn, Tags=[{"Key": k, "Value": want_tags[k]} for k in missing])
    return {"action": "update", "arn": arn, "content_hash": digest}
