"""The CLI as a user meets it: exit codes, formats, no tracebacks, fast start."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

from click.testing import CliRunner

from specops.cli import main
from tests.compiler.build.repo_edits import scaled_repo

ROOT = Path(__file__).resolve().parents[3]
CHURN = ROOT / "examples" / "churn"


def run(*args: str):
    return CliRunner().invoke(main, list(args), catch_exceptions=False)


def broken_copy(tmp_path: Path) -> Path:
    repo = tmp_path / "repo"
    shutil.copytree(CHURN, repo, ignore=shutil.ignore_patterns("build", ".specops"))
    m = repo / "models" / "churn.yaml"
    m.write_text(m.read_text().replace("algorithm: gradient_boosting", "algoritm: gradient_boosting"))
    g = repo / "gates" / "auc.yaml"
    g.write_text(g.read_text().replace("model: churn-classifier", "model: churn-clasifier"))
    return repo


def test_validate_clean_example_exits_0() -> None:
    r = run("validate", str(CHURN))
    assert r.exit_code == 0, r.output


def test_validate_reports_all_errors_with_positions_and_suggestions(tmp_path: Path) -> None:
    r = run("validate", str(broken_copy(tmp_path)))
    assert r.exit_code == 1
    assert "models/churn.yaml:11:5: error: unknown field 'algoritm'; did you mean 'algorithm'? [unknown-field]" in r.output
    assert "gates/auc.yaml:6:10: error: unknown Model 'churn-clasifier'; did you mean 'churn-classifier'? [unresolved-ref]" in r.output
    assert "     ^^^^^^^^" in r.output  # the caret under the key
    assert "Traceback" not in r.output


def test_validate_json_format(tmp_path: Path) -> None:
    r = run("validate", str(broken_copy(tmp_path)), "--format", "json")
    assert r.exit_code == 1
    doc = json.loads(r.stdout)
    codes = [(d["file"], d["line"], d["column"], d["code"]) for d in doc["diagnostics"]]
    assert codes == [("gates/auc.yaml", 6, 10, "unresolved-ref"), ("models/churn.yaml", 11, 5, "unknown-field")]


def test_validate_github_annotations(tmp_path: Path) -> None:
    r = run("validate", str(broken_copy(tmp_path)), "--format", "github")
    assert r.exit_code == 1
    assert "::error file=models/churn.yaml,line=11,col=5,title=specops unknown-field::unknown field 'algoritm'" in r.stdout


def test_no_project_is_one_clear_line(tmp_path: Path) -> None:
    r = run("validate", str(tmp_path))
    assert r.exit_code == 1
    assert "no specops.yaml found" in r.output and "specops init" in r.output


def test_render_is_deterministic_and_applies_overrides() -> None:
    a = run("render", str(CHURN), "--env", "prod")
    b = run("render", str(CHURN), "--env", "prod")
    assert a.exit_code == 0 and a.stdout == b.stdout
    assert "instanceType: ml.m5.xlarge" in a.stdout  # from overrides.prod
    dev = run("render", str(CHURN), "--env", "dev").stdout
    assert "instanceType" not in dev


def test_render_unknown_env_suggests() -> None:
    r = run("render", str(CHURN), "--env", "prdo")
    assert r.exit_code == 1 and "did you mean 'prod'" in r.output


def test_graph_mermaid_and_dot() -> None:
    m = run("graph", str(CHURN), "--env", "dev").stdout
    assert m.startswith("flowchart LR\n")
    assert "Dataset_customers --> Model_churn_classifier" in m
    d = run("graph", str(CHURN), "--format", "dot").stdout
    assert '"Dataset/customers" -> "Model/churn-classifier";' in d


def test_init_scaffolds_a_repo_that_validates(tmp_path: Path) -> None:
    target = tmp_path / "My Repo"
    r = run("init", str(target))
    assert r.exit_code == 0, r.output
    assert run("validate", str(target)).exit_code == 0
    assert "name: my-repo" in (target / "specops.yaml").read_text()
    assert "# Editor completion" in (target / "specops.yaml").read_text()  # comments survive
    assert ".specops/" in (target / ".gitignore").read_text()
    again = run("init", str(target))
    assert again.exit_code == 1 and "already exists" in again.output


def test_unexpected_exceptions_are_one_line(tmp_path: Path, monkeypatch) -> None:
    import specops.frontend.loader

    def boom(*a, **k):
        raise RuntimeError("disk on fire")

    monkeypatch.setattr(specops.frontend.loader, "load", boom)
    repo = tmp_path / "churn"  # a fresh copy: no validate cache to answer without loading
    shutil.copytree(CHURN, repo, ignore=shutil.ignore_patterns("build", ".specops"))
    r = CliRunner().invoke(main, ["validate", str(repo)])
    assert r.exit_code == 1
    assert "specops: error: RuntimeError: disk on fire [internal]" in r.output
    assert "Traceback" not in r.output


def test_help_imports_nothing_heavy() -> None:
    code = ("import sys; import specops.cli as c; "
            "heavy = [m for m in ('pydantic', 'yaml', 'ruamel', 'jinja2', 'rich', 'kfp', 'zenml', 'boto3', 'torch') "
            "if m in sys.modules]; print(heavy)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_github_annotations_are_relative_to_the_git_checkout(tmp_path: Path) -> None:
    """Specs in a sub-folder of a git repo: annotation paths must be the checkout's paths."""
    repo = broken_copy(tmp_path / "checkout" / "ml")
    subprocess.run(["git", "init", "-q", str(tmp_path / "checkout")], check=True)
    r = run("validate", str(repo), "--format", "github")
    assert "::error file=ml/repo/models/churn.yaml,line=11,col=5," in r.stdout


def test_validate_one_environment(tmp_path: Path) -> None:
    # An error that only exists in prod (its override) is not reported for staging alone.
    repo = tmp_path / "repo"
    shutil.copytree(CHURN, repo, ignore=shutil.ignore_patterns("build", ".specops"))
    m = repo / "models" / "churn.yaml"
    m.write_text(m.read_text().replace("registry: {aliases: [champion]}", "registry: {aliases: champion}"))
    assert run("validate", str(repo), "--env", "staging").exit_code == 0
    r = run("validate", str(repo), "--env", "prod")
    assert r.exit_code == 1 and "models/churn.yaml:26:" in r.output and "[type]" in r.output
    assert run("validate", str(repo), "--env", "prdo").exit_code == 1


def test_identical_warnings_fold_into_one_line_unless_verbose(tmp_path: Path) -> None:
    repo = scaled_repo(tmp_path / "scaled")
    hf = "does not pass this Hugging Face token to the endpoint"
    r = run("validate", str(repo))
    assert r.exit_code == 0, r.output
    lines = [x for x in r.output.splitlines() if hf in x]
    assert len(lines) == 1 and lines[0].startswith("team0/copy0/serving/support-llm.yaml:26:5: warning:")
    assert "(3 times)" in lines[0]
    assert "the same warning at 2 more places in 3 files; --verbose shows each" in r.output
    assert "0 errors, 3 warnings (2 identical ones folded; --verbose shows each)" in r.output
    v = run("validate", "--verbose", str(repo))
    assert [x.split(":")[0] for x in v.output.splitlines() if hf in x] == [
        f"team{i}/copy{i}/serving/support-llm.yaml" for i in range(3)]
    assert "folded" not in v.output and "times)" not in v.output
    c = run("compile", str(repo))
    assert c.exit_code == 0, c.output
    assert sum("the LMI container runs vLLM" in x for x in c.output.splitlines()) == 1
    cv = run("compile", "-v", str(repo))  # the no-op path: the cached build's warnings, each
    assert sum("the LMI container runs vLLM" in x for x in cv.output.splitlines()) == 3
    j = json.loads(run("validate", "--json", str(repo)).output)  # JSON always lists each
    assert sum(hf in d["message"] for d in j["diagnostics"]) == 3


def test_identical_errors_are_never_folded(tmp_path: Path) -> None:
    repo = scaled_repo(tmp_path / "scaled")
    for i in range(3):
        f = repo / f"team{i}" / f"copy{i}" / "models" / "support-llm.yaml"
        f.write_text(f.read_text().replace("epochs: 2", "epochs: -1"))
    r = run("validate", str(repo))
    assert r.exit_code == 1
    assert sum(": error:" in x and "epochs" in x for x in r.output.splitlines()) == 3, r.output
    assert "3 errors, " in r.output
