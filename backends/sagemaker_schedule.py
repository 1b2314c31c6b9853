"""EventBridge Scheduler requests that start SageMaker pipelines on a cron schedule.

SageMaker Pipelines has no cron of its own in the pipeline definition; the v3 SDK's
`PipelineSchedule` uses EventBridge Scheduler too. `schedule_request` is the
`scheduler.create_schedule(**request)` body (emitted as `schedule.json`), with the Unix
cron of the spec converted to EventBridge's six-field `cron(...)` form, in UTC.
"""

from __future__ import annotations

import re
from typing import Any

from specops.ir import Pipeline

_MACROS = {"@hourly": "0 * * * *", "@daily": "0 0 * * *", "@midnight": "0 0 * * *",
           "@weekly": "0 0 * * 0", "@monthly": "0 0 1 * *", "@yearly": "0 0 1 1 *",
           "@annually": "0 0 1 1 *"}
_DAYS = ("SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT")
_FIELD = re.compile(r"^[0-9A-Za-z*,/\-]+$")


def _dow_names(field: str) -> str:
    """Unix day-of-week (0-7, names) -> EventBridge names, as a sorted comma list."""
    days: set[int] = set()

    def day(tok: str) -> int:
        if tok.isdigit() and 0 <= int(tok) <= 7:
            return int(tok) % 7
        if tok.upper() in _DAYS:
            return _DAYS.index(tok.upper())
        raise ValueError(f"day of week '{tok}' is not 0-7 or SUN-SAT")

    for part in field.split(","):
        if "/" in part:
            raise ValueError("EventBridge has no step values ('/') in the day-of-week field")
        if "-" in part:
            a, b = (day(t) for t in part.split("-", 1))
            b = 7 if part.split("-", 1)[1] == "7" else b
            if a > b:
                raise ValueError(f"day-of-week range '{part}' runs backwards")
            days.update(d % 7 for d in range(a, b + 1))
        else:
            days.add(day(part))
    return ",".join(_DAYS[d] for d in sorted(days))


def eventbridge_cron(cron: str) -> str:
    """A Unix cron line (5 fields or an @macro) as an EventBridge `cron(...)` expression (UTC).

    EventBridge needs '?' in exactly one of day-of-month / day-of-week, so a cron that
    restricts both (Unix runs on either) cannot be expressed: ValueError says why.
    """
    text = _MACROS.get(cron.strip(), cron.strip())
    fields = text.split()
    if len(fields) != 5:
        raise ValueError("expected 5 fields (minute hour day-of-month month day-of-week)")
    if not all(_FIELD.match(f) for f in fields):
        raise ValueError("only digits, names, '*', ',', '-' and '/' are supported")
    minute, hour, dom, month, dow = fields
    # EventBridge spells an unbounded step with its first value ("0/5", not "*/5").
    minute, hour = (re.sub(r"^\*/", "0/", f) for f in (minute, hour))
    dom, month = (re.sub(r"^\*/", "1/", f) for f in (dom, month))
    if dow == "*":
        dow = "?"
    elif dom == "*":
        dom, dow = "?", _dow_names(dow)
    else:
        raise ValueError("it restricts both day-of-month and day-of-week")
    return f"cron({minute} {hour} {dom} {month.upper()} {dow} *)"


def schedule_request(pipeline: Pipeline, name: str, schedule_name: str) -> dict[str, Any] | None:
    """The CreateSchedule request that starts SageMaker pipeline `name`, or None unscheduled."""
    if pipeline.schedule is None:
        return None
    role = pipeline.target.role_arn or ""
    account = role.split(":")[4] if role.count(":") >= 5 else ""
    region = pipeline.target.region or ""
    return {
        "Name": schedule_name,
        "GroupName": "default",
        "ScheduleExpression": eventbridge_cron(pipeline.schedule.cron),
        "ScheduleExpressionTimezone": "UTC",
        "FlexibleTimeWindow": {"Mode": "OFF"},
        "State": "ENABLED",
        "Description": f"specops: start SageMaker pipeline {name} ({pipeline.schedule.cron})",
        "Target": {
            "Arn": f"arn:aws:sagemaker:{region}:{account}:pipeline/{name}",
            # The execution role must trust scheduler.amazonaws.com to be used here.
            "RoleArn": role,
            "SageMakerPipelineParameters": {"PipelineParameterList": []},
        },
    }
