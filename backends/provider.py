"""The provider contract plan/apply drives: one provider per resource type.

A `Desired` is one compiled resource (the artifacts of one pipeline, serving target or
prompt in one environment); a `Live` is what `read()` finds on the platform. Plan compares
desired vs the recorded state (`specops.state.ResourceState`) vs live; apply calls
`apply()` / `delete()` and records the returned ids/outputs in state after each action.

Provider modules are imported lazily (boto3/kfp/zenml only inside functions). A provider
module exposes

    def provider(type: str, *, env: str, target: ir.Target, root: Path,
                 options: dict) -> Provider

(`type` lets one module serve several types, e.g. sagemaker_pipeline and
sagemaker_endpoint). Third-party providers register under the `specops.providers`
entry-point group (name = type, value = module); tests may also pass
`options={"providers": {type: module}}` or edit `PROVIDER_OVERRIDES`.

Errors: a provider raises `ProviderError` (one human line) for a hard failure, and
`RetryableError` for throttling / 5xx that is worth retrying; `retrying()` wraps a call
with tenacity's exponential backoff for those.
"""

from __future__ import annotations

import hashlib
import importlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Protocol, TypeVar

import yaml

from specops.backends.registry import UnknownBackend, provider_module
from specops.extras import missing_extra

if TYPE_CHECKING:
    from specops import ir
    from specops.state import ResourceState

# Test hook and escape hatch: resource type -> provider module, consulted before the registry
# (tests swap the ZenML provider for a fast stand-in this way).
PROVIDER_OVERRIDES: dict[str, str] = {}


@dataclass(frozen=True)
class Desired:
    address: str  # "<type>.<name>"
    type: str  # zenml_pipeline | sagemaker_pipeline | kfp_pipeline | sagemaker_endpoint | k8s_manifests | prompt
    name: str  # resource name (model / serving target / prompt name)
    env: str
    content_hash: str  # sha256 over the resource's artifacts (sorted path + sha256 lines)
    # The compiled artifacts of this resource, keys relative to the resource's directory in
    # the build tree: "definition.json", "params/train.json" for `<env>/sagemaker/<model>/`,
    # "pipeline.py", "run.yaml" for ZenML, "endpoint.json" / "deployment.yaml" for
    # `<env>/serving/<name>/` (serving resources carry the platform files only: the vLLM
    # config is inside them; vllm.yaml and capacity.json are not), "prompt.json" for prompts.
    files: dict[str, bytes]
    attributes: dict[str, Any]  # parsed main artifact(s) as JSON-able data, for field-level diffs
    depends_on: tuple[str, ...]  # addresses applied before this one
    target: "ir.Target"  # where it lands (backend, region, host, role, serving platform...)
    spec: str  # "Kind/name" of the spec that produced it (for messages)
    # The identity of the run an apply starts for this resource (set by the engine from the
    # intent it records first): the content hash, or the hash plus what forced a fresh run
    # (`--replace`, a trigger). A provider that runs work adopts a run already started or
    # finished under this key instead of starting another.
    run_key: str = ""

    @property
    def run_identity(self) -> str:
        return self.run_key or self.content_hash


@dataclass(frozen=True)
class Live:
    exists: bool
    content_hash: str | None = None  # the hash the live object carries (a tag, a version name, a file hash)
    # Live attributes when readable, for drift field diffs: keyed like Desired.attributes
    # ({file: data}); only the files given are compared (e.g. {"definition.json": {...}}).
    attributes: dict[str, Any] | None = None
    ids: dict[str, str] = field(default_factory=dict)


class Provider(Protocol):
    TYPE: str

    def read(self, desired: Desired | None, current: "ResourceState | None") -> Live:
        """Refresh: what exists on the platform now. Never mutates anything."""
        ...

    def apply(self, desired: Desired, current: "ResourceState | None") -> tuple[dict[str, str], dict[str, Any]]:
        """Create-or-update, idempotent (a crash after the remote call and before state was
        recorded must not create a duplicate on retry); returns (ids, outputs) for state."""
        ...

    def delete(self, current: "ResourceState") -> None: ...


class ProviderError(Exception):
    """A hard provider failure: one human line, printed by the CLI without a traceback.

    `outputs` carries what is worth recording even though the action failed (e.g. the gate
    verdicts of a pipeline run a gate stopped: {"gates": {...}}).
    """

    def __init__(self, message: str, *, outputs: dict[str, Any] | None = None):
        super().__init__(message)
        self.outputs = outputs or {}


class RetryableError(ProviderError):
    """Throttling or a 5xx: `retrying()` retries it with exponential backoff."""


def content_hash(files: dict[str, bytes]) -> str:
    """sha256 over sorted "<path> <sha256(bytes)>" lines: the resource's identity."""
    h = hashlib.sha256()
    for path in sorted(files):
        h.update(f"{path} {hashlib.sha256(files[path]).hexdigest()}\n".encode())
    return h.hexdigest()


def json_bytes(doc: Any) -> bytes:
    """The canonical JSON every specops-written document uses: sorted keys, indent 2, newline."""
    import json

    return (json.dumps(doc, indent=2, sort_keys=True, ensure_ascii=False) + "\n").encode()

def parse_file(name: str, data: bytes) -> Any:
    """JSON/YAML files as data (multi-document YAML as a list); anything else by its hash."""
    try:
        if name.endswith(".json"):
            return json.loads(data)
        if name.endswith((".yaml", ".yml")):
            docs = list(yaml.safe_load_all(data.decode("utf-8")))
            return docs[0] if len(docs) == 1 else docs
    except (ValueError, yaml.YAMLError):  # a file that does not parse (a hand edit) is compared whole
        pass
    return {"sha256": hashlib.sha256(data).hexdigest()}


def attributes_of(files: dict[str, bytes]) -> dict[str, Any]:
    return {name: parse_file(name, data) for name, data in sorted(files.items())}


T = TypeVar("T")


def retrying(fn: Callable[[], T], *, attempts: int = 5, max_wait: float = 20.0) -> T:
    """Call `fn`, retrying `RetryableError` with jittered exponential backoff (tenacity)."""
    import tenacity

    retryer = tenacity.Retrying(
        retry=tenacity.retry_if_exception_type(RetryableError),
        wait=tenacity.wait_random_exponential(multiplier=0.5, max=max_wait),
        stop=tenacity.stop_after_attempt(attempts),
        reraise=True,
    )
    return retryer(fn)


def _module_for(type: str, options: dict) -> str:
    overrides = options.get("providers") or {}
    if type in overrides:
        return overrides[type]
    if type in PROVIDER_OVERRIDES:
        return PROVIDER_OVERRIDES[type]
    try:
        return provider_module(type)
    except UnknownBackend:
        raise ProviderError(f"no provider for resource type '{type}'") from None


def make_provider(type: str, *, env: str, target: "ir.Target", root: Path, options: dict | None = None) -> Provider:
    """The provider for `type`, from its lazily imported module's `provider()` factory."""
    options = dict(options or {})
    module_name = _module_for(type, options)
    try:
        module = importlib.import_module(module_name)
    except ImportError as e:
        raise ProviderError(missing_extra(e) or f"provider for '{type}' ({module_name}) cannot be loaded: {e}") from None
    return module.provider(type, env=env, target=target, root=Path(root), options=options)
