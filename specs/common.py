"""Shared pieces of the spec language: the envelope, names, URIs, secret references.

These are pydantic models of the YAML *as written*: keys are camelCase, unknown keys are
forbidden and types are strict (YAML already yields the right Python types; a float where a
string belongs is an error, not a silent coercion). Errors raised by validators use
`PydanticCustomError` whose type is a specops diagnostic code, so the loader can report them
with the right code at the right position.
"""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal
from urllib.parse import parse_qsl, urlsplit

from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, Field
from pydantic.alias_generators import to_camel
from pydantic_core import PydanticCustomError

API_VERSION = "specops.dev/v1alpha1"

# DNS-1123 label: names become Kubernetes objects, KFP task names and SageMaker step names.
NAME_RE = re.compile(r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$")


class SpecModel(BaseModel):
    """Base of every spec model: camelCase keys, unknown keys forbidden, strict types."""

    model_config = ConfigDict(
        extra="forbid",
        strict=True,
        alias_generator=to_camel,
        populate_by_name=False,
        frozen=True,
    )


def _check_name(v: str) -> str:
    if not NAME_RE.match(v):
        raise PydanticCustomError(
            "value",
            "invalid name '{name}': use lowercase letters, digits and '-', starting and ending "
            "with a letter or digit, at most 63 characters",
            {"name": v},
        )
    return v


Name = Annotated[str, AfterValidator(_check_name)]

# References name another spec of a given kind; existence and kind are checked by the
# resolver (they need the whole repo), the shape here.
Ref = Name

_CRED_QUERY_KEYS = {"password", "passwd", "token", "access_token", "sig", "signature",
                    "x-amz-signature", "x-amz-credential", "x-goog-signature", "secret",
                    "access_key", "secret_key", "api_key", "apikey"}
URI_SCHEMES = ("s3", "gs", "file", "hf", "https", "http", "az", "abfss", "dbfs")


def _check_uri(v: str) -> str:
    parts = urlsplit(v)
    if parts.scheme not in URI_SCHEMES:
        raise PydanticCustomError(
            "value", "unsupported URI scheme in '{uri}'; use one of {schemes}",
            {"uri": v, "schemes": ", ".join(f"{s}://" for s in URI_SCHEMES)},
        )
    if parts.password is not None or (parts.username and parts.scheme in ("https", "http")):
        raise PydanticCustomError(
            "credentials-in-uri",
            "URI embeds credentials; put them in a secret and reference it with `credentials: "
            "{secretRef: ...}`",
        )
    for key, _ in parse_qsl(parts.query, keep_blank_values=True):
        if key.lower() in _CRED_QUERY_KEYS:
            raise PydanticCustomError(
                "credentials-in-uri",
                "URI query parameter '{key}' carries a credential; reference a secret instead",
                {"key": key},
            )
    return v


Uri = Annotated[str, AfterValidator(_check_uri)]


class SecretKeyRef(SpecModel):
    """Where a secret lives. specops never reads it at compile time; backends mount it."""

    provider: Literal["env", "kubernetes", "aws-secrets-manager", "gcp-secret-manager", "vault"] = "kubernetes"
    # Secret name (env var name for provider `env`).
    name: str = Field(min_length=1)
    # Key inside the secret (JSON key, k8s data key); unused for `env`.
    key: str | None = None


class SecretRef(SpecModel):
    secret_ref: SecretKeyRef


def _reject_plaintext(v: Any) -> Any:
    if isinstance(v, (str, int, float)) and not isinstance(v, bool):
        raise PydanticCustomError(
            "plaintext-secret",
            "plaintext value in a secret field; write `{secretRef: {name: ..., key: ...}}` "
            "and keep the value in your secret store",
        )
    return v


# A field that holds a secret accepts only a reference to one.
Secret = Annotated[SecretRef, BeforeValidator(_reject_plaintext)]


def _check_repo_path(v: str) -> str:
    if v.startswith("/") or re.match(r"^[A-Za-z]:[\\/]", v) or ".." in re.split(r"[\\/]", v):
        raise PydanticCustomError(
            "path-escape", "path '{path}' must be relative and stay inside the repository", {"path": v}
        )
    return v


# A path inside the spec repository (relative to the repo root).
RepoPath = Annotated[str, AfterValidator(_check_repo_path)]


class Metadata(SpecModel):
    name: Name
    labels: dict[str, str] = Field(default_factory=dict)
    annotations: dict[str, str] = Field(default_factory=dict)
    description: str | None = None


class Resources(SpecModel):
    """Compute for a step or a serving replica."""

    cpu: str | int | None = None
    memory: str | None = None
    accelerator: Accelerator | None = None
    # Backend instance type when the target needs one (SageMaker 'ml.g5.2xlarge').
    instance_type: str | None = None


class Accelerator(SpecModel):
    # GPU type from the catalogue (L4, A10G, H100...); checked by the resolver.
    type: str
    count: int = Field(default=1, ge=1, le=64)


Resources.model_rebuild()


def envelope_model(kind: str, spec_model: type[BaseModel]) -> type[BaseModel]:
    """The `apiVersion/kind/metadata/spec` document model for one kind."""

    from pydantic import create_model

    return create_model(
        kind,
        __base__=SpecModel,
        api_version=(Literal["specops.dev/v1alpha1"], ...),
        kind=(Literal[kind], ...),  # type: ignore[valid-type]
        metadata=(Metadata, ...),
        spec=(spec_model, ...),
        # The environments this spec exists in (all when absent).
        environments=(list[Name] | None, None),
        # Per-environment partial specs, deep-merged over `spec` when rendering that env.
        overrides=(dict[str, dict[str, Any]], Field(default_factory=dict)),
    )
