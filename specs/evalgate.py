"""EvalGate: what a promotion must pass — metric thresholds on a model's evaluation, or a
Prompt rendered per dataset row, generated, and judged by assertions (promptfoo's
vocabulary), with thresholds on the pass rate and named metrics and a significance test of
the drop against the baseline's row outcomes."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import AfterValidator, Field
from pydantic_core import PydanticCustomError

from .common import Name, Ref, Secret, SpecModel

# Metric names a gate can threshold: a model evaluation's (auc, accuracy, f1, precision,
# recall, rmse, rougeL, rouge1, exact_match, latency_p50_ms, latency_p95_ms) or a prompt
# evaluation's (pass_rate, regression_p_value, latency_p50_ms, latency_p95_ms and every
# assertion's `metric`). Which apply is checked against the gate (checks/gates.py).
MetricName = Annotated[str, Field(pattern=r"^[A-Za-z_][A-Za-z0-9_]*$", max_length=64)]


class MetricThreshold(SpecModel):
    metric: MetricName
    # Absolute (">= 0.42") or relative to the live baseline (">= baseline - 0.01").
    threshold: str


def _check_url(v: str) -> str:
    if not v.startswith(("http://", "https://")):
        raise PydanticCustomError("value", "endpoint url '{url}' must start with http:// or https://", {"url": v})
    return v


class Endpoint(SpecModel):
    """An OpenAI-compatible server (vLLM's `vllm serve`): /completions and /chat/completions."""

    # Base URL of the OpenAI API, e.g. http://support-llm.serving:8000/v1.
    url: Annotated[str, AfterValidator(_check_url)]
    # The served model name (vLLM's --served-model-name).
    model: str = Field(min_length=1)
    # Bearer token; the step reads it from the environment variable the reference names.
    api_key: Secret | None = None
    # Requests in flight at once.
    concurrency: int = Field(default=4, ge=1, le=256)
    timeout_seconds: float = Field(default=60.0, gt=0, le=3600)


class Judge(SpecModel):
    """Who grades `llm-rubric` assertions: a served model, or a Model whose `llm.base.path`
    is a local folder (loaded in the gate's process)."""

    endpoint: Endpoint | None = None
    model: Ref | None = None


class Assertion(SpecModel):
    # promptfoo's type names: equals contains icontains regex starts-with is-json json-schema
    # rouge-n rouge-l bleu levenshtein similar latency llm-rubric; `not-` inverts most.
    type: str
    # Expected text (a sandboxed Jinja2 template over the row's columns, as in promptfoo),
    # a list of texts (bleu, similar), a JSON schema (is-json, json-schema) or a rubric.
    value: str | int | float | bool | list[str] | dict[str, Any] | None = None
    # Score bound for scored types (promptfoo's defaults when absent); ms for latency.
    threshold: float | None = None
    weight: float = Field(default=1.0, ge=0)
    # Aggregate this assertion's scores (mean over rows) under a metric name to threshold.
    metric: MetricName | None = None


class EvalGateSpec(SpecModel, defer_build=True):
    model: Ref | None = None
    # A Prompt to render for every row of the split (its variables from the dataset's columns).
    prompt: Ref | None = None
    dataset: Ref
    split: str = "test"
    metrics: list[MetricThreshold] = Field(min_length=1)
    # Environments whose promotion this gate blocks.
    blocks: list[Name] = Field(default_factory=list)
    on_missing_baseline: Literal["pass", "fail"] = "pass"
    # Prompt gates: per-row assertions; a row's run passes when all of them pass.
    assertions: list[Assertion] = Field(default_factory=list)
    # Generate over HTTP from this server instead of in the pipeline with the trained model.
    endpoint: Endpoint | None = None
    judge: Judge | None = None
    # Generations per row, and the share of them that must pass for the row to pass.
    repeat: int = Field(default=1, ge=1, le=100)
    row_pass_fraction: float = Field(default=0.5, ge=0, le=1)
    # Significance level of the one-sided test of the drop against the baseline's rows.
    alpha: float = Field(default=0.05, gt=0, lt=1)
