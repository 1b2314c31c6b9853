"""Provider `cloudwatch_alarms`: a Monitor's CloudWatch alarms on a SageMaker endpoint (plan/apply).

The resource is `cloudwatch_alarms.<monitor>` with the one artifact `cloudwatch-alarms.json`
(`backends/cloudwatch.py`: a list of `put_metric_alarm` request bodies).

- read(): `describe_alarms` for the recorded alarm names (the desired ones before the first
  apply), each answer cut to its request's fields. When every alarm still holds what was
  applied, the live hash is the recorded one; an alarm edited (another threshold, period,
  statistic) or deleted behind specops's back gives a hash of what is live instead, which
  no desired hash equals: plan shows drift, field by field. Tags are not part of the
  comparison (describe_alarms does not return them; put_metric_alarm sets them on create).
- apply(): `put_metric_alarm` for each alarm that is missing or differs (it creates or
  overwrites, so a retry is harmless), then `delete_alarms` for the alarms recorded in state
  that the spec no longer declares. delete(): `delete_alarms` for the recorded names that exist.

AWS plumbing (clients, retries, one-line errors) is the SageMaker provider's (`_AwsBase`).
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

from specops.backends.cloudwatch import ALARMS_FILE
from specops.backends.provider import Desired, Live, ProviderError
from specops.backends.sagemaker_provider import _AwsBase, _file, _project, aws_call

if TYPE_CHECKING:
    from specops import ir
    from specops.state import ResourceState

# describe_alarms / delete_alarms take at most 100 names per call.
_BATCH = 100
# Request fields a describe_alarms answer does not carry back.
_WRITE_ONLY = ("Tags",)


def _requests(desired: Desired) -> list[dict[str, Any]]:
    try:
        reqs = json.loads(_file(desired, ALARMS_FILE))
        if not isinstance(reqs, list) or not all(isinstance(r, dict) and "AlarmName" in r for r in reqs):
            raise ValueError("not a list of put_metric_alarm requests")
    except ValueError as e:
        raise ProviderError(f"{desired.address}: {ALARMS_FILE} is not the emitted request list ({e})") from None
    return reqs


def _comparable(req: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in req.items() if k not in _WRITE_ONLY}


def _names(current: ResourceState | None) -> list[str]:
    return [n for n in (current.ids.get("alarms", "") if current is not None else "").split(",") if n]


class CloudWatchAlarmsProvider(_AwsBase):
    TYPE = "cloudwatch_alarms"

    def _live(self, names: list[str]) -> dict[str, dict[str, Any]]:
        cw = self.client("cloudwatch")
        out: dict[str, dict[str, Any]] = {}
        for i in range(0, len(names), _BATCH):
            batch = names[i:i + _BATCH]
            page = aws_call("describe_alarms", lambda b=batch: cw.describe_alarms(AlarmNames=b, MaxRecords=_BATCH))
            out.update({a["AlarmName"]: a for a in page.get("MetricAlarms", [])})
        return out

    def read(self, desired: Desired | None, current: ResourceState | None) -> Live:
        recorded = (current.attributes or {}).get(ALARMS_FILE) if current is not None else None
        want = [_comparable(r) for r in (recorded if isinstance(recorded, list) else
                                         _requests(desired) if desired is not None else [])]
        names = sorted({r["AlarmName"] for r in want} | set(_names(current)))
        live = self._live(names)
        if not live:
            return Live(exists=False)
        # A deleted alarm keeps its name, so the diff pairs it up and shows every field removed.
        seen = [_project(live[r["AlarmName"]], r) if r["AlarmName"] in live else {"AlarmName": r["AlarmName"]}
                for r in want]
        extra = sorted(set(live) - {r["AlarmName"] for r in want})
        ids = {"alarms": ",".join(sorted(live))}
        if seen == want and not extra:
            if current is not None and isinstance(recorded, list):
                return Live(exists=True, content_hash=current.content_hash, attributes={ALARMS_FILE: recorded}, ids=ids)
            if desired is not None:  # exists live with exactly this content, not yet in state
                return Live(exists=True, content_hash=desired.content_hash, attributes=desired.attributes, ids=ids)
        # Shown with the tags as recorded: only what describe_alarms reports is compared.
        shown = [{**s, **{k: r[k] for k in _WRITE_ONLY if k in r}} if len(s) > 1 else s
                 for s, r in zip(seen, recorded if isinstance(recorded, list) else want)]
        content = hashlib.sha256(("alarms " + json.dumps([seen, extra], sort_keys=True, default=str)).encode()).hexdigest()
        return Live(exists=True, content_hash=content, attributes={ALARMS_FILE: shown}, ids=ids)

    def apply(self, desired: Desired, current: ResourceState | None) -> tuple[dict[str, str], dict[str, Any]]:
        reqs = _requests(desired)
        cw = self.client("cloudwatch")
        live = self._live(sorted({r["AlarmName"] for r in reqs} | set(_names(current))))
        outputs: dict[str, Any] = {"created": [], "updated": [], "unchanged": [], "deleted": []}
        for r in reqs:
            name = r["AlarmName"]
            have = live.get(name)
            if have is not None and _project(have, _comparable(r)) == _comparable(r):
                outputs["unchanged"].append(name)
                continue
            aws_call(f"put_metric_alarm {name}", lambda r=r: cw.put_metric_alarm(**r))
            outputs["created" if have is None else "updated"].append(name)
        # Only what exists: DeleteAlarms refuses the whole call when one name is unknown.
        gone = sorted((set(_names(current)) - {r["AlarmName"] for r in reqs}) & set(live))
        if gone:
            self._delete(gone)
            outputs["deleted"] = gone
        return {"alarms": ",".join(sorted(r["AlarmName"] for r in reqs))}, outputs

    def _delete(self, names: list[str]) -> None:
        cw = self.client("cloudwatch")
        for i in range(0, len(names), _BATCH):
            batch = names[i:i + _BATCH]
            aws_call("delete_alarms", lambda b=batch: cw.delete_alarms(AlarmNames=b))

    def delete(self, current: ResourceState) -> None:
        names = sorted(self._live(_names(current)))
        if names:
            self._delete(names)


def provider(type: str, *, env: str, target: ir.Target, root: Path, options: dict) -> CloudWatchAlarmsProvider:
    """Factory used by `specops.backends.provider.make_provider`."""
    if type != CloudWatchAlarmsProvider.TYPE:
        raise ProviderError(f"specops.backends.cloudwatch_provider has no resource type '{type}'")
    return CloudWatchAlarmsProvider(env=env, target=target, root=root, options=options)
