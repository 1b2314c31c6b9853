"""Monitor: how a deployed model is watched, and what a breach does.

What it watches: production inputs or predictions (a Dataset) against a reference (by default
the split the watched Model trains on), labelled feedback, sampled prompt/response traffic,
and a ServingTarget's engine metrics. Checks: feature drift (Evidently's statistical tests
per column, and the share of drifted columns that makes the dataset drifted), model quality
in the eval gates' metric vocabulary, LLM output quality with the eval gates' assertions, and
serving SLOs. A schedule (cron) runs it; a breach notifies and/or retrains.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field, model_validator
from pydantic_core import PydanticCustomError

from .common import Name, Ref, SpecModel, SplitName
from .evalgate import Assertion, MetricThreshold
from .model import Schedule

# Evidently 0.7's statistical tests (evidently.legacy.calculations.stattests), by their ids.
# p-value tests drift when p < threshold (default 0.05); distance tests when the distance
# >= threshold (default 0.1).
DriftMethod = Literal[
    "ks", "chisquare", "z", "wasserstein", "jensenshannon", "psi", "kl_div", "hellinger",
    "anderson", "cramer_von_mises", "mannw", "ed", "es", "t_test", "emperical_mmd", "fisher_exact",
    "g_test", "TVD", "energy_distance", "epps_singleton", "perc_text_content_drift",
]
Column = Annotated[str, Field(min_length=1, max_length=256)]


class DataWindow(SpecModel):
    """A Dataset (and optionally one of its splits) the monitor reads."""

    dataset: Ref
    # None: the whole dataset (production data has no splits).
    split: SplitName | None = None


class Feedback(DataWindow):
    """Labelled production rows: the label next to the model's prediction (and score)."""

    label_column: Column
    prediction_column: Column
    # Predicted probability of the positive class (what `auc` needs).
    score_column: Column | None = None


class Traffic(DataWindow):
    """Sampled responses from production (one row per request)."""

    response_column: Column = "response"
    # Share of the rows the checks read (a deterministic sample).
    sample: float = Field(default=1.0, gt=0, le=1)


class Watch(SpecModel):
    # The watched Model: its training split is the default reference, and a retrain reruns its pipeline.
    model: Ref | None = None
    # Production inputs or predictions (the current window).
    inputs: DataWindow | None = None
    # What the window is compared with; default: the watched Model's training dataset and split.
    reference: DataWindow | None = None
    # Columns compared; default: the Model's features, else every column the two share.
    columns: list[Column] = Field(default_factory=list)
    feedback: Feedback | None = None
    traffic: Traffic | None = None
    # A ServingTarget whose engine metrics the SLO checks watch.
    serving: Ref | None = None


class ColumnDrift(SpecModel):
    method: DriftMethod | None = None
    threshold: float | None = Field(default=None, gt=0, le=1000)


class DriftCheck(SpecModel):
    # Test for every column (Evidently's default per column type and size when absent: KS or
    # chi-squared up to 1,000 rows, Wasserstein or Jensen-Shannon above).
    method: DriftMethod | None = None
    threshold: float | None = Field(default=None, gt=0, le=1000)
    # Per column: its own test and threshold.
    columns: dict[Column, ColumnDrift] = Field(default_factory=dict)
    # The dataset drifts (a breach) when at least this share of the columns drift.
    drifted_share: float = Field(default=0.5, gt=0, le=1)


class LlmCheck(SpecModel):
    # The eval gates' assertions, judged on every sampled response.
    assertions: list[Assertion] = Field(min_length=1)
    # A breach when fewer than this share of the sampled rows pass every assertion.
    min_pass_rate: float = Field(default=0.9, ge=0, le=1)


Duration = Annotated[str, Field(pattern=r"^[1-9][0-9]{0,4}[smh]$")]


class SloCheck(SpecModel):
    """Serving objectives over the engine's Prometheus metrics (vLLM's names per version)."""

    ttft_p95_ms: float | None = Field(default=None, gt=0)
    itl_p95_ms: float | None = Field(default=None, gt=0)
    e2e_p95_ms: float | None = Field(default=None, gt=0, alias="e2eP95Ms")
    # Share of requests that end in an error (vLLM's request_success_total by finished_reason).
    error_rate: float | None = Field(default=None, ge=0, le=1)
    # KV-cache usage, 0..1.
    kv_cache_usage: float | None = Field(default=None, gt=0, le=1)
    queue_time_p95_ms: float | None = Field(default=None, gt=0)
    # The rate window of the queries and how long a breach must last before it fires.
    window: Duration = "5m"
    for_: Duration = Field(default="5m", alias="for")


class Checks(SpecModel):
    drift: DriftCheck | None = None
    # Model quality on the feedback window, in the eval gates' metric vocabulary (absolute thresholds).
    quality: list[MetricThreshold] = Field(default_factory=list)
    llm: LlmCheck | None = None
    slo: SloCheck | None = None


class Retrain(SpecModel):
    # `window`: train on the data window that breached; `pinned`: on the latest pinned version.
    data: Literal["window", "pinned"] = "window"


class OnBreach(SpecModel):
    # Project notifications (spec.notifications) to send the `breach` event to.
    notify: list[Name] = Field(default_factory=list)
    retrain: Retrain | None = None


class MonitorSpec(SpecModel, defer_build=True):
    watch: Watch
    checks: Checks
    schedule: Schedule | None = None
    on_breach: OnBreach = Field(default_factory=OnBreach)

    @model_validator(mode="after")
    def _sources_for_checks(self) -> "MonitorSpec":
        c, w = self.checks, self.watch
        for check, need, field in ((c.drift, w.inputs, "inputs"), (c.quality, w.feedback, "feedback"),
                                   (c.llm, w.traffic, "traffic"), (c.slo, w.serving, "serving")):
            if check and need is None:
                raise PydanticCustomError("missing-field", "this check needs `watch.{field}`", {"field": field})
        if not any((c.drift, c.quality, c.llm, c.slo)):
            raise PydanticCustomError("missing-field", "a monitor needs at least one check (drift, quality, llm, slo)")
        if self.on_breach.retrain is not None and w.model is None:
            raise PydanticCustomError("missing-field", "onBreach.retrain needs `watch.model` (the model to retrain)")
        return self
