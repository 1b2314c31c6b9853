"""moto on 127.0.0.1 with the buckets of tests/gitops_repo.py, for the reconcile tests."""

from __future__ import annotations

import pytest

from tests.gitops_repo import create_buckets
from tests.moto_server import aws_test_env, moto_server


@pytest.fixture()
def aws(monkeypatch):
    with aws_test_env(), moto_server() as endpoint:
        monkeypatch.setenv("AWS_ENDPOINT_URL", endpoint)
        create_buckets(endpoint)
        yield endpoint
