"""`specops diff --base REF`: real git repositories (made in tmp_path from the examples), the
real compiler on both sides, the CLI through click's CliRunner. The Mermaid blocks are parsed
by a strict grammar check of the flowchart subset we emit, and by Mermaid's own parser under
node when node and npm are on the machine (installed once into ~/.cache/specops-test-mermaid)."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest
from click.testing import CliRunner

from specops.cli import main
from specops.diff.repo import artifact_diff, structural_diff

EXAMPLES = Path(__file__).resolve().parents[3] / "examples"
GIT_ENV = {"GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@example.com", "GIT_COMMITTER_NAME": "t",
           "GIT_COMMITTER_EMAIL": "t@example.com",
           "GIT_OPTIONAL_LOCKS": "0"}  # `git status` must not refresh the index we compare


def git(repo: Path, *args: str) -> str:
    return subprocess.run(["git", *args], cwd=repo, check=True, capture_output=True, text=True,
                          env={**os.environ, **GIT_ENV}).stdout


def make_repo(tmp: Path, example: str, sub: str = "specs") -> tuple[Path, Path]:
    """A git repo holding the example under `sub/` (a spec repo inside a larger repo)."""
    top = tmp / "repo"
    (top / sub).parent.mkdir(parents=True, exist_ok=True)
    shutil.copytree(EXAMPLES / example, top / sub, ignore=shutil.ignore_patterns("build", ".specops", "__pycache__"))
    (top / "README.md").write_text("outer repo\n")
    git(top, "init", "-q")
    git(top, "add", "-A")
    git(top, "commit", "-qm", "base")
    return top, top / sub


def edit(path: Path, old: str, new: str, count: int = -1) -> None:
    text = path.read_text()
    assert old in text, (old, path)
    path.write_text(text.replace(old, new, count))


def run_diff(spec_root: Path, *args: str) -> tuple[int, str, str]:
    r = CliRunner().invoke(main, ["diff", str(spec_root), *args])
    return r.exit_code, r.stdout, r.stderr


def as_json(spec_root: Path, *args: str) -> tuple[int, dict]:
    code, out, err = run_diff(spec_root, "--format", "json", *args)
    return code, json.loads(out)


@pytest.fixture(scope="module")
def support(tmp_path_factory):
    return make_repo(tmp_path_factory.mktemp("support"), "support-assistant")


def _state(top: Path) -> tuple:
    idx = top / ".git" / "index"
    return (git(top, "status", "--porcelain", "--ignored", "-uall"), idx.stat().st_mtime_ns, idx.read_bytes(),
            git(top, "worktree", "list", "--porcelain"))


def test_dataset_bump_shows_every_dependent_pipeline_in_every_env(tmp_path):
    top, root = make_repo(tmp_path, "support-assistant")
    edit(root / "datasets" / "tickets.yaml", "version: v3", "version: v4")  # the spec and both overrides
    git(top, "commit", "-qam", "tickets v4")
    before = _state(top)
    code, doc = as_json(root, "--base", "HEAD~1")
    assert code == 2
    assert _state(top) == before, "diff changed the working tree, the index or the worktree list"
    res = {(r["env"], r["backend"], r["resource"]): r for r in doc["resources"]}
    for env, backend in (("dev", "zenml"), ("staging", "kfp"), ("prod", "sagemaker")):
        r = res[(env, backend, "Model/support-llm")]
        assert r["status"] == "changed"
        assert [c["spec"] for c in r["causes"]] == ["Dataset/support-tickets"]
        assert r["causes"][0]["file"] == "datasets/tickets.yaml"
        paths = [ch["path"] for a in r["artifacts"] for ch in a.get("changes", [])]
        assert any(p.endswith("dataset.version") for p in paths), paths
        old_new = [(ch["old"], ch["new"]) for a in r["artifacts"] for ch in a.get("changes", [])
                   if ch["path"].endswith("dataset.version")]
        assert ("v3", "v4") in old_new
    # Serving is not caused by a dataset bump: nothing there changes.
    assert not [r for r in doc["resources"] if r["resource"].startswith("ServingTarget/")]
    assert doc["base"]["path"] == "specs" and doc["schemaVersion"] == 1
    code, text, _ = run_diff(root, "--base", "HEAD~1")
    assert code == 2
    assert "caused by Dataset/support-tickets (datasets/tickets.yaml)" in text
    assert "\x1b[" not in text  # no colour codes when not a TTY


def test_dataset_bump_in_churn_reaches_each_backend(tmp_path):
    top, root = make_repo(tmp_path, "churn", sub="examples/churn")
    edit(root / "datasets" / "customers.yaml", "version:", "version: v99 #", 1)
    code, doc = as_json(root, "--base", "HEAD")
    assert code == 2
    got = {(r["env"], r["backend"]) for r in doc["resources"] if r["resource"] == "Model/churn-classifier"}
    assert got == {("dev", "zenml"), ("staging", "kfp"), ("prod", "sagemaker")}
    for r in doc["resources"]:
        assert r["causes"][0]["spec"] == "Dataset/customers", r


def test_prompt_edit_is_a_spec_change_without_pipeline_churn(support):
    top, root = support
    f = root / "prompts" / "triage.yaml"
    orig = f.read_text()
    try:
        edit(f, "Reply with the category only.", "Reply with the category name only.")
        code, doc = as_json(root, "--base", "HEAD")
        assert code == 2
        assert doc["resources"] == []  # nothing compiled consumes ticket-triage
        for env in ("dev", "staging", "prod"):
            (c,) = doc["specs"][env]
            assert c["spec"] == "Prompt/ticket-triage" and c["status"] == "changed"
            assert [ch["path"] for ch in c["changes"]] == ["spec.template"]
        code, md, _ = run_diff(root, "--base", "HEAD", "--format", "markdown")
        assert code == 2 and "no compiled artifact consumes it" in md
    finally:
        f.write_text(orig)


def test_identical_refs_exit_0_with_no_changes(support):
    top, root = support
    code, out, _ = run_diff(root, "--base", "HEAD")
    assert code == 0
    assert out.strip() == "no changes"
    code, doc = as_json(root, "--base", "HEAD")
    assert code == 0 and doc["changed"] is False and doc["resources"] == []


def test_serving_change_reports_capacity_before_after(support):
    top, root = support
    f = root / "serving" / "support-llm.yaml"
    orig = f.read_text()
    try:
        m = re.search(r"max-model-len:\s*(\d+)", orig)
        assert m, "the example sets max-model-len"
        f.write_text(orig.replace(m.group(0), f"max-model-len: {int(m.group(1)) // 2}"))
        code, doc = as_json(root, "--base", "HEAD")
        assert code == 2
        assert doc["capacity"], doc
        for c in doc["capacity"]:
            assert c["after"]["maxModelLen"] == c["before"]["maxModelLen"] // 2
            assert c["after"]["maxSequences"] > c["before"]["maxSequences"]
        vllm = [a for r in doc["resources"] for a in r["artifacts"] if a["path"].endswith("vllm.yaml")]
        assert vllm and all(ch["path"] == "max-model-len" for a in vllm for ch in a["changes"])
        code, md, _ = run_diff(root, "--base", "HEAD", "--format", "markdown")
        assert "#### GPU capacity" in md and "→ **" in md
    finally:
        f.write_text(orig)


def test_invalid_base_reports_the_base_errors(tmp_path):
    top, root = make_repo(tmp_path, "support-assistant")
    edit(root / "datasets" / "tickets.yaml", "    format: jsonl\n", "    formatt: jsonl\n", 1)
    git(top, "commit", "-qam", "broken")
    git(top, "revert", "--no-edit", "HEAD")
    code, out, err = run_diff(root, "--base", "HEAD~1")
    assert code == 1
    assert "Traceback" not in out + err
    line = next(ln for ln in err.splitlines() if "unknown field 'formatt'" in ln)
    assert line.startswith("base HEAD~1 (") and "datasets/tickets.yaml:10:5: error:" in line
    code, out, _ = run_diff(root, "--base", "HEAD~1", "--format", "json")
    assert code == 1
    err_doc = json.loads(out)["error"]
    assert err_doc["side"] == "base" and err_doc["diagnostics"][0]["line"] == 10


def test_unknown_ref_and_env_are_errors(support):
    top, root = support
    code, _, err = run_diff(root, "--base", "no-such-branch")
    assert code == 1 and "unknown git ref 'no-such-branch'" in err
    code, _, err = run_diff(root, "--base", "HEAD", "--env", "prdo")
    assert code == 1 and "unknown environment 'prdo'" in err and "prod" in err


def test_base_without_spec_repo_shows_everything_added(tmp_path):
    top = tmp_path / "repo"
    top.mkdir()
    (top / "README.md").write_text("x\n")
    git(top, "init", "-q")
    git(top, "add", "-A")
    git(top, "commit", "-qm", "empty")
    shutil.copytree(EXAMPLES / "churn", top / "ml", ignore=shutil.ignore_patterns("build", ".specops"))
    code, doc = as_json(top / "ml", "--base", "HEAD")
    assert code == 2 and doc["base"]["specRepo"] is False
    assert doc["resources"] and all(r["status"] == "added" for r in doc["resources"])


# ---- the Mermaid block ---------------------------------------------------------------------

_NODE = re.compile(r'^  ([A-Za-z0-9_]+)(\[\(|\[/|\{\{|\(\[|\[)"([^"\n]*)"(\)\]|/\]|\}\}|\]\)|\])$')
_SHAPES = {"[(": ")]", "[/": "/]", "{{": "}}", "([": "])", "[": "]"}
_EDGE = re.compile(r"^  ([A-Za-z0-9_]+) --> ([A-Za-z0-9_]+)$")
_CLASSDEF = re.compile(r"^  classDef [A-Za-z_]+ [a-z-]+:#[0-9a-f]{6}(,[a-z-]+:#[0-9a-f]{6})*$")
_CLASS = re.compile(r"^  class ([A-Za-z0-9_]+) [A-Za-z_]+$")


def strict_flowchart_check(text: str) -> None:
    """The grammar of the flowchart subset graph.render_mermaid emits; anything else fails."""
    lines = text.rstrip("\n").split("\n")
    assert lines[0] == "flowchart LR", lines[0]
    ids: set[str] = set()
    for ln in lines[1:]:
        if m := _NODE.match(ln):
            assert _SHAPES[m.group(2)] == m.group(4), ln
            assert m.group(1) not in ids, f"duplicate node {ln}"
            ids.add(m.group(1))
        elif m := _EDGE.match(ln):
            assert {m.group(1), m.group(2)} <= ids, f"edge to an undeclared node: {ln}"
        elif _CLASSDEF.match(ln):
            pass
        elif m := _CLASS.match(ln):
            assert m.group(1) in ids, ln
        else:
            raise AssertionError(f"not in the emitted flowchart grammar: {ln!r}")


MERMAID_CHECK = r"""
import { JSDOM } from 'jsdom';
import { readFileSync } from 'fs';
const dom = new JSDOM('<!doctype html><html><body></body></html>');
globalThis.window = dom.window; globalThis.document = dom.window.document;
const { default: mermaid } = await import('mermaid');
mermaid.initialize({ startOnLoad: false });
const blocks = JSON.parse(readFileSync(0, 'utf8'));
const out = [];
for (const b of blocks) {
  try { const r = await mermaid.parse(b); out.push({ ok: true, type: r.diagramType }); }
  catch (e) { out.push({ ok: false, error: String(e.message || e) }); }
}
console.log(JSON.stringify(out));
"""


def _mermaid_dir() -> Path | None:
    if not (shutil.which("node") and shutil.which("npm")):
        return None
    d = Path(os.environ.get("SPECOPS_MERMAID_DIR", Path.home() / ".cache" / "specops-test-mermaid"))
    if not (d / "node_modules" / "mermaid").is_dir():
        d.mkdir(parents=True, exist_ok=True)
        (d / "package.json").write_text('{"name": "specops-mermaid-check", "private": true}\n')
        r = subprocess.run(["npm", "install", "--no-audit", "--no-fund", "mermaid@11", "jsdom@26"], cwd=d,
                           capture_output=True, text=True, timeout=300)
        if r.returncode != 0:
            return None
    (d / "check.mjs").write_text(MERMAID_CHECK)
    return d


def test_markdown_mermaid_blocks_parse(support):
    top, root = support
    f = root / "datasets" / "tickets.yaml"
    orig = f.read_text()
    try:
        edit(f, "version: v3", "version: v4")
        code, md, _ = run_diff(root, "--base", "HEAD", "--format", "markdown")
    finally:
        f.write_text(orig)
    assert code == 2
    assert "| environment | backend | resource | change | artifacts | caused by |" in md
    assert "<details>" in md and "</details>" in md
    blocks = re.findall(r"```mermaid\n(.*?)```", md, re.S)
    assert len(blocks) == 3  # one per environment with changes
    for b in blocks:
        strict_flowchart_check(b)
        assert "class Dataset_support_tickets changed" in b and "class Model_support_llm changed" in b
    d = _mermaid_dir()
    if d is None:
        pytest.skip("node/npm not available: Mermaid's own parser not run (strict grammar check passed)")
    r = subprocess.run(["node", "check.mjs"], cwd=d, input=json.dumps(blocks), capture_output=True, text=True,
                       timeout=120)
    assert r.returncode == 0, r.stderr
    results = json.loads(r.stdout)
    assert results == [{"ok": True, "type": "flowchart-v2"}] * 3, results
    # and the parser does reject a broken block (the check can fail)
    r = subprocess.run(["node", "check.mjs"], cwd=d, input=json.dumps(['flowchart LR\n  A["x --> B\n']),
                       capture_output=True, text=True, timeout=120)
    assert json.loads(r.stdout)[0]["ok"] is False


def test_strict_check_rejects_what_we_do_not_emit():
    with pytest.raises(AssertionError):
        strict_flowchart_check('flowchart LR\n  A["a"]\n  A --> B\n')
    with pytest.raises(AssertionError):
        strict_flowchart_check('flowchart LR\n  A["a"}\n')


# ---- the structural diff -----------------------------------------------------------------------


def test_structural_diff_paths_and_named_lists():
    old = {"root": {"dag": {"tasks": {"train": {"componentRef": {"name": "comp-train"}}}}},
           "containers": [{"name": "a", "image": "x:1"}, {"name": "b", "image": "y:1"}]}
    new = {"root": {"dag": {"tasks": {"train": {"componentRef": {"name": "comp-train-2"}}}}},
           "containers": [{"name": "z", "image": "n:1"}, {"name": "a", "image": "x:2"}, {"name": "b", "image": "y:1"}]}
    ch = structural_diff(old, new)
    assert {"path": "root.dag.tasks.train.componentRef.name", "op": "changed", "old": "comp-train",
            "new": "comp-train-2"} in ch
    assert {"path": "containers[name=a].image", "op": "changed", "old": "x:1", "new": "x:2"} in ch
    assert {"path": "containers[name=z]", "op": "added", "new": {"name": "z", "image": "n:1"}} in ch
    assert len(ch) == 3  # b is unchanged although it moved


def test_artifact_diff_ignores_formatting_and_falls_back_to_text():
    a = artifact_diff("x.yaml", b"a: 1\nb: [1, 2]\n", b"b:\n  - 1\n  - 2\na: 2\n")
    assert a["format"] == "yaml" and a["changes"] == [{"path": "a", "op": "changed", "old": 1, "new": 2}]
    j = artifact_diff("x.json", b'{"p": "{\\"v\\": 1}"}', b'{"p": "{\\"v\\": 2}"}')
    assert j["changes"][0]["path"] == "p<json>.v"
    t = artifact_diff("pipeline.py", b"x = 1\n", b"x = 2\n")
    assert t["format"] == "text" and "-x = 1" in t["text"] and "+x = 2" in t["text"]


def test_prompt_edit_reruns_its_gate_and_changes_nothing_in_serving(tmp_path):
    top, root = make_repo(tmp_path, "support-assistant")
    edit(root / "prompts" / "support-reply.yaml", "never promise refunds.", "never promise refunds or credits.")
    code, doc = as_json(root, "--base", "HEAD")
    assert code == 2
    # Only the pipelines change, each through the gate's evaluation params, caused by the prompt
    # (and the spec digest the register step records for the version that run registers).
    assert {r["resource"] for r in doc["resources"]} == {"Model/support-llm"}
    for r in doc["resources"]:
        assert [c["spec"] for c in r["causes"]] == ["Prompt/support-reply"], r["causes"]
        paths = [f"{a['path']}:{ch['path']}" for a in r["artifacts"] for ch in a.get("changes", [])]
        evals = [p for p in paths if not re.search(r"register\W.*spec_digest", p)]
        assert evals and all(re.search(r"eval[-_]support[-_]quality", p) for p in evals), paths
    assert doc["gates"] == {env: [{"gate": "support-quality", "causes": ["Prompt/support-reply"]}]
                            for env in ("dev", "staging", "prod")}
    code, text, _ = run_diff(root, "--base", "HEAD")
    assert "gate     support-quality re-runs: caused by Prompt/support-reply" in text
    code, md, _ = run_diff(root, "--base", "HEAD", "--format", "markdown")
    assert "#### Gates that re-run" in md and "| prod | `support-quality` | Prompt/support-reply |" in md
