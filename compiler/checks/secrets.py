"""Secrets in specs: a credential committed to git leaks into every artifact and every log.

Two checks:
- plaintext secrets anywhere in a document: a credential-shaped value or mapping key (see
  `specops.redact` for the shapes), or a plain string under a key that names a secret
  (`DB_PASSWORD` in `command.env`). Pin and digest fields (`revision`, `sha256`, `etag`…) and
  hex-only strings are identifiers, never secrets.
- secret references that the serving platform cannot deliver: a `secretRef` is mounted as
  written or reported at its line, never silently replaced by a default.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Iterator

from specops.checks.common import at, doc_offset_pos
from specops.checks.records import CheckRecords, replayed
from specops.diagnostics import Diagnostic, Diagnostics
from specops.redact import may_hold_shapes, may_name_secrets, pin_key, secret_key, secret_shape
from specops.runtime.secrets import READABLE

if TYPE_CHECKING:
    from specops.frontend.overrides import Node
    from specops.resolve.refs import EnvView, Resolved

_ADVICE = "never commit secrets — store it in a secret manager and use `secretRef`"
_ENV_ADVICE = ("`command.env` is compiled into the pipeline definition in clear text; never commit "
               "secrets — let the platform give the step its credentials (a Kubernetes Secret, the "
               "job's IAM role or service account)")


def _walk(data: Any, path: tuple = ()) -> Iterator[tuple[tuple, str, Any]]:
    """(path of the mapping, key, value) for every mapping entry, depth first in file order."""
    if isinstance(data, dict):
        for k, v in data.items():
            yield path, k, v
            yield from _walk(v, path + (k,))
    elif isinstance(data, list):
        for i, v in enumerate(data):
            if isinstance(v, str):
                yield path, i, v
            else:
                yield from _walk(v, path + (i,))
    elif isinstance(data, str) and not path:
        yield (), "", data


def check_plaintext_secrets(resolved: "Resolved", out: Diagnostics, records: CheckRecords | None = None) -> None:
    """Every document, file by file. With `records` (semantics.CheckRecords), a file whose
    bytes were checked last time gives what it gave then (its documents and their
    positions are functions of its bytes)."""
    files = resolved.repo.files
    by_file: dict[str, list[Any]] = {}
    for s in resolved.repo.specs:
        by_file.setdefault(s.file, []).append(s)
    for rel, specs in by_file.items():
        scope = records.file(rel) if records is not None and rel in files else None
        replayed(records, scope, "plaintext-secrets", out,
                 lambda o, rel=rel, specs=specs: _check_file(files.get(rel), specs, o))


def _check_file(raw: bytes | None, specs: list[Any], out: Diagnostics) -> None:
    # Quick tests per file: the usual file holds nothing to look at, and most others only a
    # key that names a secret (`hfToken`, `credentials`): their strings need no shape search.
    shapes = raw is None or may_hold_shapes(raw)
    if not shapes and not may_name_secrets(raw):  # type: ignore[arg-type]
        return
    for s in specs:
        doc = s.doc
        for parent, key, value in _walk(doc.data):
            path = parent + (key,)
            if shapes and isinstance(key, str) and (found := secret_shape(key)):
                out.add(Diagnostic("error", "plaintext-secret", f"this key looks like {found[0]}; {_ADVICE}",
                                   s.file, doc_offset_pos(doc, path, found[1], key=True, length=found[2] - found[1])))
                continue
            if not isinstance(value, str) or not value.strip():
                continue
            if isinstance(key, str) and pin_key(key):
                continue  # revisions, digests, ETags, run ids: identifiers, never secrets
            if shapes and (found := secret_shape(value)):
                out.add(Diagnostic("error", "plaintext-secret", f"this value looks like {found[0]}; {_ADVICE}",
                                   s.file, doc_offset_pos(doc, path, found[1], length=found[2] - found[1])))
            elif isinstance(key, str) and secret_key(key):
                in_env = len(parent) >= 1 and parent[-1] == "env"
                out.add(Diagnostic("error", "plaintext-secret",
                                   f"'{key}' holds a plaintext value; " + (_ENV_ADVICE if in_env else _ADVICE),
                                   s.file, doc.pos_of(path)))


# Serving platforms that mount the Hugging Face token from a Kubernetes Secret.
_K8S_PLATFORMS = ("kubernetes", "kserve", "helm")


def check_secret_refs(view: "EnvView", node: "Node", out: Diagnostics) -> None:
    """A ServingTarget's `hfToken` reaches its platform as written, or is reported here."""
    ref = node.spec.hf_token
    if ref is None or view.target is None:
        return
    platform = node.spec.platform or view.target.serving.platform
    provider = ref.secret_ref.provider
    where = ("hfToken", "secretRef", "provider") if "provider" in _secret_ref_keys(node) else ("hfToken",)
    if platform in _K8S_PLATFORMS and provider != "kubernetes":
        out.add(at(node, where, "unsupported",
                   f"serving platform '{platform}' (environment '{view.name}') mounts the Hugging Face token "
                   f"from a Kubernetes Secret; a secretRef with provider '{provider}' cannot reach the pod",
                   notes=("use `provider: kubernetes` with the Secret's name and key (sync it from your "
                          "secret manager with e.g. the External Secrets Operator)",)))
    elif platform == "sagemaker":
        # A warning: the endpoint is still created, and weights staged in S3 need no token.
        out.add(at(node, where, "unsupported",
                   f"serving platform 'sagemaker' (environment '{view.name}') does not pass this Hugging Face "
                   "token to the endpoint; gated weights must be staged in S3", severity="warning"))
    elif platform == "local":
        out.add(at(node, where, "unsupported",
                   f"serving platform 'local' (environment '{view.name}') deploys nothing: `vllm serve` "
                   "reads HF_TOKEN from your own environment, not from this secretRef", severity="warning"))


def _secret_ref_keys(node: "Node") -> set[str]:
    raw = node.doc.data.get("spec", {}) if isinstance(node.doc.data, dict) else {}
    ref = (raw.get("hfToken") or {}).get("secretRef") if isinstance(raw.get("hfToken"), dict) else None
    return set(ref) if isinstance(ref, dict) else set()


def check_notifier_refs(resolved: "Resolved", out: Diagnostics) -> None:
    """A notifier reads its webhook URL (and signing key) when it sends: only from a secret
    store the runtime can read (specops.runtime.secrets.READABLE); a mounted Kubernetes Secret
    needs the key that names its file."""
    proj = resolved.repo.project()
    for name, n in sorted(resolved.project.notifications.items()):
        for field_, ref in (("url", n.webhook.url), ("signingKey", n.webhook.signing_key)):
            if ref is None:
                continue
            where = ("spec", "notifications", name, "webhook", field_, "secretRef")
            sref = ref.secret_ref
            if sref.provider not in READABLE:
                out.add(Diagnostic("error", "unsupported",
                                   f"notifier '{name}': a {sref.provider} secret cannot be read when the notifier "
                                   f"sends; use one of {', '.join(READABLE)}",
                                   proj.file, proj.doc.pos_of(where + ("provider",))))
            elif sref.provider == "kubernetes" and not sref.key:
                out.add(Diagnostic("error", "missing-field",
                                   f"notifier '{name}': a kubernetes secretRef needs `key` (the file of the "
                                   "mounted Secret)", proj.file, proj.doc.pos_of(where)))
