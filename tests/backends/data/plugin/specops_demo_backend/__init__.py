"""A third-party pipeline backend: one module with the registry's small surface. It emits the
IR pipeline as JSON, and cannot express schedules (a capability diagnostic at the spec line; a
monitor's schedule goes to the host's scheduler, as `can_schedule` says)."""

import json
from dataclasses import asdict

from specops.diagnostics import Diagnostic, Pos

NAME = "demo"
FORMAT = "demo pipeline JSON (the IR as data)"
RESOURCE_TYPE = "demo_pipeline"
PROVIDER = "specops_demo_backend"
RUNS_ON_APPLY = False


def check(pipeline):
    if pipeline.schedule is None:
        return []
    src = pipeline.schedule.source
    return [Diagnostic("error", "unsupported", "demo: no schedules", src.file, Pos(src.line, src.col))]


def can_schedule(pipeline):
    return False


def emit(pipeline):
    steps = [{"name": s.name, "kind": s.kind, "after": list(s.depends_on)} for s in pipeline.steps]
    doc = {"pipeline": pipeline.name, "env": pipeline.env, "steps": steps, "target": asdict(pipeline.target)}
    return {"pipeline.json": (json.dumps(doc, indent=2, sort_keys=True, default=str) + "\n").encode()}
