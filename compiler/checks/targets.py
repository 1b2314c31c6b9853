"""Targets against the one backend registry: a Project may name any pipeline backend or
serving platform that is built in or registered by an installed plug-in (entry points), and
a misspelt one is an error at its line with "did you mean".

Declared is delivered: a target field its backend cannot carry (a backend module's
`unused_target_fields(target)`: a GCP project on SageMaker, an image registry for ZenML's
in-process orchestrator) is a warning at the field's line; target credentials a backend sends
(the KFP provider's bearer token) must be readable where specops runs, or it is an error there."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from pydantic.alias_generators import to_camel

from specops.backends.registry import (
    PIPELINE_BACKENDS,
    SERVING_PLATFORMS,
    pipeline_backend,
    pipeline_backend_names,
    serving_platform_names,
)
from specops.diagnostics import Diagnostic, Diagnostics, suggestion
from specops.paths import IGNORE_FILE, ignore_patterns
from specops.runtime.secrets import READABLE

if TYPE_CHECKING:
    from specops.resolve.refs import Resolved


def check_targets(resolved: "Resolved", out: Diagnostics) -> None:
    proj = resolved.repo.project()
    # A built-in name needs no scan of the installed packages' entry points (~10 ms, every
    # compile): the full lists are made only for a name that is not built in.
    backends, platforms = _Names(PIPELINE_BACKENDS, pipeline_backend_names), _Names(SERVING_PLATFORMS,
                                                                                     serving_platform_names)
    for name, target in sorted(resolved.project.targets.items()):
        if target.backend not in backends:
            out.add(Diagnostic("error", "value", f"target '{name}': unknown backend '{target.backend}'; expected one "
                               f"of {', '.join(backends)}" + suggestion(target.backend, backends),
                               proj.file, proj.doc.pos_of(("spec", "targets", name, "backend"))))
        else:
            _check_delivered(proj, name, target, out)
        _check_gitops_dir(resolved.repo.root, proj, name, target.serving.gitops_dir, out)
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


class _Names:
    """Built-in names, and the installed plug-ins' only when asked for (a list for messages,
    or a name that is not built in)."""

    def __init__(self, builtin: Any, everything: Any):
        self._builtin, self._everything = builtin, everything

    def __contains__(self, name: object) -> bool:
        return name in self._builtin or name in self._everything()

    def __iter__(self) -> Any:
        return iter(self._everything())


def _check_delivered(proj: Any, name: str, target: Any, out: Diagnostics) -> None:
    backend = pipeline_backend(target.backend)
    unused = getattr(backend, "unused_target_fields", None)
    reasons: dict[str, str] = unused(target) if callable(unused) else {}
    where = ("spec", "targets", name)
    for attr, why in sorted(reasons.items()):
        if getattr(target, attr, None) is not None:
            out.add(Diagnostic("warning", "unsupported", f"target '{name}': backend '{target.backend}' does not use "
                               f"`{to_camel(attr)}`: {why}", proj.file, proj.doc.pos_of(where + (to_camel(attr),))))
    cred = target.credentials
    if cred is None or "credentials" in reasons:
        return
    ref, at = cred.secret_ref, where + ("credentials", "secretRef")
    if ref.provider not in READABLE:
        out.add(Diagnostic("error", "unsupported", f"target '{name}': specops sends these credentials to the "
                           f"{target.backend} API itself, and cannot read a {ref.provider} secret; use one of "
                           f"{', '.join(READABLE)}", proj.file, proj.doc.pos_of(at + ("provider",))))
    elif ref.provider == "kubernetes" and not ref.key:
        out.add(Diagnostic("error", "missing-field", f"target '{name}': a kubernetes secretRef needs `key` (the "
                           "file of the mounted Secret)", proj.file, proj.doc.pos_of(at)))


def _check_gitops_dir(root: Path, proj: Any, name: str, gitops_dir: str | None, out: Diagnostics) -> None:
    """Manifests apply writes into a folder of the spec repo are read back as specs by the next
    run (and refused: they are not specops documents), unless the loader ignores that folder."""
    if not gitops_dir or "://" in gitops_dir or gitops_dir.startswith(("/", "git@")):
        return
    parts = [p for p in gitops_dir.replace("\\", "/").split("/") if p not in ("", ".")]
    if not parts or ".." in parts:
        return  # outside the spec repo (a sibling checkout): never discovered
    ignored, _ = ignore_patterns(root)
    if any(ignored("/".join(parts[: i + 1]) + "/") for i in range(len(parts))):
        return
    folder = "/".join(parts)
    out.add(Diagnostic("error", "value", f"target '{name}': apply writes manifests into '{folder}/', inside the spec "
                       f"repository, where the next run would read them as specs; add `{folder}/` to {IGNORE_FILE} "
                       "(or write them outside this folder)", proj.file,
                       proj.doc.pos_of(("spec", "targets", name, "serving", "gitopsDir"))))
