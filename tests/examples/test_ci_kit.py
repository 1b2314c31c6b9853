"""The CI kit (examples/ci/): the workflow files validate against the schemas check-jsonschema
ships (offline), and their jobs' shell steps, run in order by tests/examples/ci_sim.py against a
bare local "origin", SageMaker and S3 on moto (127.0.0.1) and specops installed from this
checkout, do what the kit promises: pull request → one comment with every environment's plan;
merge → dev and staging applied, prod waiting for its approval, then applied; schedule → the
drift made through boto3 found, an issue opened (or the job failed, as configured).

GitHub's JavaScript steps (actions/github-script) are checked by schema only; GitLab's API calls
go to a test double of its notes and issues endpoints (tests/examples/gitlab_api.py)."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.examples.ci_sim import GitHubRun, GitLabPipeline, Sandbox, git, install_specops
from tests.examples.gitlab_api import fake_gitlab
from tests.gitops_repo import commit_threshold, gitops_aws, make_origin, sneak_parameter
from tests.moto_server import AWS_TEST_ENV, client
from tests.webhook_receiver import validate, webhook_receiver

ROOT = Path(__file__).resolve().parents[2]
KIT = ROOT / "examples" / "ci"
GITHUB = ["github-actions.yml", "github-apply.yml", "github-drift.yml"]


def check_jsonschema(schema: str, *files: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "check_jsonschema", "--builtin-schema", schema, *map(str, files)],
                          capture_output=True, text=True, timeout=300)


def test_workflows_validate_against_the_platform_schemas(tmp_path):
    r = check_jsonschema("vendor.github-workflows", *(KIT / f for f in GITHUB))
    assert r.returncode == 0, r.stdout + r.stderr
    r = check_jsonschema("vendor.gitlab-ci", KIT / "gitlab-ci.yml")
    assert r.returncode == 0, r.stdout + r.stderr
    # the checks can fail: a job without runs-on, a GitLab `when` that does not exist
    bad = tmp_path / "bad.yml"
    bad.write_text((KIT / "github-apply.yml").read_text().replace("    runs-on: ubuntu-latest\n", "", 1))
    assert check_jsonschema("vendor.github-workflows", bad).returncode != 0
    bad.write_text((KIT / "gitlab-ci.yml").read_text().replace("when: manual", "when: sometimes"))
    assert check_jsonschema("vendor.gitlab-ci", bad).returncode != 0


@pytest.fixture(scope="module")
def specops_bin(tmp_path_factory) -> Path:
    return install_specops(tmp_path_factory.mktemp("specops-install"))


@pytest.fixture()
def aws():
    with gitops_aws() as endpoint:
        yield endpoint


def threshold_of(endpoint: str, env: str) -> str:
    doc = client("sagemaker", endpoint).describe_pipeline(PipelineName=f"churn-classifier-{env}")["PipelineDefinition"]
    return "0.8" if "0.8" in doc else "0.75"


def statuses(run) -> dict[str, str]:
    return {k: j.status for k, j in run.jobs.items()}


def logs(run) -> str:
    return "\n".join(f"==== {k} [{j.status}]\n{j.log}" for k, j in run.jobs.items())


def repo_with(tmp_path: Path, files: dict[str, Path]) -> tuple[Path, Path]:
    origin, work = make_origin(tmp_path, notify=True)
    for dest, src in files.items():
        (work / dest).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(src, work / dest)
    git(work, "add", "-A")
    git(work, "commit", "-qm", "CI for specops")
    git(work, "push", "-q", "origin", "main")
    return origin, work


@pytest.mark.slow
def test_github_pull_request_merge_approval_schedule(tmp_path, specops_bin, aws):
    origin, work = repo_with(tmp_path, {f".github/workflows/{f}": KIT / f for f in GITHUB})
    wf = work / ".github" / "workflows"
    with webhook_receiver() as hook:
        box = Sandbox(origin, tmp_path / "runner", specops_bin, {"AWS_ENDPOINT_URL": aws},
                      secrets={"SPECOPS_AWS_ACCESS_KEY_ID": AWS_TEST_ENV["AWS_ACCESS_KEY_ID"],
                               "SPECOPS_AWS_SECRET_ACCESS_KEY": AWS_TEST_ENV["AWS_SECRET_ACCESS_KEY"],
                               "SPECOPS_PLAN_AWS_ACCESS_KEY_ID": AWS_TEST_ENV["AWS_ACCESS_KEY_ID"],
                               "SPECOPS_PLAN_AWS_SECRET_ACCESS_KEY": AWS_TEST_ENV["AWS_SECRET_ACCESS_KEY"],
                               "SPECOPS_WEBHOOK_URL": hook.url})
        (tmp_path / "runner").mkdir()

        # The first push to main: every environment created, prod after its approval.
        run = GitHubRun(box, wf / "github-apply.yml", "push", git(work, "rev-parse", "HEAD")).run()
        assert statuses(run) == {"plan-dev": "success", "apply-dev": "success", "plan-staging": "success",
                                 "apply-staging": "success", "plan-prod": "success", "apply-prod": "waiting"}, logs(run)
        run.approve("apply-prod")
        assert run.run().jobs["apply-prod"].status == "success", logs(run)

        # A pull request: one comment with each environment's plan and the compiled diff.
        git(work, "checkout", "-q", "-b", "feature")
        sha = commit_threshold(work, "0.8", branch="feature")
        pr = GitHubRun(box, wf / "github-actions.yml", "pull_request", sha, ref="refs/pull/1/merge",
                       base_ref="main", pr_number=1).run()
        job = pr.jobs["specops"]
        assert job.status == "success", logs(pr)
        comment = (job.workspace / "specops-comment.md").read_text()
        assert comment.startswith("<!-- specops-plan -->")
        assert "3 of 3 environment(s) would change: `dev`, `staging`, `prod`." in comment, comment
        for env in ("dev", "staging", "prod"):
            assert f"| `{env}` | `aws` | yes | **1 to update** |" in comment, comment
        assert "#### Compiled artifacts" in comment and "gates/auc.yaml" in comment
        assert job.scripts == ["Post the plan as one PR comment (updated in place)"]
        assert comment in job.summary

        # The merge: dev and staging applied, prod waits for its reviewers, then applies.
        git(work, "push", "-q", "origin", "feature:main")
        run = GitHubRun(box, wf / "github-apply.yml", "push", sha).run()
        assert statuses(run)["apply-prod"] == "waiting" and statuses(run)["apply-staging"] == "success", logs(run)
        assert [threshold_of(aws, e) for e in ("dev", "staging", "prod")] == ["0.8", "0.8", "0.75"]
        assert "~ sagemaker_pipeline.churn-classifier" in run.jobs["plan-prod"].summary  # what the reviewers read
        run.approve("apply-prod")
        assert run.run().jobs["apply-prod"].status == "success", logs(run)
        assert threshold_of(aws, "prod") == "0.8"

        # A change behind specops's back, found by the scheduled drift job.
        sneak_parameter(aws, "churn-classifier-prod")
        drift = GitHubRun(box, wf / "github-drift.yml", "schedule", sha).run()
        assert statuses(drift) == {"drift (dev)": "success", "drift (staging)": "success",
                                   "drift (prod)": "success"}, logs(drift)
        assert drift.jobs["drift (prod)"].scripts == ["Open or update the drift issue"]
        assert drift.jobs["drift (dev)"].scripts == []
        assert "Sneaky" in drift.jobs["drift (prod)"].summary
        box.vars["SPECOPS_DRIFT_ACTION"] = "fail"
        drift = GitHubRun(box, wf / "github-drift.yml", "schedule", sha).run()
        assert statuses(drift) == {"drift (dev)": "success", "drift (staging)": "success",
                                   "drift (prod)": "failure"}, logs(drift)
        assert drift.jobs["drift (prod)"].scripts == []

        events = hook.events()
    for e in events:
        validate(e)
    applied = [(e["env"], e["revision"]) for e in events if e["event"] == "apply" and e["apply"]["applied"]]
    assert [env for env, _ in applied] == ["dev", "staging", "prod"] * 2
    assert {e["env"] for e in events if e["event"] == "drift"} == {"prod"}


@pytest.mark.slow
def test_gitlab_merge_request_merge_play_schedule(tmp_path, specops_bin, aws):
    origin, work = repo_with(tmp_path, {".gitlab-ci.yml": KIT / "gitlab-ci.yml"})
    ci = work / ".gitlab-ci.yml"
    with fake_gitlab() as gl:
        box = Sandbox(origin, tmp_path / "runner", specops_bin, {"AWS_ENDPOINT_URL": aws},
                      secrets={"AWS_ACCESS_KEY_ID": AWS_TEST_ENV["AWS_ACCESS_KEY_ID"],
                               "AWS_SECRET_ACCESS_KEY": AWS_TEST_ENV["AWS_SECRET_ACCESS_KEY"],
                               "AWS_DEFAULT_REGION": "us-east-1", "SPECOPS_GITLAB_TOKEN": gl.token,
                               "CI_API_V4_URL": gl.url})
        (tmp_path / "runner").mkdir()
        push = lambda sha: GitLabPipeline(box, ci, "push", sha)

        p = push(git(work, "rev-parse", "HEAD")).run()
        assert statuses(p) == {"plan:dev": "success", "apply:dev": "success", "plan:staging": "success",
                               "apply:staging": "success", "plan:prod": "success", "apply:prod": "waiting"}, logs(p)
        p.play("apply:prod")
        assert p.run().jobs["apply:prod"].status == "success", logs(p)

        # Merge request: one note, updated in place on the next push.
        git(work, "checkout", "-q", "-b", "feature")
        mr_vars = {"CI_MERGE_REQUEST_IID": "7", "CI_MERGE_REQUEST_TARGET_BRANCH_NAME": "main"}
        sha = commit_threshold(work, "0.8", branch="feature")
        mr = GitLabPipeline(box, ci, "merge_request_event", sha, variables=mr_vars).run()
        assert statuses(mr) == {"specops:mr": "success"}, logs(mr)
        [note] = gl.notes[7]
        assert "3 of 3 environment(s) would change" in note["body"], note["body"]
        sha = commit_threshold(work, "0.85", branch="feature")
        mr = GitLabPipeline(box, ci, "merge_request_event", sha, variables=mr_vars).run()
        assert statuses(mr) == {"specops:mr": "success"}, logs(mr)
        [note] = gl.notes[7]  # still one note, now with the new plan
        assert "0.85" in note["body"]

        # Merge: dev and staging applied; prod's apply is manual.
        git(work, "push", "-q", "origin", "feature:main")
        p = push(sha).run()
        assert statuses(p)["apply:staging"] == "success" and statuses(p)["apply:prod"] == "waiting", logs(p)
        before = client("sagemaker", aws).describe_pipeline(PipelineName="churn-classifier-prod")["PipelineDefinition"]
        assert "0.85" not in before and "0.85" in client("sagemaker", aws).describe_pipeline(
            PipelineName="churn-classifier-staging")["PipelineDefinition"]
        p.play("apply:prod")
        assert p.run().jobs["apply:prod"].status == "success", logs(p)
        live = client("sagemaker", aws).describe_pipeline(PipelineName="churn-classifier-prod")["PipelineDefinition"]
        assert "0.85" in live

        # Schedule: drift made through boto3 opens one issue, updated (not duplicated) next time.
        sneak_parameter(aws, "churn-classifier-prod")
        for _ in range(2):
            d = GitLabPipeline(box, ci, "schedule", sha).run()
            assert statuses(d) == {"drift: [dev]": "success", "drift: [staging]": "success",
                                   "drift: [prod]": "success"}, logs(d)
        [issue] = gl.issues
        assert issue["title"] == "Drift: prod (specops)" and "Sneaky" in issue["description"]
        d = GitLabPipeline(box, ci, "schedule", sha, variables={"DRIFT_ACTION": "fail"}).run()
        assert statuses(d)["drift: [prod]"] == "failure" and statuses(d)["drift: [dev]"] == "success", logs(d)
        assert len(gl.issues) == 1
    assert json.dumps(gl.calls).count("/issues") >= 3
