"""A spec repository under git with a bare "origin", for the GitOps tests (the CI kit's
simulation and `specops reconcile`). Pytest-free.

The specs are examples/churn with its three environments all on SageMaker (moto on
127.0.0.1 serves it) and its state in S3 (the same moto), the way a team shares state between
CI jobs and a reconciler. `models=2` adds a second model (a second resource per environment).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

ROOT = Path(__file__).resolve().parents[1]
ARTIFACTS = "specops-gitops-artifacts"
STATE_BUCKET = "specops-gitops-state"

PROJECT = """\
apiVersion: specops.dev/v1alpha1
kind: Project
metadata:
  name: churn
spec:
  targets:
    aws:
      backend: sagemaker
      provider: aws
      region: us-east-1
      artifactStore: s3://{artifacts}/churn
      roleArn: arn:aws:iam::123456789012:role/specops-sagemaker
  environments:
    dev:
      target: aws
      policy: {{drift: reconcile, prune: true}}
    staging:
      target: aws
      policy: {{drift: {staging_drift}}}
    prod:
      target: aws
      policy: {{drift: report}}
  state:
    backend: s3
    bucket: {state}
    region: us-east-1
{notifications}"""

NOTIFY = """\
  notifications:
    oncall:
      webhook:
        url: {secretRef: {provider: env, name: SPECOPS_WEBHOOK_URL}}
"""


def git(cwd: Path, *args: str) -> str:
    env = {**os.environ, "GIT_AUTHOR_NAME": "dev", "GIT_AUTHOR_EMAIL": "dev@example.com",
           "GIT_COMMITTER_NAME": "dev", "GIT_COMMITTER_EMAIL": "dev@example.com", "GIT_TERMINAL_PROMPT": "0"}
    r = subprocess.run(["git", *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=120)
    if r.returncode != 0:
        raise RuntimeError(f"git {' '.join(args)} failed: {r.stderr}")
    return r.stdout.strip()


def write_specs(dest: Path, *, models: int = 1, staging_drift: str = "reconcile", notify: bool = False) -> None:
    shutil.copytree(ROOT / "examples" / "churn", dest, ignore=shutil.ignore_patterns("build", ".specops"),
                    dirs_exist_ok=True)
    (dest / "specops.yaml").write_text(PROJECT.format(artifacts=ARTIFACTS, state=STATE_BUCKET,
                                                      staging_drift=staging_drift,
                                                      notifications=NOTIFY if notify else ""))
    model = (dest / "models" / "churn.yaml").read_text()
    for i in range(2, models + 1):
        (dest / "models" / f"churn-{i}.yaml").write_text(
            model.replace("name: churn-classifier\n", f"name: churn-classifier-{i}\n"))
    # The loop's tests count pipelines and applies per environment: the monitor's scheduled job
    # (a pipeline of its own, tested in tests/compiler/ops/test_apply_sagemaker.py) stays out.
    mon = dest / "monitors" / "churn-drift.yaml"
    text = mon.read_text().replace('  schedule: {cron: "0 6 * * *"}\n', "")
    assert "schedule:" not in text
    mon.write_text(text)
    (dest / ".gitignore").write_text(".specops/\n")


def make_origin(tmp: Path, **kw: object) -> tuple[Path, Path]:
    """(bare origin, a developer's clone of it on main) holding the specs."""
    origin, work = tmp / "origin.git", tmp / "work"
    git(tmp, "init", "-q", "--bare", "-b", "main", str(origin))
    git(tmp, "clone", "-q", str(origin), str(work))
    git(work, "checkout", "-q", "-b", "main")
    write_specs(work, **kw)  # type: ignore[arg-type]
    git(work, "add", "-A")
    git(work, "commit", "-q", "-m", "churn specs")
    git(work, "push", "-q", "origin", "main")
    return origin, work


def commit_threshold(work: Path, threshold: str, branch: str = "main", push: bool = True) -> str:
    """Change the AUC gate's threshold (one pipeline update per environment); the new revision."""
    gate = work / "gates" / "auc.yaml"
    text = gate.read_text()
    import re

    gate.write_text(re.sub(r'threshold: ">= 0\.\d+"\n(\s+- metric: accuracy)', f'threshold: ">= {threshold}"\n\\1',
                           text, count=1))
    git(work, "commit", "-q", "-am", f"auc >= {threshold}")
    if push:
        git(work, "push", "-q", "origin", f"HEAD:{branch}")
    return git(work, "rev-parse", "HEAD")


@contextmanager
def gitops_aws() -> Iterator[str]:
    """moto on 127.0.0.1 with fake credentials, AWS_ENDPOINT_URL pointing at it and the
    buckets created; yields the endpoint."""
    from tests.moto_server import aws_test_env, moto_server

    with aws_test_env(), moto_server() as endpoint:
        old = os.environ.get("AWS_ENDPOINT_URL")
        os.environ["AWS_ENDPOINT_URL"] = endpoint
        try:
            create_buckets(endpoint)
            yield endpoint
        finally:
            if old is None:
                os.environ.pop("AWS_ENDPOINT_URL", None)
            else:
                os.environ["AWS_ENDPOINT_URL"] = old


def create_buckets(endpoint: str) -> None:
    from tests.moto_server import client

    s3 = client("s3", endpoint)
    for b in (ARTIFACTS, STATE_BUCKET):
        s3.create_bucket(Bucket=b)


def sneak_parameter(endpoint: str, pipeline: str) -> None:
    """A change made through boto3 behind specops's back: a parameter added to the pipeline."""
    from tests.moto_server import client

    sm = client("sagemaker", endpoint)
    doc = json.loads(sm.describe_pipeline(PipelineName=pipeline)["PipelineDefinition"])
    doc["Parameters"].append({"Name": "Sneaky", "Type": "String", "DefaultValue": "x"})
    sm.update_pipeline(PipelineName=pipeline, PipelineDefinition=json.dumps(doc))


def has_sneaky(endpoint: str, pipeline: str) -> bool:
    from tests.moto_server import client

    doc = json.loads(client("sagemaker", endpoint).describe_pipeline(PipelineName=pipeline)["PipelineDefinition"])
    return any(p["Name"] == "Sneaky" for p in doc["Parameters"])
