"""The backend-neutral IR (`nodes`) and lowering to it (`lower`).

The node types are re-exported here: backends read `specops.ir.Pipeline` and friends. This
module imports only the standard library, so backends stay light.
"""

from specops.ir.nodes import (
    Adapter,
    Backend,
    EnvVar,
    ModelCache,
    Pipeline,
    Resources,
    Schedule,
    Serving,
    Source,
    Step,
    StepKind,
    Target,
    fingerprint,
)

__all__ = ["Adapter", "Backend", "EnvVar", "ModelCache", "Pipeline", "Resources", "Schedule", "Serving", "Source", "Step", "StepKind",
           "Target", "fingerprint"]
