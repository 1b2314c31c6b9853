"""A real moto server on 127.0.0.1 for tests that talk to AWS APIs through boto3.

Pytest-free so any test module (or a benchmark script) can use it:

    with aws_test_env(), moto_server() as endpoint:
        client = boto3.client("sagemaker", endpoint_url=endpoint, region_name=REGION)

`moto_server()` starts moto's `ThreadedMotoServer` on a free port and stops it on exit;
`aws_test_env()` sets fake credentials and region (and disables the EC2 metadata lookup)
for the duration, restoring the previous environment afterwards.
"""

from __future__ import annotations

import os
import socket
from contextlib import contextmanager
from typing import Iterator

REGION = "us-east-1"
AWS_TEST_ENV = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_SESSION_TOKEN": "testing",
    "AWS_SECURITY_TOKEN": "testing",
    "AWS_DEFAULT_REGION": REGION,
    "AWS_REGION": REGION,
    "AWS_EC2_METADATA_DISABLED": "true",
}


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextmanager
def aws_test_env() -> Iterator[dict[str, str]]:
    """Fake AWS credentials/region in os.environ; a shared config file is ignored."""
    keys = [*AWS_TEST_ENV, "AWS_PROFILE", "AWS_CONFIG_FILE", "AWS_SHARED_CREDENTIALS_FILE", "AWS_ENDPOINT_URL"]
    saved = {k: os.environ.get(k) for k in keys}
    os.environ.update(AWS_TEST_ENV)
    for k in ("AWS_PROFILE", "AWS_ENDPOINT_URL"):
        os.environ.pop(k, None)
    os.environ["AWS_CONFIG_FILE"] = os.devnull
    os.environ["AWS_SHARED_CREDENTIALS_FILE"] = os.devnull
    try:
        yield dict(AWS_TEST_ENV)
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


@contextmanager
def moto_server() -> Iterator[str]:
    """Start moto's ThreadedMotoServer on 127.0.0.1:<free port>; yield its endpoint URL."""
    from moto.server import ThreadedMotoServer

    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    endpoint = f"http://127.0.0.1:{port}"
    # moto keeps its backends in process-wide globals: every server started in one test
    # process shares them. Reset on start so each test sees an empty AWS account.
    _reset(endpoint)
    try:
        yield endpoint
    finally:
        server.stop()


def _reset(endpoint: str) -> None:
    import urllib.request

    urllib.request.urlopen(urllib.request.Request(f"{endpoint}/moto-api/reset", method="POST"), timeout=30).read()


def client(service: str, endpoint: str):  # noqa: ANN201 - a boto3 client
    """A boto3 client for `service` against the moto endpoint, with the fake credentials."""
    import boto3

    return boto3.client(
        service, endpoint_url=endpoint, region_name=REGION,
        aws_access_key_id=AWS_TEST_ENV["AWS_ACCESS_KEY_ID"],
        aws_secret_access_key=AWS_TEST_ENV["AWS_SECRET_ACCESS_KEY"],
    )


@contextmanager
def aws_with_buckets(monkeypatch, *buckets: str) -> Iterator[str]:
    """Fake credentials, a moto server as AWS_ENDPOINT_URL (through `monkeypatch`) and the
    named S3 buckets: what a test of a SageMaker environment of an example starts from."""
    with aws_test_env(), moto_server() as endpoint:
        monkeypatch.setenv("AWS_ENDPOINT_URL", endpoint)
        for bucket in buckets:
            client("s3", endpoint).create_bucket(Bucket=bucket)
        yield endpoint
