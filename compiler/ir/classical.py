"""Classical models on a server: which engine, which MLServer runtime, and the model's inputs.

A ServingTarget serves an LLM with vLLM and a classical model with MLServer (the Open
Inference / V2 protocol KServe speaks too). The MLServer runtime follows the model's flavour:
a model trained by the step runtime is a scikit-learn pipeline (`model.joblib`, the sklearn
runtime); an XGBoost or LightGBM model on numeric features only is trained without that
preprocessing and exported as the library's own booster (`model.ubj` / `model.txt`), which
that library's runtime serves (specops.runtime.train `export`).
"""

from __future__ import annotations

from typing import Any

from specops.frontend.overrides import Node
from specops.resolve.refs import EnvView
from specops.runtime.estimators import library_of
from specops.runtime.estimators import resolve as resolve_estimator

# Column type -> Open Inference (V2) tensor datatype of that input.
V2_DATATYPES = {"int": "INT64", "float": "FP64", "bool": "BOOL", "string": "BYTES", "category": "BYTES",
                "date": "BYTES", "datetime": "BYTES"}
NUMERIC = ("int", "float", "bool")
NATIVE_LIBRARIES = ("xgboost", "lightgbm")


def engine_of(st: Node, model: Node | None) -> str:
    """The serving engine: the spec's, else mlserver for a classical model, vllm otherwise."""
    name = st.spec.engine.name
    if name is not None:
        return name
    return "mlserver" if model is not None and model.spec.type == "classical" else "vllm"


def feature_columns(view: EnvView, model: Node) -> list[tuple[str, str]] | None:
    """(name, column type) of the model's features in training order, from its training
    Dataset's declared columns; None when they are not declared."""
    spec = model.spec
    if spec.type != "classical" or not spec.datasets:
        return None
    ds = view.get("Dataset", spec.datasets[0].dataset)
    if ds is None or not ds.spec.columns:
        return None
    types = {c.name: c.type for c in ds.spec.columns}
    names = spec.classical.features if spec.classical.features is not None else [
        c.name for c in ds.spec.columns if c.name != spec.classical.target]
    if any(n not in types for n in names):
        return None
    return [(n, types[n]) for n in names]


def native_export(view: EnvView, model: Node) -> str | None:
    """"xgboost" / "lightgbm" when the train step exports the library's own booster: a
    built-in XGBoost or LightGBM model on declared, numeric features only."""
    spec = model.spec
    if spec.type != "classical" or spec.command is not None:
        return None
    path, _ = resolve_estimator(spec.classical.algorithm, spec.classical.task)
    if path is None or library_of(path) not in NATIVE_LIBRARIES:
        return None
    cols = feature_columns(view, model)
    if not cols or any(t not in NUMERIC for _, t in cols):
        return None
    return library_of(path)


def runtime_of(st: Node, view: EnvView, model: Node) -> str:
    return st.spec.engine.runtime or native_export(view, model) or "sklearn"


def v2_features(view: EnvView, model: Node) -> tuple[tuple[str, str], ...]:
    cols = feature_columns(view, model) or []
    return tuple((n, V2_DATATYPES[t]) for n, t in cols)


def model_artifact_uri(artifact_store: str, env: str, model: str) -> str:
    """Where a registered classical model's files live in the target's artifact store."""
    return f"{artifact_store.rstrip('/')}/{env}/{model}/model"


def classical_fields(st: Node, view: EnvView, model: Node) -> dict[str, Any]:
    """The ir.Serving fields of a model served by MLServer."""
    spec = st.spec
    reg = model.spec.registry
    return {
        "engine": "mlserver", "runtime": runtime_of(st, view, model), "features": v2_features(view, model),
        "registry": reg.name or model.name, "registry_alias": reg.aliases[0] if reg.aliases else None,
        "model_artifact_uri": model_artifact_uri(view.target.artifact_store, view.name, model.name),
    }


def request_fields(st: Node) -> dict[str, Any]:
    """Request settings, autoscaling target and auth (any engine)."""
    spec = st.spec
    out: dict[str, Any] = {}
    rs = spec.request_settings
    if rs is not None:
        out.update(request_timeout_ms=rs.request_timeout_ms, max_concurrency=rs.max_concurrent_requests_per_instance)
    t = spec.replicas.target
    if t is not None:
        out.update(autoscale_metric=t.metric, autoscale_target=t.value)
    if spec.auth is not None:
        ref = spec.auth.secret_ref
        out.update(auth_mode=spec.auth.mode, auth_secret=(ref.provider, ref.name, ref.key))
    return out
