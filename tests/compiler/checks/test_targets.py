"""Declared is delivered, for a Project's targets: a field the target's backend cannot carry is
a warning at its line, naming why (specops.checks.targets and each backend's
`unused_target_fields`); the same fields on a backend that delivers them say nothing."""

from __future__ import annotations

import shutil
from pathlib import Path

from specops.checks import analyze

ROOT = Path(__file__).resolve().parents[3]

PROJECT = """\
apiVersion: specops.dev/v1alpha1
kind: Project
metadata: {name: churn}
spec:
  targets:
    local:
      backend: zenml
      imageRegistry: ghcr.io/acme/mirror
      project: acme-ml
    gcp:
      backend: kfp
      provider: gcp
      project: acme-ml
      imageRegistry: us-docker.pkg.dev/acme-ml/specops
      credentials: {secretRef: {provider: env, name: KFP_TOKEN}}
    aws:
      backend: sagemaker
      provider: aws
      region: us-east-1
      project: acme-ml
      imageRegistry: 123456789012.dkr.ecr.us-east-1.amazonaws.com/specops
      roleArn: arn:aws:iam::123456789012:role/specops
      credentials: {secretRef: {provider: env, name: AWS_THING}}
  environments:
    dev: {target: local}
    staging: {target: gcp}
    prod: {target: aws}
"""


def test_fields_a_backend_cannot_carry_are_warnings_at_their_line(tmp_path: Path) -> None:
    repo = tmp_path / "churn"
    shutil.copytree(ROOT / "examples" / "churn", repo, ignore=shutil.ignore_patterns("build", ".specops"))
    (repo / "specops.yaml").write_text(PROJECT)
    diags = analyze(repo).diagnostics.sorted()
    got = [(d.pos.line, d.code, d.message) for d in diags if d.file == "specops.yaml"]
    assert all(d.severity == "warning" for d in diags if d.file == "specops.yaml"), got
    assert [(line, code) for line, code, _ in got] == [
        (8, "unsupported"), (9, "unsupported"),  # ZenML's local orchestrator: no image, this process's env
        (20, "unsupported"), (23, "unsupported")]  # SageMaker: no GCP project, its own AWS credentials
    msgs = [m for _, _, m in got]
    assert msgs[0].startswith("target 'local': backend 'zenml' does not use `imageRegistry`: ")
    assert "in no image" in msgs[0] and "GOOGLE_CLOUD_PROJECT" in msgs[1]
    assert msgs[2].startswith("target 'aws': backend 'sagemaker' does not use `project`")
    assert msgs[3].startswith("target 'aws': backend 'sagemaker' does not use `credentials`")
