"""Saved plans: `specops plan --out FILE` and `specops apply FILE` (Terraform's planfile).

The file is versioned JSON. It binds the environment, the state it was made against (lineage
and serial) and the digest of the compiled manifest, and carries the plan as shown. Applying
it re-compiles and re-reads state: if either changed since, it is refused with the reason;
otherwise exactly the shown actions are carried out, in the shown order.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

from specops.ops.plan import Action, Change, Plan, PlanError
from specops.structdiff import FieldDiff

SAVED_PLAN_FORMAT = "specops-plan"
SAVED_PLAN_VERSION = 1


def manifest_digest(build: Any) -> str:
    return hashlib.sha256(build.files()["manifest.json"]).hexdigest()


def dumps(plan: Plan, *, state: Any, manifest_sha256: str, replace: list[str]) -> bytes:
    doc = {"format": SAVED_PLAN_FORMAT, "version": SAVED_PLAN_VERSION, "env": plan.env,
           "state": {"lineage": state.lineage, "serial": state.serial} if state is not None else None,
           "manifest_sha256": manifest_sha256, "replace": sorted(replace), "plan": plan.to_dict(),
           "content_hashes": {c.address: c.desired.content_hash for c in plan.changes if c.desired is not None}}
    return (json.dumps(doc, indent=2, sort_keys=True, ensure_ascii=False, default=str) + "\n").encode()


def load(path: str | Path) -> dict[str, Any]:
    """The saved plan at `path`; anything that is not one is a one-line PlanError."""
    try:
        raw = Path(path).read_bytes()
    except OSError as e:
        raise PlanError(f"{path}: cannot read the saved plan ({e.strerror or e})") from None
    try:
        doc = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, ValueError):
        raise PlanError(f"{path}: not a saved plan (not JSON); make one with `specops plan --out FILE`") from None
    if not isinstance(doc, dict) or doc.get("format") != SAVED_PLAN_FORMAT:
        raise PlanError(f"{path}: not a saved plan (no \"format\": \"{SAVED_PLAN_FORMAT}\")")
    if doc.get("version") != SAVED_PLAN_VERSION:
        raise PlanError(f"{path}: saved plan version {doc.get('version')!r} is not supported "
                        f"(this specops reads version {SAVED_PLAN_VERSION})")
    plan = doc.get("plan")
    if (not isinstance(doc.get("env"), str) or not isinstance(plan, dict) or not isinstance(plan.get("resources"), list)
            or not isinstance(doc.get("content_hashes"), dict) or not isinstance(doc.get("manifest_sha256"), str)):
        raise PlanError(f"{path}: saved plan is malformed")
    return doc


def check(doc: dict[str, Any], *, env: str, state: Any, manifest_sha256: str, path: str) -> None:
    """Refuse a saved plan made for another environment, another state, or other inputs."""
    if doc["env"] != env:
        raise PlanError(f"{path}: this plan is for env '{doc['env']}', not '{env}'")
    want = doc.get("state")
    have = {"lineage": state.lineage, "serial": state.serial} if state is not None else None
    if want != have:
        if want is None or have is None or want.get("lineage") != have["lineage"]:
            raise PlanError(f"{path}: the plan was made against other state (lineage "
                            f"{(want or {}).get('lineage')}, now {(have or {}).get('lineage')}); run plan again")
        raise PlanError(f"{path}: the state changed since the plan was made (serial {want.get('serial')}, now "
                        f"{have['serial']}); run plan again")
    if doc["manifest_sha256"] != manifest_sha256:
        raise PlanError(f"{path}: the compiled inputs changed since the plan was made; run plan again")


def to_plan(doc: dict[str, Any], *, desired: dict[str, Any], state: Any) -> Plan:
    """The saved plan as a Plan to execute: its actions and order, with today's desired
    resources (identical by the manifest check) and recorded state."""
    p = doc["plan"]
    current = state.resources if state is not None else {}
    changes = []
    for r in p["resources"]:
        addr = r["address"]
        d = desired.get(addr)
        if d is not None and d.content_hash != doc["content_hashes"].get(addr):
            raise PlanError(f"saved plan: {addr} no longer compiles to what the plan showed; run plan again")
        changes.append(Change(addr, r["type"], r["name"], Action(r["action"]), reason=r.get("reason", ""),
                              drift=bool(r.get("drift")), depends_on=list(r.get("depends_on", [])),
                              gates=list(r.get("gates", [])), blocked=bool(r.get("blocked")), spec=r.get("spec"),
                              desired=d, current=current.get(addr)))
    return Plan(p["env"], p["target"], p["refreshed"], p["state_serial"], dict(p["policy"]), changes,
                dict(p.get("capacity", {})), mode=p.get("mode", "normal"))


def _diffs(items: Any) -> list[FieldDiff]:
    return [FieldDiff(d["path"], d.get("before"), d.get("after"), d.get("op", "changed"), tuple(d.get("text", ())))
            for d in items or [] if isinstance(d, dict) and "path" in d]


def as_shown(doc: dict[str, Any]) -> Plan:
    """The saved plan as it was shown, field diffs included, for `specops show` (nothing is
    compiled or read: only the file)."""
    p = doc["plan"]
    changes = [Change(r["address"], r["type"], r["name"], Action(r["action"]), reason=r.get("reason", ""),
                      drift=bool(r.get("drift")), diffs=_diffs(r.get("diffs")), drift_diffs=_diffs(r.get("drift_diffs")),
                      depends_on=list(r.get("depends_on", [])), gates=list(r.get("gates", [])),
                      blocked=bool(r.get("blocked")), spec=r.get("spec"))
               for r in p["resources"]]
    return Plan(p["env"], p["target"], p["refreshed"], p["state_serial"], dict(p["policy"]), changes,
                dict(p.get("capacity", {})), mode=p.get("mode", "normal"))
