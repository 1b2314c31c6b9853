"""MLServer 1.7 configuration for a classical model: `model-settings.json` and `settings.json`.

MLServer (SeldonIO/MLServer) serves a model folder over the Open Inference (V2) protocol,
REST on 8080 and gRPC on 8081, metrics on 8082. `mlserver start DIR` reads DIR/settings.json
(the server) and DIR/model-settings.json (the model: name, runtime class, parameters.uri).
The runtime follows the model's flavour (specops.ir.classical):

    sklearn   mlserver_sklearn.SKLearnModel     model.joblib (a fitted scikit-learn Pipeline)
    xgboost   mlserver_xgboost.XGBoostModel     model.ubj    (the booster, UBJSON)
    lightgbm  mlserver_lightgbm.LightGBMModel   model.txt    (the booster, text)

The scikit-learn runtime decodes requests with the pandas codec (`content_type: pd`): one V2
input per feature, named after it, in the model's feature order (listed under `inputs`), so a
pipeline mixing numeric and text columns takes one request. The booster runtimes take one
FP64 tensor of rows x features (the numpy codec).

Both files are JSON built as dicts (sorted keys): spec values never become text of another
language. Identical input gives identical bytes.
"""

from __future__ import annotations

import json
from typing import Any

from specops.diagnostics import Diagnostic
from specops.ir import Serving
from specops.ir.nodes import diagnostic_location

VERSION = "1.7.1"
RUNTIMES = {
    "sklearn": "mlserver_sklearn.SKLearnModel",
    "xgboost": "mlserver_xgboost.XGBoostModel",
    "lightgbm": "mlserver_lightgbm.LightGBMModel",
}
MODEL_FILES = {"sklearn": "model.joblib", "xgboost": "model.ubj", "lightgbm": "model.txt"}
HTTP_PORT, GRPC_PORT, METRICS_PORT = 8080, 8081, 8082
READY_PATH = "/v2/health/ready"
LIVE_PATH = "/v2/health/live"
SETTINGS_FILE = "settings.json"
MODEL_SETTINGS_FILE = "model-settings.json"


def json_bytes(doc: Any) -> bytes:
    """Canonical JSON (sorted keys, indent 2, newline), as every specops document."""
    return (json.dumps(doc, indent=2, sort_keys=True, ensure_ascii=False) + "\n").encode()


def model_settings(node: Serving) -> dict[str, Any]:
    runtime = node.runtime or "sklearn"
    params: dict[str, Any] = {"uri": f"./{MODEL_FILES[runtime]}"}
    if runtime == "sklearn":
        params["content_type"] = "pd"
    doc: dict[str, Any] = {"name": node.name, "implementation": RUNTIMES[runtime], "parameters": params}
    if node.features:
        if runtime == "sklearn":
            doc["inputs"] = [{"name": n, "datatype": t, "shape": [-1]} for n, t in node.features]
        else:
            doc["inputs"] = [{"name": "input-0", "datatype": "FP64", "shape": [-1, len(node.features)]}]
    return doc


def settings(node: Serving) -> dict[str, Any]:
    return {"http_port": HTTP_PORT, "grpc_port": GRPC_PORT, "metrics_port": METRICS_PORT,
            "server_name": "mlserver", "load_models_at_startup": True}


def serve_config(node: Serving) -> dict[str, bytes]:
    """{file: bytes}: the server's and the model's settings."""
    return {SETTINGS_FILE: json_bytes(settings(node)), MODEL_SETTINGS_FILE: json_bytes(model_settings(node))}


def check(node: Serving) -> list[Diagnostic]:
    """What MLServer cannot carry, at the spec's field (any platform)."""
    out: list[Diagnostic] = []
    if node.runtime not in RUNTIMES:
        out.append(Diagnostic("error", "value", f"mlserver: unknown runtime {node.runtime!r}",
                              *field_pos(node, "engine")))
    return out


def field_pos(node: Serving, field: str) -> tuple[str | None, Any]:
    """(file, position) of a ServingTarget field (its key), else of the target itself."""
    return diagnostic_location(node.field_sources.get(field) or node.source)
