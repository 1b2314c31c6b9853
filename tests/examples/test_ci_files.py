"""The CI integration files shipped in the repo: they parse, every `specops` command line in
them names an existing subcommand with existing flags (checked through `specops <cmd>
--help` with click's CliRunner and the commands' own parameters), and the pre-commit hooks
file passes pre-commit's own manifest schema (pre_commit.clientlib, a dev dependency)."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import click
import yaml
from click.testing import CliRunner

from specops.cli import main

ROOT = Path(__file__).resolve().parents[2]
GITHUB = ROOT / "examples" / "ci" / "github-actions.yml"
GITLAB = ROOT / "examples" / "ci" / "gitlab-ci.yml"
HOOKS = ROOT / ".pre-commit-hooks.yaml"


def _strings(v):
    if isinstance(v, str):
        yield v
    elif isinstance(v, dict):
        for x in v.values():
            yield from _strings(x)
    elif isinstance(v, list):
        for x in v:
            yield from _strings(x)


def specops_invocations(text: str) -> list[list[str]]:
    """Every `specops ...` command in shell text, as argv up to the next shell operator."""
    out = []
    for line in text.splitlines():
        for m in re.finditer(r"(?:^|[\s;(&|])specops\s", line):
            rest = line[m.start():].lstrip(" ;(&|")
            try:
                tokens = shlex.split(rest, posix=True)
            except ValueError:
                tokens = rest.split()
            argv = []
            for t in tokens:
                if t in (">", ">>", "||", "&&", "|", ";", "2>&1") or t.startswith(">") or t.endswith(";"):
                    if t.endswith(";") and t != ";":
                        argv.append(t[:-1])
                    break
                argv.append(t)
            if len(argv) > 1 and not argv[1].startswith("="):
                out.append(argv)
    return out


def check_invocation(argv: list[str]) -> None:
    assert argv[0] == "specops", argv
    cmd_name = argv[1]
    cmd = main.get_command(click.Context(main), cmd_name)
    assert cmd is not None, f"unknown subcommand in {argv}"
    r = CliRunner().invoke(main, [cmd_name, "--help"])
    assert r.exit_code == 0, r.output
    opts = {o: p for p in cmd.params for o in p.opts if o.startswith("-")}
    it = iter(argv[2:])
    for tok in it:
        if not tok.startswith("--"):
            continue
        flag, _, inline = tok.partition("=")
        assert flag in opts, f"{flag} is not an option of `specops {cmd_name}` ({argv})"
        assert flag in r.output, f"{flag} missing from `specops {cmd_name} --help`"
        p = opts[flag]
        if not getattr(p, "is_flag", False):
            val = inline or next(it)
            if isinstance(p.type, click.Choice) and "$" not in val:
                assert val in p.type.choices, f"{flag} {val}: not one of {p.type.choices}"


KIT = ROOT / "examples" / "ci"
GITHUB_FILES = [GITHUB, KIT / "github-apply.yml", KIT / "github-drift.yml"]


def github_runs(path: Path) -> list[str]:
    doc = yaml.safe_load(path.read_text())
    return [s["run"] for job in doc["jobs"].values() for s in job["steps"] if "run" in s]


def test_github_workflows_parse_and_use_real_commands():
    calls = {p.name: [argv for r in github_runs(p) for argv in specops_invocations(r)] for p in GITHUB_FILES}
    used = {(a[1], f) for c in calls.values() for a in c for f in a[2:] if f.startswith("--")}
    assert ("validate", "--format") in used and ("compile", "--check") in used
    assert ("diff", "--base") in used and ("plan", "--out") in used and ("show", "--format") in used
    assert {a[1] for a in calls["github-apply.yml"]} == {"plan", "apply"}
    assert {a[1] for a in calls["github-drift.yml"]} == {"drift"}
    for argv in (a for c in calls.values() for a in c):
        check_invocation(argv)
    pr = yaml.safe_load(GITHUB.read_text())
    assert any(s.get("uses", "").startswith("actions/github-script@") for s in pr["jobs"]["specops"]["steps"])
    assert pr["permissions"]["pull-requests"] == "write"
    apply = yaml.safe_load((KIT / "github-apply.yml").read_text())
    for env in ("dev", "staging", "prod"):
        job = apply["jobs"][f"apply-{env}"]
        assert job["environment"] == env and job["concurrency"]["group"] == f"specops-{env}"
    # CI context values reach the shell through env, never pasted into a script
    for p in GITHUB_FILES:
        for r in github_runs(p):
            assert "${{" not in r, r


def test_gitlab_jobs_parse_and_use_real_commands():
    doc = yaml.safe_load(GITLAB.read_text())
    scripts = [s for job in doc.values() if isinstance(job, dict) for s in _strings(job.get("script", []))]
    calls = [argv for s in scripts for argv in specops_invocations(s)]
    assert {a[1] for a in calls} == {"validate", "compile", "diff", "plan", "show", "apply", "drift"}
    for argv in calls:
        check_invocation(argv)
    prod = doc["apply:prod"]
    assert prod["environment"] == {"name": "prod"} and prod["rules"][0]["when"] == "manual"
    assert prod["resource_group"] == "specops-prod"


def test_precommit_hooks_match_pre_commits_schema():
    from pre_commit.clientlib import load_manifest

    hooks = load_manifest(str(HOOKS))  # raises InvalidManifestError on a schema violation
    ids = {h["id"] for h in hooks}
    assert ids == {"specops-validate", "specops-compile-check"}
    for h in hooks:
        argv = shlex.split(h["entry"])
        check_invocation(argv)
        assert h["pass_filenames"] is False


def test_the_checker_catches_a_bad_flag(tmp_path):
    import pytest

    with pytest.raises(AssertionError):
        check_invocation(["specops", "diff", "--bse", "origin/main"])
    with pytest.raises(AssertionError):
        check_invocation(["specops", "diff", "--base", "x", "--format", "html"])
    with pytest.raises(AssertionError):
        check_invocation(["specops", "difff"])
    bad = tmp_path / "bad-hooks.yaml"
    try:
        bad.write_text("- id: x\n  name: x\n  entry: specops validate\n  language: not-a-language\n")
        from pre_commit.clientlib import InvalidManifestError, load_manifest

        with pytest.raises(InvalidManifestError):
            load_manifest(str(bad))
    finally:
        bad.unlink(missing_ok=True)
