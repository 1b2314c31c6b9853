"""moto on 127.0.0.1 with the buckets of tests/gitops_repo.py, for the reconcile tests."""

from __future__ import annotations

import pytest

from tests.gitops_repo import gitops_aws


@pytest.fixture()
def aws():
    with gitops_aws() as endpoint:
        yield endpoint
