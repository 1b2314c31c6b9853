"""The semantic checks' records (build/checkrecords.py, .specops/cache/checks.json) beyond the
edit sequences of test_incremental.py: what is replayed when nothing changed, what an
`--env` run keeps for the other environments, a repo that does not resolve, and a records
file that is damaged or of another shape."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from specops.build import cache
from specops.build.checkrecords import FILE, records_of
from specops.checks import analyze
from tests.compiler.build.repo_edits import scaled_repo, toggle

PER_NODE = ("check_prompt", "check_gate", "check_dataset", "check_model", "check_serving")


@pytest.fixture(scope="module")
def scaled(tmp_path_factory) -> Path:
    return scaled_repo(tmp_path_factory.mktemp("scaled") / "repo")


@pytest.fixture()
def repo(scaled, tmp_path) -> Path:
    out = tmp_path / "repo"
    shutil.copytree(scaled, out)
    return out


@pytest.fixture()
def checked(monkeypatch) -> list[str]:
    """The keys of the nodes whose per-node checks run (not replayed)."""
    from specops.checks import semantics

    keys: list[str] = []
    for name in PER_NODE:
        real = getattr(semantics, name)
        monkeypatch.setattr(semantics, name, lambda *a, real=real: keys.append(a[-2].key) or real(*a))
    return keys


def rows(resolved) -> list:
    return [d.to_row() for d in resolved.diagnostics.sorted()]


def cold(repo: Path) -> list:
    return rows(analyze(repo))


def test_unchanged_repo_runs_no_per_node_check(repo, checked):
    first = rows(analyze(repo, parse_memo=True, records=records_of))
    assert checked  # the first run checks everything
    checked.clear()
    again = rows(analyze(repo, parse_memo=True, records=records_of))
    assert checked == []
    assert first == again
    checked.clear()
    assert again == cold(repo)


def test_an_env_run_keeps_the_other_environments_records(repo, checked):
    analyze(repo, parse_memo=True, records=records_of)
    analyze(repo, ["prod"], parse_memo=True, records=records_of)
    stored = json.loads((cache.cache_dir_of(repo) / FILE).read_bytes())["scopes"]
    assert {rec[0] for rec in stored.values()} == {None, "dev", "prod", "staging"}
    checked.clear()
    warm = rows(analyze(repo, parse_memo=True, records=records_of))
    assert checked == []  # the prod run kept dev's and staging's records
    assert warm == cold(repo)


def test_a_repo_that_does_not_resolve_is_checked_in_full(repo, checked):
    """An unresolved name links nothing in the dependency index, so nothing is replayed
    while one stands (two specs naming the same missing name can read each other's)."""
    analyze(repo, parse_memo=True, records=records_of)
    toggle(repo / "team1" / "copy1" / "gates" / "quality.yaml", "prompt: support-reply-1\n",
           "prompt: support-reply-zz\n")
    checked.clear()
    warm = analyze(repo, parse_memo=True, records=records_of)
    assert warm.diagnostics.has_errors
    assert "ServingTarget/support-llm-0" in checked  # a unit the edit did not reach
    assert rows(warm) == cold(repo)


@pytest.mark.parametrize("damage", ["garbage", "rows", "scopes"])
def test_damaged_records_are_not_replayed(repo, damage):
    analyze(repo, parse_memo=True, records=records_of)
    path = cache.cache_dir_of(repo) / FILE
    rec = json.loads(path.read_bytes())
    if damage == "garbage":
        path.write_bytes(b"\x00not json")
    else:
        for scope, value in rec["scopes"].items():
            if damage == "rows":
                value[1] = {call: [["warning", "value"]] for call in value[1]}  # rows of the wrong length
            else:
                rec["scopes"][scope] = "not a record"
        path.write_text(json.dumps(rec))
    assert rows(analyze(repo, parse_memo=True, records=records_of)) == cold(repo)


RULES = """apiVersion: specops.dev/v1alpha1
kind: Rule
metadata: {name: one-gpu}
spec:
  expression: gpus <= 1
  severity: warning
---
apiVersion: specops.dev/v1alpha1
kind: Rule
metadata: {name: kv-headroom}
spec:
  expression: kv_headroom == null || kv_headroom >= 0.5
  severity: warning
---
apiVersion: specops.dev/v1alpha1
kind: Rule
metadata: {name: team-label}
spec:
  expression: has(labels.team) && name.size() > 40
  severity: warning
"""


@pytest.mark.parametrize("share", [None, 2])
def test_rule_evaluations_are_replayed_as_a_cold_run_makes_them(repo, monkeypatch, share):
    """Policy rules over every node: replayed per node while its unit and the rules are
    unchanged; with a step budget that runs out half way (`share`), the evaluations it stops
    are the ones a cold run stops."""
    from specops.checks import cel

    (repo / "rules.yaml").write_text(RULES)
    budgets: list = []
    real = cel.Budget
    monkeypatch.setattr(cel, "Budget", lambda total=None: budgets.append(real(total)) or budgets[-1])
    if share:
        cold(repo)
        used = cel.MAX_TOTAL_STEPS - budgets[-1].left
        monkeypatch.setattr(cel, "MAX_STEPS", 2)  # an evaluation here takes a step or two
        monkeypatch.setattr(cel, "MAX_TOTAL_STEPS", used // share)
    first = rows(analyze(repo, parse_memo=True, records=records_of))
    assert any("rule 'team-label'" in r[2] for r in first)
    assert first == cold(repo)
    if share:
        assert any("evaluation steps" in r[2] for r in first)  # the budget did run out
    for edit in range(2):
        # The first copy's unit comes first in the evaluation order: its evaluations are
        # recalled by their bound values (the version is not bound), before the budget ends.
        toggle(repo / "team0" / "copy0" / "prompts" / "support-reply.yaml", "version: 4", "version: 5")
        toggle(repo / "team1" / "copy1" / "serving" / "support-llm.yaml", "accelerator: {type: L4, count: 1}",
               "accelerator: {type: L4, count: 2}")
        warm = rows(analyze(repo, parse_memo=True, records=records_of))
        assert warm == cold(repo), edit


def test_monitor_records_see_a_model_named_like_its_job(tmp_path):
    """A monitor's scheduled job is pipeline `monitor-<name>`: a Model of that name, which no
    reference links to the monitor, still changes what the monitor's check reports."""
    from tests.compiler.build.repo_edits import add_remove

    repo = tmp_path / "churn"
    shutil.copytree(Path(__file__).resolve().parents[3] / "examples" / "churn", repo)
    # A Model (and its own Dataset) that nothing in the monitor's unit names.
    clash = """apiVersion: specops.dev/v1alpha1
kind: Model
metadata: {name: monitor-churn-drift}
spec:
  type: classical
  datasets: [{dataset: clash-data, split: train}]
  classical: {algorithm: gradient_boosting, task: classification, target: churned}
---
apiVersion: specops.dev/v1alpha1
kind: Dataset
metadata: {name: clash-data}
spec:
  source: {uri: file://data/production.csv, format: csv, version: "2024-08"}
  splits: {train: 1.0}
"""
    monitor = repo / "monitors" / "churn-drift.yaml"
    first = rows(analyze(repo, parse_memo=True, records=records_of))
    assert first == cold(repo)
    for step in ("clash", "threshold", "clash", "threshold"):
        if step == "clash":
            add_remove(repo / "models" / "clash.yaml", clash)
        else:
            toggle(monitor, 'threshold: ">= 0.7"', 'threshold: ">= 0.7%"')
        warm = rows(analyze(repo, parse_memo=True, records=records_of))
        assert warm == cold(repo), step
        present = (repo / "models" / "clash.yaml").exists()
        assert present == any("which is also a Model's name" in r[2] for r in warm), step
