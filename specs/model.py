"""Model: a classical model trained on tabular data, or an LLM fine-tuned from a pinned base."""

from __future__ import annotations

from typing import Annotated, Literal, Union

from pydantic import AfterValidator, Field, model_validator
from pydantic_core import PydanticCustomError

from .common import Ref, RepoPath, Resources, SpecModel


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
    r: int = Field(default=16, ge=1, le=1024)
    alpha: int = Field(default=32, ge=1)
    dropout: float = Field(default=0.05, ge=0.0, lt=1.0)
    target_modules: list[str] = Field(default_factory=lambda: ["q_proj", "v_proj"])


class FineTune(SpecModel):
    method: Literal["lora", "full"] = "lora"
    lora: Lora = Field(default_factory=Lora)
    epochs: int = Field(default=1, ge=1)
    learning_rate: float = Field(default=2e-4, gt=0)
    batch_size: int = Field(default=8, ge=1)
    max_seq_length: int = Field(default=2048, ge=16)
    max_steps: int | None = Field(default=None, ge=1)


class BaseModelRef(SpecModel):
    # Hub id or registry name of the base weights, e.g. meta-llama/Llama-3.1-8B-Instruct.
    model: str | None = Field(default=None, min_length=1)
    # Pinned revision (a commit sha or tag): an unpinned base makes runs irreproducible.
    revision: str | None = Field(default=None, min_length=1)
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
    finetune: FineTune | None = None
    prompt_field: str = "prompt"
    response_field: str = "response"


class Command(SpecModel):
    """A user-supplied step, Azure ML command-job style: exec'd as a list, never a shell."""

    image: str = Field(min_length=1)
    command: list[str] = Field(min_length=1)
    args: list[str] = Field(default_factory=list)
    env: dict[str, str] = Field(default_factory=dict)


class Registry(SpecModel):
    name: str | None = None
    aliases: list[str] = Field(default_factory=list)


def _check_cron(v: str) -> str:
    if len(v.split()) != 5:
        raise PydanticCustomError(
            "value", "cron '{cron}' needs five fields (minute hour day-of-month month day-of-week), "
            "e.g. '0 3 * * 1'", {"cron": v})
    return v


class Schedule(SpecModel):
    # Five-field cron expression, UTC.
    cron: Annotated[str, AfterValidator(_check_cron)]


class _ModelCommon(SpecModel):
    datasets: list[DatasetUse] = Field(min_length=1)
    hyperparameters: dict[str, str | int | float | bool] = Field(default_factory=dict)
    resources: Resources = Field(default_factory=Resources)
    command: Command | None = None
    registry: Registry = Field(default_factory=Registry)
    schedule: Schedule | None = None


class ClassicalModelSpec(_ModelCommon):
    type: Literal["classical"]
    classical: Classical


class LlmModelSpec(_ModelCommon):
    type: Literal["llm"]
    llm: Llm


ModelSpec = Annotated[Union[ClassicalModelSpec, LlmModelSpec], Field(discriminator="type")]
