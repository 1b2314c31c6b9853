"""The image lifecycle steps run in: the Project's runtime image, pulled from the target's
`imageRegistry` (a mirror: `<imageRegistry>/<name>:<tag>`) on every backend; an image a step
names itself is used as written."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from types import SimpleNamespace

from specops.build.compile import compile_repo
from specops.checks import analyze
from specops.ir.lower import lower_env, step_image

ROOT = Path(__file__).resolve().parents[3]
ECR = "123456789012.dkr.ecr.us-east-1.amazonaws.com/specops"


def test_step_image_is_the_runtime_image_in_the_targets_registry() -> None:
    reg = SimpleNamespace(image_registry="us-docker.pkg.dev/acme/specops")
    assert step_image("ghcr.io/specops-dev/runtime:0.1.0", reg) == "us-docker.pkg.dev/acme/specops/runtime:0.1.0"
    digest = "ghcr.io/specops-dev/runtime@sha256:" + "a" * 64
    assert step_image(digest, reg) == "us-docker.pkg.dev/acme/specops/runtime@sha256:" + "a" * 64
    assert step_image("runtime:0.1.0", reg) == "us-docker.pkg.dev/acme/specops/runtime:0.1.0"
    assert step_image("ghcr.io/specops-dev/runtime:0.1.0", SimpleNamespace(image_registry=None)) == \
        "ghcr.io/specops-dev/runtime:0.1.0"


def test_image_registry_reaches_kfp_and_sagemaker_steps_but_not_a_steps_own_image(tmp_path: Path) -> None:
    repo = tmp_path / "nyc"
    shutil.copytree(ROOT / "examples" / "nyc-taxi", repo, ignore=shutil.ignore_patterns("build", ".specops"))
    model = repo / "models" / "nyc-taxi.yaml"
    model.write_text(model.read_text().replace("      command: [python, steps/prep.py]\n",
                                               "      image: python:3.11-slim\n      command: [python, steps/prep.py]\n"))
    proj = repo / "specops.yaml"
    proj.write_text(proj.read_text().replace("      roleArn: arn:aws:iam::123456789012:role/specops-sagemaker\n",
                                             f"      roleArn: arn:aws:iam::123456789012:role/specops-sagemaker\n"
                                             f"      imageRegistry: {ECR}\n"))
    resolved = analyze(repo)
    assert not resolved.diagnostics.has_errors, [d.headline() for d in resolved.diagnostics.sorted()]
    for env, registry in (("staging", "us-docker.pkg.dev/acme-mobility/specops"), ("prod", ECR)):
        p = next(p for p in lower_env(resolved, env)[0] if p.model == "nyc-taxi-model")
        images = {s.name: s.image for s in p.steps}
        assert images.pop("prep") == "python:3.11-slim"
        assert set(images.values()) == {f"{registry}/runtime:0.1.0"}, images
    files = compile_repo(resolved, ["prod"]).files()
    definition = json.loads(files["prod/sagemaker/nyc-taxi-model/definition.json"])
    pulls = {s["Name"]: f'"{ECR}/runtime:0.1.0"' in json.dumps(s["Arguments"]) for s in definition["Steps"]
             if s["Type"] in ("Processing", "Training")}
    assert pulls.pop("prep") is False and pulls and set(pulls.values()) == {True}, pulls


def test_a_scheduled_monitor_job_pulls_from_the_targets_registry_too(tmp_path: Path) -> None:
    """The monitor's scheduled job is a lifecycle step like the others: on a target with an
    `imageRegistry` it runs the runtime image from that mirror (it used the public image)."""
    repo = tmp_path / "sa"
    shutil.copytree(ROOT / "examples" / "support-assistant", repo, ignore=shutil.ignore_patterns("build", ".specops"))
    files = compile_repo(analyze(repo)).files()
    job = files["staging/monitors/support-live/kfp/pipeline.yaml"].decode()
    assert "image: us-docker.pkg.dev/acme-ml-staging/specops/runtime:0.1.0" in job
    assert "ghcr.io/specops-dev/runtime" not in job
