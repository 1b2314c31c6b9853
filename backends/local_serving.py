"""The `local` serving platform of the embedded default target.

An LLM: the vLLM serve config (`vllm.yaml`) is the whole artifact; `vllm serve --config` runs
it on the developer's machine, and there is no live object.

A classical model: `apply` runs MLServer as a managed local process (specops.backends.
local_provider, resource type `local_server`) from `server.json`: the MLServer settings, the
model settings and where the registered model comes from (the local registry, by the
model's first alias, else its newest version). `plan` health-checks the process; a stopped
server is drift; prune stops it. One process on this machine: replicas, autoscaling, request
limits and auth are the cluster platforms' and are reported here as warnings at their lines.
"""

from __future__ import annotations

from specops.backends import mlserver
from specops.diagnostics import Diagnostic
from specops.ir import Serving

NAME = "local"
FORMAT = ("vLLM: none (the serve config alone); MLServer: server.json, a managed local MLServer "
          f"{mlserver.VERSION} process")
ARTIFACT_BACKEND = "local"
RESOURCE_TYPE: str | None = "local_server"
PROVIDER: str | None = "specops.backends.local_provider"

# Fields a single local process cannot honour: (field, what the message says).
_NOT_LOCAL = (
    ("replicas", "autoscaling and more than one replica"),
    ("requestSettings", "request timeout and concurrency limits (MLServer has neither)"),
    ("auth", "endpoint authentication (the local server listens on 127.0.0.1 only)"),
    ("instanceType", "an instance type"),
    ("resources", "CPU and memory requests and limits"),
    ("probes", "probes (plan health-checks the server itself)"),
)


def check(node: Serving, serve_config_yaml: bytes | None = None) -> list[Diagnostic]:
    if node.engine != "mlserver":
        return []
    out = []
    given = {"replicas": node.replicas_max > 1 or node.autoscale_metric is not None,
             "requestSettings": node.request_timeout_ms is not None or node.max_concurrency is not None,
             "auth": node.auth_mode is not None, "instanceType": node.instance_type is not None,
             "resources": any(v is not None for v in (node.cpu_request, node.cpu_limit, node.memory_request,
                                                     node.memory_limit)),
             "probes": bool(node.probes)}
    for field, what in _NOT_LOCAL:
        if given[field]:
            out.append(Diagnostic("warning", "unsupported",
                                  f"local serving runs one MLServer process: {what} not applied",
                                  *mlserver.field_pos(node, field)))
    return out


def server_document(node: Serving) -> dict:
    """What the local provider needs to start the server."""
    runtime = node.runtime or "sklearn"
    return {"name": node.name, "model": node.model, "registry": node.registry or node.model,
            "alias": node.registry_alias, "runtime": runtime, "model_file": mlserver.MODEL_FILES[runtime],
            "mlserver_version": mlserver.VERSION, "model_revision": node.model_revision,
            "settings": mlserver.settings(node),
            "model_settings": mlserver.model_settings(node)}


def emit(node: Serving, serve_config_yaml: bytes | None = None) -> dict[str, bytes]:
    if node.engine != "mlserver":
        return {}
    return {"server.json": mlserver.json_bytes(server_document(node))}
