"""EvalGate: metric thresholds that must hold before a promotion."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from .common import Name, Ref, SpecModel


class MetricThreshold(SpecModel):
    # classification: auc, accuracy, f1, precision, recall, logloss, pr_auc; regression: rmse,
    # mse, mae, mape, r2; generation: rougeL, rouge1, exact_match; any: latency_p50_ms, latency_p95_ms
    metric: Literal["auc", "accuracy", "f1", "precision", "recall", "logloss", "pr_auc", "rmse", "mse", "mae",
                    "mape", "r2", "rougeL", "rouge1", "exact_match", "latency_p50_ms", "latency_p95_ms"]
    # Absolute (">= 0.42") or relative to the live baseline (">= baseline - 0.01").
    threshold: str


class EvalGateSpec(SpecModel):
    model: Ref | None = None
    prompt: Ref | None = None
    dataset: Ref
    split: str = "test"
    metrics: list[MetricThreshold] = Field(min_length=1)
    # Environments whose promotion this gate blocks.
    blocks: list[Name] = Field(default_factory=list)
    on_missing_baseline: Literal["pass", "fail"] = "pass"
