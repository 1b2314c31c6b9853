"""Reading a secret reference at run time (specops never reads one at compile time).

A `secretRef` names where a secret lives; the process that needs the value reads it there,
when it needs it, and never prints it:

- `env`: the environment variable `name` (a CI platform's secret store puts secrets there);
  with `key`, the variable holds a JSON object and the value is its `key`;
- `kubernetes`: the Secret mounted as a volume at `$SPECOPS_SECRETS_DIR/<name>/<key>`
  (default `/var/run/secrets/specops`; the reconcile Deployment in examples/ mounts it so), so
  the process needs no RBAC to read Secrets through the API;
- `aws-secrets-manager`: `GetSecretValue` through boto3 with the ambient credentials; with
  `key`, the secret string is a JSON object and the value is its `key`.

`gcp-secret-manager` and `vault` are not read here: `READABLE` lists what is, and the checks
report any other provider at the reference's line before anything runs.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from specops.runtime.errors import StepError

SECRETS_DIR_ENV = "SPECOPS_SECRETS_DIR"
DEFAULT_SECRETS_DIR = "/var/run/secrets/specops"
READABLE = ("env", "kubernetes", "aws-secrets-manager")


class SecretError(StepError):
    """A secret that cannot be read: one line naming the reference, never the value."""


def ref_of(value: Any) -> dict[str, Any]:
    """The inner reference {provider, name, key} of `{secretRef: {...}}` as dumped by pydantic
    (either spelling), or of the inner mapping itself."""
    if isinstance(value, dict):
        inner = value.get("secret_ref", value.get("secretRef", value))
        if isinstance(inner, dict) and "name" in inner:
            return {"provider": inner.get("provider", "kubernetes"), "name": inner["name"], "key": inner.get("key")}
    raise SecretError("not a secret reference")


def describe(ref: dict[str, Any]) -> str:
    key = f", key {ref['key']}" if ref.get("key") else ""
    return f"{ref.get('provider')} secret {ref.get('name')}{key}"


def _pick(raw: str, ref: dict[str, Any], what: str) -> str:
    key = ref.get("key")
    if not key:
        return raw
    try:
        doc = json.loads(raw)
    except ValueError:
        doc = None
    if not isinstance(doc, dict) or not isinstance(doc.get(key), str):
        raise SecretError(f"{what}: {describe(ref)} is not a JSON object with a string {key!r}")
    return doc[key]


def read_secret(value: Any, what: str) -> str:
    """The secret's value. `what` names the field for the error message."""
    ref = ref_of(value)
    provider = ref["provider"]
    if provider == "env":
        raw = os.environ.get(ref["name"])
        if raw is None or raw == "":
            raise SecretError(f"{what}: the environment variable {ref['name']!r} is not set")
        return _pick(raw, ref, what)
    if provider == "kubernetes":
        if not ref.get("key"):
            raise SecretError(f"{what}: {describe(ref)} needs a `key` (the file of the mounted Secret)")
        path = Path(os.environ.get(SECRETS_DIR_ENV) or DEFAULT_SECRETS_DIR) / ref["name"] / ref["key"]
        try:
            return path.read_text(encoding="utf-8").strip()
        except OSError as e:
            raise SecretError(f"{what}: {describe(ref)} is not mounted at {path} ({e.strerror or e})") from None
    if provider == "aws-secrets-manager":
        return _pick(_aws_secret(ref, what), {**ref}, what)
    raise SecretError(f"{what}: secrets from {provider} cannot be read at run time "
                      f"(readable: {', '.join(READABLE)})")


def _aws_secret(ref: dict[str, Any], what: str) -> str:
    import boto3
    from botocore.exceptions import BotoCoreError, ClientError

    try:
        resp = boto3.client("secretsmanager").get_secret_value(SecretId=ref["name"])
    except ClientError as e:
        code = e.response.get("Error", {}).get("Code", "error")
        raise SecretError(f"{what}: cannot read {describe(ref)} ({code})") from None
    except BotoCoreError as e:
        raise SecretError(f"{what}: cannot read {describe(ref)} ({type(e).__name__})") from None
    raw = resp.get("SecretString")
    if not isinstance(raw, str):
        raise SecretError(f"{what}: {describe(ref)} holds binary data, not a string")
    return raw
