"""The backend-neutral IR: what the resolver hands to every backend.

Per environment and per Model, one lifecycle `Pipeline`:
data checks -> train or fine-tune -> evaluate -> gate(s) -> register -> deploy hand-off.
Per environment and per ServingTarget, one `Serving` node.

Everything here is immutable, JSON-able through `to_dict()`, and holds only values that are
the same for identical input (no absolute paths, no timestamps), so emission is
byte-identical. Each node keeps the `Source` position of the spec it came from, so a
backend that cannot express something reports it at the spec's line.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, Callable, Literal

from specops.diagnostics import Pos

StepKind = Literal["data_check", "train", "finetune", "evaluate", "gate", "register", "deploy", "command", "predict",
                   "fetch", "monitor"]
Backend = str  # a pipeline backend of specops.backends.registry (plug-ins included)


class Source:
    """Where a node came from: repo-relative file and 1-based line/column of the spec node.

    Line and column may be computed on first use (`locate`): positions cost a second,
    exact parse of the file, which only files with a diagnostic should pay for.
    """

    __slots__ = ("file", "_line", "_col", "_locate")

    def __init__(self, file: str, line: int | None = None, col: int | None = None,
                 locate: Callable[[], tuple[int, int]] | None = None):
        self.file = file
        self._line, self._col, self._locate = line, col, locate

    def _resolve(self) -> None:
        if self._line is None:
            self._line, self._col = self._locate() if self._locate else (1, 1)

    @property
    def line(self) -> int:
        self._resolve()
        return self._line  # type: ignore[return-value]

    @property
    def col(self) -> int:
        self._resolve()
        return self._col  # type: ignore[return-value]

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Source) and (self.file, self.line, self.col) == (other.file, other.line, other.col)

    def __hash__(self) -> int:
        return hash((self.file, self.line, self.col))

    def __repr__(self) -> str:
        return f"Source({self.file!r}, {self.line}, {self.col})"

    def __deepcopy__(self, memo: dict) -> "Source":
        return Source(self.file, self.line, self.col)


def diagnostic_location(source: Source | None) -> tuple[str | None, Pos | None]:
    """(file, position) of an IR node's spec, for a diagnostic. Only asked for when there is
    one: a position costs an exact re-parse of the spec's file."""
    if source is None:
        return None, None
    return source.file, Pos(source.line, source.col)


@dataclass(frozen=True)
class Resources:
    """Compute a step asks for. `accelerator` is a GPU type from the catalogue (e.g. 'L4')."""

    cpu: str | None = None  # Kubernetes quantity, e.g. "2" or "500m"
    memory: str | None = None  # Kubernetes quantity, e.g. "8Gi"
    accelerator: str | None = None
    accelerator_count: int = 0
    # Backend-specific instance type when the target names one (SageMaker 'ml.g5.2xlarge').
    instance_type: str | None = None
    # Machines a training step spans, and the torchrun strategy across them (None: one process).
    nodes: int = 1
    strategy: str | None = None


@dataclass(frozen=True)
class Step:
    """One step of a lifecycle pipeline.

    The step runtime (`specops.runtime.run_step(kind, params, inputs=..., output_dir=...)`)
    executes it: `params` are exactly what it receives; `inputs` maps an input name to the
    name of the upstream step whose output directory it reads.
    """

    name: str  # unique in the pipeline, DNS-1123 label ("check-data", "train", "gate-auc")
    kind: StepKind
    params: dict[str, Any]
    inputs: dict[str, str] = field(default_factory=dict)  # input name -> upstream step name
    image: str = ""
    resources: Resources = field(default_factory=Resources)
    # A user-supplied command (Azure ML command-job style); exec'd as a list, never a shell.
    command: tuple[str, ...] | None = None
    source: Source | None = None

    @property
    def depends_on(self) -> tuple[str, ...]:
        return tuple(sorted(set(self.inputs.values())))


@dataclass(frozen=True)
class Schedule:
    cron: str
    source: Source | None = None


@dataclass(frozen=True)
class Target:
    """The platform an environment lands on (from the Project's `targets`)."""

    name: str
    backend: Backend
    provider: Literal["local", "aws", "gcp", "onprem"] = "local"
    region: str | None = None
    project: str | None = None  # GCP project
    host: str | None = None  # KFP API host
    artifact_store: str = "file://.specops/artifacts"
    image_registry: str | None = None
    serving_platform: str = "local"  # a serving platform of specops.backends.registry
    namespace: str = "default"
    role_arn: str | None = None  # SageMaker execution role
    gpus: tuple[str, ...] = ()
    source: Source | None = None
    # The MLflow tracking server of the target's registry (None: the embedded store).
    registry_uri: str | None = None


@dataclass(frozen=True)
class Pipeline:
    """The lifecycle pipeline of one Model in one environment."""

    name: str  # "<model>" (the environment is a separate field; backends may combine)
    env: str
    model: str
    target: Target
    steps: tuple[Step, ...]  # topologically ordered, ties by name
    parameters: dict[str, Any] = field(default_factory=dict)  # pipeline parameters and defaults
    schedule: Schedule | None = None
    artifact_root: str = ""  # "<artifact_store>/<env>/<model>"
    labels: dict[str, str] = field(default_factory=dict)
    source: Source | None = None

    def step(self, name: str) -> Step:
        for s in self.steps:
            if s.name == name:
                return s
        raise KeyError(name)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class Adapter:
    """A LoRA adapter served on the base, and where its weights come from.

    published: a Hub repo at a pinned commit (`uri` = repo id, `revision` = commit).
    trained:   the registered artifact of a Model this repo fine-tunes (`uri` = its artifact
               URI, s3:// gs:// or file://).
    `path` is where the server reads it: on a cluster, a folder of the model-cache volume an
    init step fetches it into; on the local platform, a folder on this machine.
    """

    name: str  # the served LoRA name: the adapter Model's spec name
    source: Literal["published", "trained"]
    uri: str
    revision: str | None
    rank: int  # LoRA rank (sizes vLLM's max-lora-rank)
    path: str
    source_pos: Source | None = None  # the adapter's entry in the ServingTarget


@dataclass(frozen=True)
class EnvVar:
    """A server environment variable: a literal, or a secret (provider, name, key)."""

    name: str
    value: str | None = None
    secret: tuple[str, str, str | None] | None = None
    source: Source | None = None


@dataclass(frozen=True)
class ModelCache:
    """The weights' cache volume. access_mode None: ReadWriteOnce for one replica, else Many."""

    enabled: bool = True
    size: str = "200Gi"
    access_mode: str | None = None
    storage_class: str | None = None


@dataclass(frozen=True)
class Serving:
    """One ServingTarget in one environment: what to serve, with which engine, where."""

    name: str
    env: str
    target: Target
    model: str  # Model spec name
    model_uri: str  # the base weights: hf id, s3://, gs:// or repo-relative folder
    model_config: str | None  # repo-relative path of a local config.json (capacity planning)
    engine_version: str  # vLLM version whose flag list the args are checked against
    engine_args: dict[str, Any]  # exact vLLM serve flags (kebab-case) -> values
    accelerator: str  # GPU type from the catalogue
    accelerator_count: int
    replicas_min: int = 1
    replicas_max: int = 1
    canary_percent: int = 0
    adapters: tuple[Adapter, ...] = ()
    gates: tuple[str, ...] = ()
    image: str = "vllm/vllm-openai:v0.32.0"
    instance_type: str | None = None  # SageMaker endpoint instance type
    # Where adapters are fetched to on this platform (None: the platform fetches nothing).
    adapter_root: str | None = None
    # Kubernetes Secret (name, key) holding the Hugging Face token, from the spec's
    # `hfToken: {secretRef: ...}`; None = the cluster convention (optional "hf-token"/"token").
    hf_token_secret: tuple[str, str] | None = None
    labels: dict[str, str] = field(default_factory=dict)
    source: Source | None = None
    # Pod shape; None or empty: the platform's default.
    cpu_request: str | None = None
    cpu_limit: str | None = None
    memory_request: str | None = None
    memory_limit: str | None = None
    env_vars: tuple[EnvVar, ...] = ()
    shm_size: str | None = None
    model_cache: ModelCache = field(default_factory=ModelCache)
    node_selector: dict[str, str] = field(default_factory=dict)
    tolerations: tuple[dict[str, Any], ...] = ()
    affinity: dict[str, Any] | None = None
    strategy: str | None = None  # Recreate | RollingUpdate
    probes: dict[str, dict[str, Any]] = field(default_factory=dict)  # startup|readiness|liveness -> fields
    release: str | None = None  # production-stack release (values file) it joins
    # Spec field (camelCase path, e.g. "shmSize") -> its position: a platform that cannot
    # carry a field reports it there.
    field_sources: dict[str, Source] = field(default_factory=dict)
    # The server: "vllm" (LLMs) or "mlserver" (classical models, the Open Inference V2
    # protocol). A classical node has accelerator "" and accelerator_count 0 (CPU).
    engine: str = "vllm"
    runtime: str | None = None  # MLServer runtime: sklearn | xgboost | lightgbm
    # The model's inputs in its feature order: (column, V2 datatype), for the model settings.
    features: tuple[tuple[str, str], ...] = ()
    registry: str | None = None  # the registered model's name
    registry_alias: str | None = None  # the alias served on the local platform (None: newest)
    # Where cluster platforms fetch the registered model from: <artifact store>/<env>/<model>/model
    model_artifact_uri: str | None = None
    request_timeout_ms: int | None = None
    max_concurrency: int | None = None  # concurrent requests per replica
    autoscale_metric: str | None = None  # concurrency | rps | cpu (None: the platform's default)
    autoscale_target: int | None = None
    auth_mode: str | None = None  # key | token
    auth_secret: tuple[str, str, str | None] | None = None  # (provider, name, key)
    # The served model's pipeline fingerprint: a retrain-worthy change rolls the server too.
    model_revision: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


_FIELD_NAMES: dict[type, tuple[str, ...]] = {}


def fingerprint(node: Any) -> str:
    """sha256 of everything an IR node holds that emission may read.

    A Source counts by its file only: emitted artifacts never carry line numbers (moving a
    spec down a line changes no artifact), and asking for lines would force an exact
    re-parse of every file.
    """
    import hashlib
    import json
    from dataclasses import fields, is_dataclass

    def conv(o: Any) -> Any:  # called by the C encoder only for non-JSON objects
        names = _FIELD_NAMES.get(type(o))
        if names is None:
            if isinstance(o, Source):
                return o.file
            if not is_dataclass(o):
                return repr(o)
            names = tuple(f.name for f in fields(o))
            if not isinstance(o, type):
                # One lookup per class: fields() walks the class each time (~14,000 objects
                # per 1k-spec compile).
                _FIELD_NAMES[type(o)] = names
        return {n: getattr(o, n) for n in names}

    data = json.dumps(node, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=conv)
    return hashlib.sha256(data.encode()).hexdigest()
