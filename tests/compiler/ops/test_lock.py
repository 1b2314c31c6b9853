"""`specops lock`: data pinned by content. The abalone example in a real git repo, the real CLI
(click's runner), S3 pins against moto's server on 127.0.0.1."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import boto3
from click.testing import CliRunner

from specops.build.compile import compile_repo
from specops.checks import analyze
from specops.cli import main
from specops.ops.lock import lock_repo
from tests.moto_server import aws_test_env, moto_server

EXAMPLES = Path(__file__).resolve().parents[3] / "examples"
GIT_ENV = {"GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@example.com", "GIT_COMMITTER_NAME": "t",
           "GIT_COMMITTER_EMAIL": "t@example.com"}
ROW = "M,0.5,0.4,0.1,0.5,0.2,0.1,0.15,9\n"


def git(repo: Path, *args: str) -> None:
    subprocess.run(["git", *args], cwd=repo, check=True, capture_output=True, env={**os.environ, **GIT_ENV})


def locked_repo(tmp_path: Path) -> Path:
    repo = tmp_path / "abalone"
    shutil.copytree(EXAMPLES / "abalone", repo, ignore=shutil.ignore_patterns("build", ".specops"))
    r = CliRunner().invoke(main, ["lock", str(repo)])
    assert r.exit_code == 0, r.output
    assert "wrote specops.lock (1 source(s))" in r.output
    git(repo, "init", "-q")
    git(repo, "add", "-A")
    git(repo, "commit", "-qm", "locked")
    return repo


def test_lock_pins_local_files_by_sha256_and_size(tmp_path: Path) -> None:
    repo = locked_repo(tmp_path)
    lock = json.loads((repo / "specops.lock").read_text())
    pin = lock["sources"]["file://data/abalone.csv"]
    data = (repo / "data" / "abalone.csv").read_bytes()
    assert pin == {"digest": "sha256:" + __import__("hashlib").sha256(data).hexdigest(), "size": len(data),
                   "version": "2024-01-01"}
    # Relocking unchanged data changes nothing, byte for byte.
    before = (repo / "specops.lock").read_bytes()
    r = CliRunner().invoke(main, ["lock", str(repo)])
    assert r.exit_code == 0 and "specops.lock is current" in r.output
    assert (repo / "specops.lock").read_bytes() == before
    # The pin reaches the data_check step's params, so the step refuses other data.
    build = compile_repo(analyze(repo))
    step = [a for p, a in build.artifacts.items() if p.startswith("dev/")]
    assert any(pin["digest"].encode() in a.data for a in step)


def test_an_appended_row_is_reported_by_validate_diff_and_lock_check(tmp_path: Path) -> None:
    repo = locked_repo(tmp_path)
    with open(repo / "data" / "abalone.csv", "a") as f:
        f.write(ROW)
    r = CliRunner().invoke(main, ["validate", str(repo)])
    assert r.exit_code == 1
    assert "datasets/abalone.yaml:9:10: error: 'data/abalone.csv' changed since `specops lock`: sha256:" in r.output
    assert "(210928 bytes) in the lock, sha256:" in r.output and "[data-lock]" in r.output
    r = CliRunner().invoke(main, ["diff", str(repo), "--base", "HEAD"])
    assert r.exit_code == 1 and "changed since `specops lock`" in r.output
    r = CliRunner().invoke(main, ["lock", "--check", str(repo)])
    assert r.exit_code == 1 and "~ file://data/abalone.csv: version 2024-01-01, digest sha256:" in r.output
    # Relocking records the new content; validate is clean again.
    assert CliRunner().invoke(main, ["lock", str(repo)]).exit_code == 0
    assert CliRunner().invoke(main, ["validate", str(repo)]).exit_code == 0


def test_lock_json_validates_against_its_schema(tmp_path: Path) -> None:
    import jsonschema

    repo = locked_repo(tmp_path)
    schema = json.loads((EXAMPLES.parent / "compiler" / "schemas" / "cli" / "lock.schema.json").read_text())
    r = CliRunner().invoke(main, ["lock", "--check", str(repo), "--json"])
    assert r.exit_code == 0, r.output
    doc = json.loads(r.stdout)
    jsonschema.Draft202012Validator(schema).validate(doc)
    assert doc["version"] == 1 and doc["stale"] is False and list(doc["sources"]) == ["file://data/abalone.csv"]
    with open(repo / "data" / "abalone.csv", "a", encoding="utf-8") as f:
        f.write("M,0.5,0.4,0.1,0.5,0.2,0.1,0.15,9\n")
    r = CliRunner().invoke(main, ["lock", "--check", str(repo), "--json"])
    doc = json.loads(r.stdout)
    jsonschema.Draft202012Validator(schema).validate(doc)
    assert r.exit_code == 1 and doc["stale"] is True and len(doc["changes"]) == 1


def test_a_bumped_version_is_a_warning_until_relocked(tmp_path: Path) -> None:
    repo = locked_repo(tmp_path)
    ds = repo / "datasets" / "abalone.yaml"
    ds.write_text(ds.read_text().replace('version: "2024-01-01"', 'version: "2024-02-01"'))
    diags = analyze(repo).diagnostics.sorted()
    assert [(d.severity, d.code, d.pos.line) for d in diags] == [("warning", "data-lock", 11)]


def test_a_corrupt_lock_is_one_error(tmp_path: Path) -> None:
    repo = locked_repo(tmp_path)
    (repo / "specops.lock").write_text("{not json")
    diags = analyze(repo).diagnostics.sorted()
    assert [(d.code, d.file) for d in diags] == [("data-lock", "specops.lock")]
    assert "regenerate it with `specops lock`" in diags[0].message


@contextmanager
def s3_abalone(tmp_path: Path, monkeypatch, body: bytes) -> Iterator[tuple[Path, Any]]:
    """The abalone example reading s3://data/abalone.csv (`body`, in a versioned bucket) from
    moto's server on 127.0.0.1: (repo, S3 client)."""
    repo = tmp_path / "abalone"
    shutil.copytree(EXAMPLES / "abalone", repo, ignore=shutil.ignore_patterns("build", ".specops"))
    ds = repo / "datasets" / "abalone.yaml"
    ds.write_text(ds.read_text().replace("file://data/abalone.csv", "s3://data/abalone.csv"))
    with aws_test_env(), moto_server() as endpoint:
        monkeypatch.setenv("AWS_ENDPOINT_URL_S3", endpoint)
        s3 = boto3.client("s3", endpoint_url=endpoint)
        s3.create_bucket(Bucket="data")
        s3.put_bucket_versioning(Bucket="data", VersioningConfiguration={"Status": "Enabled"})
        s3.put_object(Bucket="data", Key="abalone.csv", Body=body)
        yield repo, s3


def test_s3_sources_are_pinned_by_etag_and_checked_live(tmp_path: Path, monkeypatch) -> None:
    with s3_abalone(tmp_path, monkeypatch, b"M,1\n") as (repo, s3):
        result = lock_repo(repo)
        pin = result.sources["s3://data/abalone.csv"]
        assert pin["etag"] and pin["versionId"] and result.written
        assert lock_repo(repo, check=True).changes == []
        s3.put_object(Bucket="data", Key="abalone.csv", Body=b"M,1\nF,2\n")
        changes = lock_repo(repo, check=True).changes
        assert len(changes) == 1 and changes[0].startswith("~ s3://data/abalone.csv: version 2024-01-01, etag ")
        s3.delete_object(Bucket="data", Key="abalone.csv")
        missing = lock_repo(repo, check=True)
        assert missing.diagnostics.has_errors and "cannot pin 's3://data/abalone.csv'" in \
            missing.diagnostics.sorted()[0].message


def test_plan_reports_a_remote_pin_that_moved_behind_the_lock(tmp_path: Path, monkeypatch) -> None:
    """`plan` refreshes, so it checks the remote pins of the datasets its environment uses: an
    object re-uploaded after `specops lock` is a problem naming the dataset and both pins, and
    apply refuses before running anything."""
    with s3_abalone(tmp_path, monkeypatch, (EXAMPLES / "abalone" / "data" / "abalone.csv").read_bytes()) as (repo, s3):
        locked = lock_repo(repo).sources["s3://data/abalone.csv"]
        r = CliRunner().invoke(main, ["plan", str(repo), "--env", "dev", "--json"])
        assert r.exit_code == 0, r.output
        assert json.loads(r.output)["problems"] == []

        live = s3.put_object(Bucket="data", Key="abalone.csv", Body=b"M,1\n")  # re-uploaded behind the lock
        r = CliRunner().invoke(main, ["plan", str(repo), "--env", "dev", "--json"])
        assert r.exit_code == 0, r.output
        assert json.loads(r.output)["problems"] == [
            (f"Dataset 'abalone': s3://data/abalone.csv changed since `specops lock`: locked etag {locked['etag']}, "
             f"versionId {locked['versionId']}, live etag {live['ETag'].strip(chr(34))}, versionId {live['VersionId']}; "
             "its data_check step refuses it until the data is reviewed and relocked")]
        text = CliRunner().invoke(main, ["plan", str(repo), "--env", "dev"]).output
        assert "Problem: Dataset 'abalone': s3://data/abalone.csv changed since `specops lock`" in text
        # Without a refresh, plan stays off the network.
        r = CliRunner().invoke(main, ["plan", str(repo), "--env", "dev", "--refresh=false", "--json"])
        assert json.loads(r.output)["problems"] == []
        r = CliRunner().invoke(main, ["apply", str(repo), "--env", "dev", "--auto-approve"])
        assert r.exit_code == 1 and "changed since `specops lock`" in r.output
        assert not (repo / ".specops" / "runs").exists()
        # Relocked after review, the plan is clean again.
        assert lock_repo(repo).written
        r = CliRunner().invoke(main, ["plan", str(repo), "--env", "dev", "--json"])
        assert json.loads(r.output)["problems"] == []
