"""Names checked against the rules of the system an environment hands them to.

The spec models check each name against the grammar every backend accepts (specs/common.py);
what only one backend refuses is checked here, per environment, so the error names the
environment and its target instead of failing at the register step after training.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

from specops.checks.common import at
from specops.diagnostics import Diagnostic, Diagnostics

if TYPE_CHECKING:
    from specops.frontend.overrides import Node
    from specops.resolve.refs import EnvView

# SageMaker ModelPackageGroupName (CreateModelPackageGroup API reference).
SAGEMAKER_NAME_RE = re.compile(r"[a-zA-Z0-9](?:-*[a-zA-Z0-9]){0,62}")


def check_registry_name(view: "EnvView", node: "Node", out: Diagnostics) -> None:
    """A Model's registry name on a SageMaker target is a model package group name."""
    if view.target is None or view.target.backend != "sagemaker":
        return
    name = node.spec.registry.name or node.name
    if len(name) <= 63 and SAGEMAKER_NAME_RE.fullmatch(name):
        return
    msg = (f"registry name '{name}' is not a SageMaker model package group name (environment "
           f"'{view.name}', target '{view.target_name}'): letters, digits and '-', at most 63 characters")
    if node.spec.registry.name:
        out.add(at(node, ("registry", "name"), "value", msg))
    else:  # the Model's own name stands in: say where to change it
        out.add(Diagnostic("error", "value", msg + "; set `registry.name`", node.file,
                           node.doc.pos_of(("metadata", "name"))))
