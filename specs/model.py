"""Model: a classical model trained on tabular data, or an LLM fine-tuned from a pinned base."""

from __future__ import annotations

import re
from typing import Annotated, Literal, Union

from pydantic import AfterValidator, Field, model_validator
from pydantic_core import PydanticCustomError

from specops.runtime import defaults as D

from .common import (
    AliasName,
    EnvName,
    ImageRef,
    Name,
    Ref,
    RegistryName,
    RepoPath,
    Resources,
    SpecModel,
    SplitName,
    grammar,
)

_COMMIT = re.compile(r"^[0-9a-f]{40}$")
# A Hugging Face Hub repo id: 'org/name' (or a bare 'name'); it becomes an argv word, so it
# may not start with '-'.
_HUB_REPO = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*(/[A-Za-z0-9][A-Za-z0-9._-]*)?$")


def _check_commit(v: str) -> str:
    if not _COMMIT.match(v):
        raise PydanticCustomError(
            "value", "revision '{rev}' is not a full commit hash; a branch or tag moves, so pin the "
            "40-character commit (the Hub shows it under 'Files and versions' > 'History')", {"rev": v})
    return v


def _check_hub_repo(v: str) -> str:
    if not _HUB_REPO.match(v):
        raise PydanticCustomError("value", "'{repo}' is not a Hugging Face repo id ('org/name')", {"repo": v})
    return v


# A pinned Hub revision: a full commit hash (branches and tags move under you).
Commit = Annotated[str, AfterValidator(_check_commit)]
HubRepo = Annotated[str, AfterValidator(_check_hub_repo)]


class DatasetUse(SpecModel):
    dataset: Ref
    # Which split trains the model; evaluation uses the gate's split.
    split: str = "train"


class Classical(SpecModel):
    # A short name (logistic_regression, linear_regression, random_forest, gradient_boosting,
    # xgboost, lightgbm) or a scikit-learn estimator's import path (sklearn.linear_model.Ridge),
    # checked at validate against the generated catalogue (specops.runtime.estimators): spec
    # values never name code to import beyond it.
    algorithm: str = Field(min_length=1)
    task: Literal["classification", "regression"] = "classification"
    # Label column.
    target: str
    # Feature columns; all other columns when absent.
    features: list[str] | None = None


class Lora(SpecModel):
    # Defaults live in specops.runtime.defaults, shared with the step runtime.
    r: int = Field(default=D.LORA_R, ge=1, le=1024)
    alpha: int = Field(default=D.LORA_ALPHA, ge=1)
    dropout: float = Field(default=D.LORA_DROPOUT, ge=0.0, lt=1.0)
    target_modules: list[str] = Field(default_factory=lambda: list(D.LORA_TARGET_MODULES))


class FineTune(SpecModel):
    method: Literal["lora", "full"] = "lora"
    lora: Lora = Field(default_factory=Lora)
    epochs: int = Field(default=D.EPOCHS, ge=1)
    learning_rate: float = Field(default=D.LEARNING_RATE, gt=0)
    batch_size: int = Field(default=D.BATCH_SIZE, ge=1)
    max_seq_length: int = Field(default=D.MAX_SEQ_LENGTH, ge=16)
    max_steps: int | None = Field(default=None, ge=1)


class PublishedAdapter(SpecModel):
    """A LoRA adapter published on the Hub: loaded by the server, never trained here."""

    # Hub repo id of the adapter, e.g. nvidia/llama-3.1-nemoguard-8b-topic-control.
    model: HubRepo
    # Its pinned commit.
    revision: Commit
    # LoRA rank (adapter_config.json's `r`): sizes vLLM's max-lora-rank.
    rank: int = Field(ge=1, le=1024)


class BaseModelRef(SpecModel):
    # Hub id or registry name of the base weights, e.g. meta-llama/Llama-3.1-8B-Instruct.
    model: HubRepo | None = None
    # Pinned revision, a full commit hash: an unpinned base makes runs irreproducible, and
    # serving takes whatever the Hub holds today.
    revision: Commit | None = None
    # Or continue from another Model of this repo (its registered weights).
    from_model: Ref | None = None
    # Repo-relative folder holding the base's config.json (capacity planning, meta-device
    # parameter count) and, for local runs, the weights.
    path: RepoPath | None = None


    @model_validator(mode="after")
    def _pinned(self) -> "BaseModelRef":
        if self.from_model is None and (self.model is None or self.revision is None):
            raise PydanticCustomError(
                "missing-field", "a base needs `model` and a pinned `revision`, or `fromModel`")
        if self.from_model is not None and self.model is not None:
            raise PydanticCustomError("value", "give either `model` or `fromModel`, not both")
        return self


class Llm(SpecModel):
    base: BaseModelRef
    # Without it the base is served as published: no fine-tune step is emitted.
    finetune: FineTune | None = None
    # Or: this Model is a LoRA adapter published on the Hub, for `base`.
    adapter: PublishedAdapter | None = None
    prompt_field: str = "prompt"
    response_field: str = "response"

    @model_validator(mode="after")
    def _one_source(self) -> "Llm":
        if self.adapter is not None and self.finetune is not None:
            raise PydanticCustomError(
                "value", "a published `adapter` is loaded, not trained: drop `finetune`, or the adapter")
        return self


class Command(SpecModel):
    """A user-supplied step, Azure ML command-job style: exec'd as a list, never a shell."""

    image: ImageRef
    command: list[str] = Field(min_length=1)
    args: list[str] = Field(default_factory=list)
    env: dict[EnvName, str] = Field(default_factory=dict)


_DIGEST = re.compile(r"^sha256:[0-9a-f]{64}$")


def _check_digest(v: str) -> str:
    if not _DIGEST.match(v):
        raise PydanticCustomError("value", "digest '{d}' is not 'sha256:' and 64 hex digits", {"d": v[:80]})
    return v


class Pin(SpecModel):
    """A registered model version this environment deploys instead of training (written by
    `specops promote`): its pipeline fetches the version, checks the digest, and re-runs the
    gates on this environment's data."""

    # The registry's version number.
    version: int = Field(ge=1)
    # sha256 of the version's files: a version re-registered with other content is refused.
    digest: Annotated[str, AfterValidator(_check_digest)]


class Registry(SpecModel):
    name: RegistryName | None = None
    aliases: list[AliasName] = Field(default_factory=list)
    # Per environment (in `overrides`): deploy this registered version instead of training.
    pin: Pin | None = None


def _check_cron(v: str) -> str:
    # croniter knows cron's grammar (ranges, steps, names): counting fields let `99 * * * *`
    # through. Imported here: it costs ~0.15 s, paid only by repos that schedule something.
    from croniter import croniter

    if len(v.split()) != 5 or not croniter.is_valid(v):
        raise PydanticCustomError(
            "value", "cron '{cron}' is not a five-field cron expression (minute hour day-of-month month "
            "day-of-week), e.g. '0 3 * * 1'", {"cron": v})
    return v


class Schedule(SpecModel):
    # Five-field cron expression, UTC.
    cron: Annotated[str, AfterValidator(_check_cron)]


class TrainingResources(Resources):
    """Compute for the training step: a step's resources, spread over `nodes` machines."""

    # Machines the training step spans (SageMaker InstanceCount, a Kubeflow TrainJob's numNodes).
    nodes: int = Field(default=1, ge=1, le=512)
    # How the processes share the model: data parallel (ddp), sharded (fsdp), or DeepSpeed ZeRO.
    # Each node runs one process per accelerator (one on CPU) under torchrun.
    strategy: Literal["ddp", "fsdp", "deepspeed"] | None = None


# Names of a custom step's inputs and outputs: they become environment variable suffixes
# (SPECOPS_INPUT_<NAME>, SPECOPS_OUTPUT_<NAME>) and folder names, so identifiers only.
IO_NAME_RE = re.compile(r"[a-z][a-z0-9_]{0,62}")
IoName = Annotated[str, grammar(IO_NAME_RE, "input/output name", "lowercase letters, digits and '_', "
                                "starting with a letter", 63)]
# What flows along a wire: `table` a folder holding one data file (data.csv / data.parquet...)
# or a checked dataset (dataset.json + split files), `model` a trained model folder,
# `metrics` an evaluate output (metrics.json), `folder` anything else.
IoType = Literal["table", "model", "metrics", "folder"]
# Where a custom step sits in the lifecycle (Azure ML's prep -> transform -> train -> predict ->
# score): prep/transform/featurize run before training, predict/score after it. Checked
# against the wiring: a step that reads `train.model` cannot be a `prep` step.
CustomStepKind = Literal["prep", "transform", "featurize", "predict", "score"]
PRE_TRAIN_KINDS = ("prep", "transform", "featurize")


class StepOutput(SpecModel):
    type: IoType = "folder"
    description: str | None = None


class StepInput(SpecModel):
    """An input wired by name: `<step>.<output>` (a custom step's output, or the built-in
    `train.model` / `evaluate.metrics`), or a Dataset name (its checked data)."""

    from_: str = Field(alias="from", min_length=1, max_length=127)
    # The type the step expects; checked against what the wire carries.
    type: IoType | None = None


class CustomStep(SpecModel):
    """A user step of the Model's pipeline: image plus argv (never a shell), under the step
    runtime's command contract (specops.runtime.command)."""

    name: Name
    kind: CustomStepKind
    # Default: the Project's runtime image.
    image: ImageRef | None = None
    command: list[str] = Field(min_length=1)
    args: list[str] = Field(default_factory=list)
    env: dict[EnvName, str] = Field(default_factory=dict)
    inputs: dict[IoName, Annotated[str, Field(min_length=1, max_length=127)] | StepInput] = Field(default_factory=dict)
    outputs: dict[IoName, StepOutput] = Field(default_factory=dict)
    resources: Resources | None = None


class BatchScoring(SpecModel):
    """Batch scoring: the trained model scores a Dataset into a new table (a Dataset can be
    `producedBy` it), after training in the model's pipeline, or on its own schedule."""

    # The step's name: what a Dataset's `producedBy.step` names.
    name: Name
    dataset: Ref
    # The split scored (a split of the scored Dataset); all rows when absent.
    split: SplitName | None = None
    format: Literal["parquet", "csv"] = "parquet"
    # Runs after training, in the model's pipeline (on the model's `schedule`, when it has one).
    resources: Resources | None = None


class _ModelCommon(SpecModel, defer_build=True):
    datasets: list[DatasetUse] = Field(min_length=1)
    hyperparameters: dict[str, str | int | float | bool] = Field(default_factory=dict)
    resources: TrainingResources = Field(default_factory=TrainingResources)
    command: Command | None = None
    registry: Registry = Field(default_factory=Registry)
    schedule: Schedule | None = None
    # Custom steps before or after training, wired by their inputs' names.
    steps: list[CustomStep] = Field(default_factory=list)
    # Batch scoring steps: the model scores Datasets into new tables.
    batch: list[BatchScoring] = Field(default_factory=list)


class ClassicalModelSpec(_ModelCommon, defer_build=True):
    type: Literal["classical"]
    classical: Classical


class LlmModelSpec(_ModelCommon, defer_build=True):
    type: Literal["llm"]
    llm: Llm
    # Training data; a model that is served as published (no finetune, no command) needs none.
    datasets: list[DatasetUse] = Field(default_factory=list)

    @model_validator(mode="after")
    def _trained_needs_data(self) -> "LlmModelSpec":
        if not self.datasets and (self.llm.finetune is not None or self.command is not None):
            raise PydanticCustomError("missing-field", "a fine-tuned or command-trained model needs `datasets`")
        return self


ModelSpec = Annotated[Union[ClassicalModelSpec, LlmModelSpec], Field(discriminator="type")]
