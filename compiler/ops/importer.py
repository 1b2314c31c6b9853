"""`specops import`: adopt an object that already runs on a platform into an environment's state.

Like `terraform import`: the object is read, not changed. Supported addresses:

- `sagemaker_pipeline.<model>`  live id: the SageMaker pipeline name or ARN
- `sagemaker_endpoint.<name>`   live id: the endpoint name or ARN

The state entry records what is live: ids (ARN, name; for an endpoint also its config and
model), the live definition/config as attributes, and as content hash the hash the live
object carries (`specops:resource-hash` when specops deployed it and nobody changed it since,
otherwise the sha256 of the live definition / config). The next `plan` therefore shows an
update wherever the compiled spec differs, and no drift for the object just adopted; apply
then updates the adopted object in place under its own name.

Everything runs under the state lock; errors are one-line `StateError`s.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from specops.backends.provider import ProviderError, make_provider
from specops.backends.sagemaker_provider import read_endpoint_live, read_pipeline_live
from specops.state import ResourceState, State, StateError

if TYPE_CHECKING:
    from specops import ir
    from specops.state import StateStore

IMPORTABLE = ("sagemaker_pipeline", "sagemaker_endpoint")


def _live_name(live_id: str, kind: str) -> str:
    """A name from a name or an ARN (arn:aws:sagemaker:<region>:<acct>:<kind>/<name>)."""
    if live_id.startswith("arn:"):
        resource = live_id.split(":", 5)[-1]
        prefix, _, name = resource.partition("/")
        if prefix != kind or not name:
            raise StateError(f"'{live_id}' is not a SageMaker {kind} ARN")
        return name
    return live_id


def import_resource(store: "StateStore", address: str, live_id: str, *, env: str, target: "ir.Target",
                    root: Path, options: dict[str, Any] | None = None) -> ResourceState:
    """Read the live object `live_id` and record it in `env`'s state under `address`.

    Refuses an address already in state (`specops state rm` first, or just apply). Returns
    the ResourceState written.
    """

    type_, _, name = address.partition(".")
    if type_ not in IMPORTABLE or not name:
        raise StateError(f"cannot import '{address}': importable addresses are "
                         f"{', '.join(t + '.<name>' for t in IMPORTABLE)}")
    if not live_id:
        raise StateError(f"cannot import '{address}': give the live object's name or ARN")
    try:
        prov: Any = make_provider(type_, env=env, target=target, root=root, options=options)
        with store.lock(f"import {address}"):
            state = store.read() or State.new(env)
            if address in state.resources:
                raise StateError(f"'{address}' is already in the state of env '{env}' "
                                 f"(ids: {state.resources[address].ids}); nothing imported")
            if type_ == "sagemaker_pipeline":
                live_name = _live_name(live_id, "pipeline")
                live = read_pipeline_live(prov, live_name)
                what = f"SageMaker pipeline '{live_name}'"
            else:
                live_name = _live_name(live_id, "endpoint")
                live = read_endpoint_live(prov, live_name)
                what = f"SageMaker endpoint '{live_name}'"
            if not live.exists:
                raise StateError(f"cannot import '{address}': no {what} in region "
                                 f"{target.region or '(default)'}")
            ids = {k: v for k, v in live.ids.items() if k != "definition_hash"}
            outputs: dict[str, Any] = {"imported": True, "imported_from": live_id}
            if "definition_hash" in live.ids:
                outputs["definition_hash"] = live.ids["definition_hash"]
            entry = ResourceState(address=address, type=type_, name=name, content_hash=live.content_hash or "",
                                  ids=ids, outputs=outputs, attributes=live.attributes or {}, depends_on=[])
            state.resources[address] = entry
            store.write(state)
            return entry
    except ProviderError as e:
        raise StateError(f"cannot import '{address}': {e}") from None
