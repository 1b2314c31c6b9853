"""Target names against the one backend registry: a Project may name any pipeline backend or
serving platform that is built in or registered by an installed plug-in (entry points), and
a misspelt one is an error at its line with "did you mean"."""

from __future__ import annotations

from typing import TYPE_CHECKING

from specops.backends.registry import pipeline_backend_names, serving_platform_names
from specops.diagnostics import Diagnostic, Diagnostics, suggestion

if TYPE_CHECKING:
    from specops.resolve.refs import Resolved


def check_targets(resolved: "Resolved", out: Diagnostics) -> None:
    proj = resolved.repo.project()
    backends, platforms = pipeline_backend_names(), serving_platform_names()
    for name, target in sorted(resolved.project.targets.items()):
        if target.backend not in backends:
            out.add(Diagnostic("error", "value", f"target '{name}': unknown backend '{target.backend}'; expected one "
                               f"of {', '.join(backends)}" + suggestion(target.backend, backends),
                               proj.file, proj.doc.pos_of(("spec", "targets", name, "backend"))))
        if target.serving.platform not in platforms:
            out.add(Diagnostic("error", "value", f"target '{name}': unknown serving platform "
                               f"'{target.serving.platform}'; expected one of {', '.join(platforms)}"
                               + suggestion(target.serving.platform, platforms),
                               proj.file, proj.doc.pos_of(("spec", "targets", name, "serving", "platform"))))
    seen: set[int] = set()
    for view in resolved.envs.values():
        for node in view.of_kind("ServingTarget"):
            platform = node.spec.platform
            if platform is None or platform in platforms or id(node.doc) in seen:
                continue
            seen.add(id(node.doc))
            out.add(Diagnostic("error", "value", f"unknown serving platform '{platform}'; expected one of "
                               f"{', '.join(platforms)}" + suggestion(platform, platforms),
                               node.file, node.doc.pos_of(("spec", "platform"))))
