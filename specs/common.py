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

from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, Field, model_validator
from pydantic.alias_generators import to_camel
from pydantic_core import PydanticCustomError

from specops.redact import CRED_QUERY_KEYS

API_VERSION = "specops.dev/v1alpha1"

# DNS-1123 label: names become Kubernetes objects, KFP task names and SageMaker step names.
NAME_RE = re.compile(r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$")


class SpecModel(BaseModel):
    """Base of every spec model: camelCase keys, unknown keys forbidden, strict types.

    Each kind's top-level spec class is declared with `defer_build=True`: only its document
    model (envelope_model) validates it, and building the class's own validator too cost
    every process ~40 ms of CPU for a validator nothing ran. Nested classes are built at once:
    lower.py dumps some of them directly, and the envelopes reuse their built validators."""

    model_config = ConfigDict(
        extra="forbid",
        strict=True,
        alias_generator=to_camel,
        populate_by_name=False,
        frozen=True,
        # .inf and .nan are YAML floats but not JSON: they would reach step params and fail
        # inside an emitter instead of at the field's line.
        allow_inf_nan=False,
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


# ---- grammars of the names specops hands to other systems ------------------------------------
# Checked at validate time, at the value's line, against the grammar of the system that will
# receive the value: a name the registry would refuse after an hour of training, or an image
# reference a shell would split, never gets past `validate`. Each check bounds the length
# first, so no pattern ever runs on a long string.


def grammar(rx: re.Pattern[str], what: str, expected: str, max_len: int,
            extra: Any = None) -> AfterValidator:
    """A validator: `rx` must match the whole value (at most `max_len` characters), and
    `extra(value)` must return None (or a reason)."""

    def check(v: str) -> str:
        why = None
        if len(v) > max_len:
            why = f"longer than {max_len} characters"
        elif not rx.fullmatch(v):
            why = f"expected {expected}"
        elif extra is not None:
            why = extra(v)
        if why:
            raise PydanticCustomError("value", "invalid {what} '{value}': {why}",
                                      {"what": what, "value": v if len(v) <= 80 else v[:80] + "…", "why": why})
        return v

    return AfterValidator(check)


# OCI image references, as github.com/distribution/reference (regexp.go) defines them; the
# tests check this against docker-image-py, a port of that grammar (96 ms to import, so not
# used here: validate imports it on every run).
_ALNUM = r"[a-z0-9]+"
_PATH_COMPONENT = rf"{_ALNUM}(?:(?:[._]|__|-+){_ALNUM})*"
_DOMAIN_COMPONENT = r"(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])"
_DOMAIN = rf"(?:{_DOMAIN_COMPONENT}(?:\.{_DOMAIN_COMPONENT})*|\[[a-fA-F0-9:]+\])(?::[0-9]+)?"
# Without a registry, the first component may not hold a '.' before a '/': Docker and
# containerd take such a component for a registry host (splitDockerDomain), so `0.0_0/x`
# would name an invalid host, not a repository.
_REPO = rf"(?:{_DOMAIN}/|(?![^/]*\.[^/]*/)){_PATH_COMPONENT}(?:/{_PATH_COMPONENT})*"
_TAG = r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}"
_DIGEST = r"[A-Za-z][A-Za-z0-9]*(?:[-_+.][A-Za-z][A-Za-z0-9]*)*:[0-9a-fA-F]{32,}"
IMAGE_RE = re.compile(rf"(?P<name>{_REPO})(?::{_TAG})?(?:@{_DIGEST})?")
REPO_RE = re.compile(_REPO)


def _image_name_length(v: str) -> str | None:
    name = IMAGE_RE.fullmatch(v).group("name")  # type: ignore[union-attr]
    return "the repository name is longer than 255 characters" if len(name) > 255 else None


ImageRef = Annotated[str, grammar(IMAGE_RE, "image reference", "[registry/]repository[:tag][@digest], "
                                  "lowercase repository (OCI distribution reference)", 512, _image_name_length)]
# A registry and repository prefix images are pushed under (no tag).
ImageRepo = Annotated[str, grammar(REPO_RE, "image registry", "registry[/path], lowercase path", 255)]

# Kubernetes: DNS-1123 subdomain (Secret names), label keys and values.
_DNS_LABEL = r"[a-z0-9](?:[-a-z0-9]*[a-z0-9])?"
DNS_SUBDOMAIN_RE = re.compile(rf"{_DNS_LABEL}(?:\.{_DNS_LABEL})*")
_LABEL_NAME = r"[A-Za-z0-9](?:[-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?"
LABEL_KEY_RE = re.compile(rf"(?:(?=[^/]{{1,253}}/){_DNS_LABEL}(?:\.{_DNS_LABEL})*/)?{_LABEL_NAME}")
LABEL_VALUE_RE = re.compile(rf"(?:{_LABEL_NAME})?")
DnsSubdomain = Annotated[str, grammar(DNS_SUBDOMAIN_RE, "Kubernetes name",
                                      "lowercase letters, digits, '-' and '.' (DNS-1123 subdomain)", 253)]
LabelKey = Annotated[str, grammar(LABEL_KEY_RE, "Kubernetes label key",
                                  "[prefix/]name, name of letters, digits, '-', '_', '.' (at most 63)", 317)]
LabelValue = Annotated[str, grammar(LABEL_VALUE_RE, "Kubernetes label value",
                                    "letters, digits, '-', '_', '.', starting and ending alphanumeric", 63)]

# Environment variable names: POSIX (what a shell, SageMaker and Kubernetes all accept).
ENV_NAME_RE = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
EnvName = Annotated[str, grammar(ENV_NAME_RE, "environment variable name", "letters, digits and '_', "
                                 "not starting with a digit", 255)]

# Model registry names: one path segment of the local registry, an MLflow registered model
# name (no '/', ':' or '%'); SageMaker model package groups are stricter, checked per target.
REGISTRY_NAME_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}")
RegistryName = Annotated[str, grammar(REGISTRY_NAME_RE, "registry name",
                                      "letters, digits, '.', '_' and '-', starting with a letter or digit",
                                      128, lambda v: "'..' is not allowed" if ".." in v else None)]


def _mlflow_alias(v: str) -> str | None:
    # MLflow reserves `latest` and version-like aliases (`v3`): they would shadow versions.
    if v.lower() == "latest" or re.fullmatch(r"[vV]\d+", v):
        return "MLflow reserves 'latest' and aliases of the form v<number>"
    return None


ALIAS_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]{0,127}")
AliasName = Annotated[str, grammar(ALIAS_RE, "registry alias", "letters, digits, '_' and '-' "
                                   "(MLflow alias)", 128, _mlflow_alias)]
# Prompt labels (Langfuse-style: `latest`, `production`). Each becomes an MLflow prompt alias
# `<env>-<label>`, and MLflow aliases allow letters, digits, '_' and '-' only.
PROMPT_LABEL_RE = re.compile(r"[a-z0-9][a-z0-9_-]{0,62}")
PromptLabel = Annotated[str, grammar(PROMPT_LABEL_RE, "prompt label", "lowercase letters, digits, "
                                     "'_' and '-' (it becomes an MLflow alias)", 63)]

# Dataset split names become file names of the data_check step (runtime/data_check.py
# refuses anything else, after the pipeline has started).
SplitName = Annotated[str, grammar(re.compile(r"[a-z][a-z0-9_-]{0,62}"), "split name",
                                   "lowercase letters, digits, '_' and '-', starting with a letter", 63)]

# Hugging Face repo ids (huggingface_hub.utils.validate_repo_id), for hf:// URIs.
HF_REPO_RE = re.compile(r"(?:[A-Za-z0-9][\w.-]{0,95}/)?[A-Za-z0-9][\w.-]{0,95}")

# Cloud identifiers.
ROLE_ARN_RE = re.compile(r"arn:aws[a-z-]*:iam::\d{12}:role/[\w+=,.@/-]{1,512}")
RoleArn = Annotated[str, grammar(ROLE_ARN_RE, "role ARN", "arn:aws:iam::<account>:role/<name>", 600)]
REGION_RE = re.compile(r"[a-z]{2,}(?:-[a-z0-9]+){1,3}")
Region = Annotated[str, grammar(REGION_RE, "region", "a cloud region such as us-east-1 or us-central1", 64)]
GCP_PROJECT_RE = re.compile(r"[a-z][a-z0-9-]{4,28}[a-z0-9]")
GcpProject = Annotated[str, grammar(GCP_PROJECT_RE, "GCP project id", "6-30 lowercase letters, digits "
                                    "and '-', starting with a letter", 30)]
INSTANCE_TYPE_RE = re.compile(r"[a-z0-9]+(?:[.-][a-z0-9]+)*")
InstanceType = Annotated[str, grammar(INSTANCE_TYPE_RE, "instance type", "e.g. ml.g5.2xlarge", 64)]
S3_BUCKET_RE = re.compile(r"[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]")
S3Bucket = Annotated[str, grammar(S3_BUCKET_RE, "S3 bucket name", "3-63 lowercase letters, digits, "
                                  "'.' and '-'", 63, lambda v: "'..' is not allowed" if ".." in v else None)]
KEY_PREFIX_RE = re.compile(r"[A-Za-z0-9!_.*'()/-]{1,512}")
KeyPrefix = Annotated[str, grammar(KEY_PREFIX_RE, "object key prefix", "letters, digits and !_.*'()/-",
                                   512, lambda v: "'..' is not allowed" if ".." in v.split("/") else None)]

# References name another spec of a given kind; existence and kind are checked by the
# resolver (they need the whole repo), the shape here.
Ref = Name

URI_SCHEMES = ("s3", "gs", "file", "hf", "https", "http", "az", "abfss", "dbfs")


_URI_CHARS = re.compile(r"[^\s\x00-\x1f\x7f]{1,4096}")
_HOST_RE = re.compile(rf"(?:{_DOMAIN_COMPONENT}(?:\.{_DOMAIN_COMPONENT})*|\[[a-fA-F0-9:]+\])(?::[0-9]{{1,5}})?")


def _uri_host_problem(parts: Any) -> str | None:
    """What is wrong with a URI's bucket / host / repo id, by its scheme's grammar."""
    scheme, host, path = parts.scheme, parts.netloc, parts.path.strip("/")
    if scheme == "s3" and (not S3_BUCKET_RE.fullmatch(host) or ".." in host):
        return "an S3 bucket name (3-63 lowercase letters, digits, '.' and '-')"
    if scheme == "gs" and not re.fullmatch(r"[a-z0-9][a-z0-9._-]{1,220}[a-z0-9]", host):
        return "a GCS bucket name (lowercase letters, digits, '.', '_' and '-')"
    if scheme in ("https", "http", "az", "abfss") and not _HOST_RE.fullmatch(host.rsplit("@", 1)[-1]):
        return "a host name"
    if scheme == "hf":
        repo = f"{host}/{path}" if path else host
        repo = repo.removeprefix("datasets/").split("@", 1)[0]
        if not HF_REPO_RE.fullmatch(repo) or ".." in repo:
            return "a Hugging Face repo id (hf://[datasets/]org/name[@revision])"
    return None


def _check_uri(v: str) -> str:
    if not _URI_CHARS.fullmatch(v):
        raise PydanticCustomError("value", "URI holds whitespace or control characters (or is longer than "
                                  "4096 characters)")
    try:
        parts = urlsplit(v)
        has_password = parts.password is not None
        user = parts.username
    except ValueError as e:  # a malformed port or IPv6 literal
        raise PydanticCustomError("value", "malformed URI: {why}", {"why": str(e)}) from None
    if has_password or (user and parts.scheme in ("https", "http")):
        # Before the scheme: a credential is the bigger problem, and the message never echoes it.
        raise PydanticCustomError(
            "credentials-in-uri",
            "URI embeds credentials; put them in a secret and reference it with `credentials: "
            "{secretRef: ...}`",
        )
    if parts.scheme not in URI_SCHEMES:
        raise PydanticCustomError(
            "value", "unsupported URI scheme in '{uri}'; use one of {schemes}",
            {"uri": v, "schemes": ", ".join(f"{s}://" for s in URI_SCHEMES)},
        )
    if (problem := _uri_host_problem(parts)) is not None:
        raise PydanticCustomError("value", "invalid {scheme}:// URI '{uri}': expected {what}",
                                  {"scheme": parts.scheme, "uri": v, "what": problem})
    for key, _ in parse_qsl(parts.query, keep_blank_values=True):
        if key.lower() in CRED_QUERY_KEYS:
            raise PydanticCustomError(
                "credentials-in-uri",
                "URI query parameter '{key}' carries a credential; reference a secret instead",
                {"key": key},
            )
    return v


Uri = Annotated[str, AfterValidator(_check_uri)]


# Secret names as each secret store defines them.
_SECRET_NAMES: dict[str, tuple[re.Pattern[str], str]] = {
    "kubernetes": (DNS_SUBDOMAIN_RE, "a Kubernetes Secret name (DNS-1123 subdomain)"),
    "env": (ENV_NAME_RE, "an environment variable name"),
    "aws-secrets-manager": (re.compile(r"[A-Za-z0-9/_+=.@-]{1,512}|arn:aws[a-z-]*:secretsmanager:[a-z0-9-]+:"
                                       r"\d{12}:secret:[A-Za-z0-9/_+=.@-]{1,512}"),
                            "an AWS Secrets Manager name or ARN"),
    "gcp-secret-manager": (re.compile(r"[A-Za-z0-9_-]{1,255}|projects/[a-z0-9-]{1,30}/secrets/[A-Za-z0-9_-]{1,255}"
                                      r"(?:/versions/(?:latest|\d+))?"), "a GCP Secret Manager secret id"),
    "vault": (re.compile(r"[A-Za-z0-9_.-]+(?:/[A-Za-z0-9_.-]+)*"), "a Vault secret path"),
}
_K8S_SECRET_KEY_RE = re.compile(r"[-._a-zA-Z0-9]{1,253}")


class SecretKeyRef(SpecModel):
    """Where a secret lives. specops never reads it at compile time; backends mount it."""

    provider: Literal["env", "kubernetes", "aws-secrets-manager", "gcp-secret-manager", "vault"] = "kubernetes"
    # Secret name (env var name for provider `env`).
    name: str = Field(min_length=1, max_length=1024)
    # Key inside the secret (JSON key, k8s data key); unused for `env`.
    key: str | None = Field(default=None, min_length=1, max_length=253)

    @model_validator(mode="after")
    def _grammar(self) -> "SecretKeyRef":
        rx, what = _SECRET_NAMES[self.provider]
        if not rx.fullmatch(self.name) or ".." in self.name.split("/"):
            raise PydanticCustomError("value", "invalid secret name '{name}' for provider '{provider}': "
                                      "expected {what}", {"name": self.name, "provider": self.provider, "what": what})
        if self.provider == "kubernetes" and self.key is not None and not _K8S_SECRET_KEY_RE.fullmatch(self.key):
            raise PydanticCustomError("value", "invalid Secret key '{key}': letters, digits, '-', '_' and '.'",
                                      {"key": self.key})
        return self


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
    # Kubernetes labels and annotations of what specops deploys: their grammar.
    labels: dict[LabelKey, LabelValue] = Field(default_factory=dict)
    annotations: dict[LabelKey, str] = Field(default_factory=dict)
    description: str | None = None


# Kubernetes resource quantities, the form every backend converts from (KFP's float fields,
# ZenML's byte counts, SageMaker's instance sizing).
_NUMBER = r"(?:\d+(?:\.\d+)?|\.\d+)"


def _positive(v: str) -> str | None:
    return "it must be more than 0" if float(re.match(_NUMBER, v).group()) == 0 else None  # type: ignore[union-attr]


_cpu_text = grammar(re.compile(_NUMBER + "m?"), "CPU quantity", "cores ('2', '0.5') or millicores ('500m')",
                    32, _positive).func


def _check_cpu(v: int | float | str) -> int | float | str:
    if isinstance(v, (int, float)):  # cores as YAML reads `cpu: 2` or `cpu: 0.5`
        return v if 0 < v < 1e6 else _cpu_text(str(v))
    return _cpu_text(v)


# One type for `2`, `0.5` and `"500m"`, so a wrong value is one error, not one per member.
CpuQuantity = Annotated[int | float | str, AfterValidator(_check_cpu)]
MemoryQuantity = Annotated[str, grammar(re.compile(_NUMBER + "(?:[KMGTPE]i|[kKMGTPE])?"), "memory quantity",
                                        "bytes with an optional unit ('8Gi', '512Mi', '4G')", 32, _positive)]


class Resources(SpecModel):
    """Compute for a step or a serving replica."""

    cpu: CpuQuantity | None = None
    memory: MemoryQuantity | None = None
    accelerator: Accelerator | None = None
    # Backend instance type when the target needs one (SageMaker 'ml.g5.2xlarge').
    instance_type: InstanceType | None = None


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
