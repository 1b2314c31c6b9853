"""Policy rules: team rules in CEL (cel-python, evaluated for real) over the resolved specs of
the examples, the built-in rule set, and the bounds on what one expression may cost."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from click.testing import CliRunner

from specops.checks import analyze, cel
from specops.checks.rules import mutable_image
from specops.cli import main

ROOT = Path(__file__).resolve().parents[3]
BUDGET = """\
apiVersion: specops.dev/v1alpha1
kind: Rule
metadata: {name: serving-budget}
environments: [prod]
spec:
  expression: cost_per_hour <= 50
  message: prod serving must cost at most $50 an hour
"""


def example(tmp_path: Path, name: str = "support-assistant") -> Path:
    root = tmp_path / name
    shutil.copytree(ROOT / "examples" / name, root, ignore=shutil.ignore_patterns("build", ".specops"))
    return root


def write(root: Path, rel: str, text: str) -> None:
    (root / rel).parent.mkdir(parents=True, exist_ok=True)
    (root / rel).write_text(text, encoding="utf-8")


def errors(root: Path) -> list:
    return [d for d in analyze(root).diagnostics.sorted() if d.severity == "error"]


def edit(root: Path, rel: str, old: str, new: str) -> None:
    text = (root / rel).read_text(encoding="utf-8")
    assert old in text, old
    (root / rel).write_text(text.replace(old, new), encoding="utf-8")


def test_cost_rule_blocks_the_prod_plan_of_support_assistant_at_the_serving_specs_line(tmp_path):
    root = example(tmp_path)
    write(root, "rules/budget.yaml", BUDGET)
    r = CliRunner().invoke(main, ["plan", str(root), "--env", "prod"], catch_exceptions=False)
    assert r.exit_code == 1
    # the ServingTarget's name line, with its price from the capacity catalogue (H100 on p5.48xlarge)
    assert ("serving/support-llm.yaml:4:9: error: rule 'serving-budget' fails for ServingTarget/support-llm in "
            "env 'prod': prod serving must cost at most $50 an hour (cost_per_hour = 113.07) [policy]") in r.output
    assert "rule at rules/budget.yaml:6:15: cost_per_hour <= 50" in r.output
    # staging is outside the rule's environments; a budget the target meets passes
    assert [d.code for d in errors(root)] == ["policy"]
    edit(root, "rules/budget.yaml", "cost_per_hour <= 50", "cost_per_hour <= 200")
    assert errors(root) == []


def test_builtin_rule_stops_a_prod_serving_target_that_names_no_gates(tmp_path):
    root = example(tmp_path)
    # prod without requireGates (which refuses an unguarded target on its own), no gate in
    # the target, and neither EvalGate blocking prod any more
    edit(root, "specops.yaml", "policy: {requireGates: true, drift: report, prune: false}",
         "policy: {drift: report, prune: false}")
    edit(root, "serving/support-llm.yaml", "    gates: [support-quality, support-no-regression]\n", "")
    edit(root, "serving/support-llm.yaml", "  gates: [support-quality]\n", "")
    edit(root, "gates/regression.yaml", "blocks: [prod]", "blocks: []")
    edit(root, "gates/quality.yaml", "blocks: [staging, prod]", "blocks: [staging]")
    got = errors(root)
    assert [(d.file, d.pos.line, d.code) for d in got] == [("serving/support-llm.yaml", 4, "policy")], got
    assert "built-in rule 'prod-serving-names-gates'" in got[0].message and "'prod'" in got[0].message
    # switched off per rule in the Project
    edit(root, "specops.yaml", "  state:\n", "  rules: {disable: [prod-serving-names-gates]}\n  state:\n")
    assert errors(root) == []


def test_builtin_rule_refuses_a_mutable_image_in_prod_only(tmp_path):
    root = example(tmp_path)
    edit(root, "serving/support-llm.yaml", "    instanceType: ml.p5.48xlarge\n",
         "    instanceType: ml.p5.48xlarge\n    image: vllm/vllm-openai:latest\n")
    got = errors(root)
    assert [(d.file, d.pos.line, d.pos.col, d.code) for d in got] == [("serving/support-llm.yaml", 31, 12, "policy")]
    assert "'vllm/vllm-openai:latest' in production environment 'prod' is mutable" in got[0].message
    edit(root, "serving/support-llm.yaml", "vllm/vllm-openai:latest", "vllm/vllm-openai@sha256:" + "a" * 64)
    assert errors(root) == []
    # the Project's default serving image, refused where prod uses it
    edit(root, "specops.yaml", "servingImage: vllm/vllm-openai:v0.32.0", "servingImage: vllm/vllm-openai")
    edit(root, "serving/support-llm.yaml", "    image: vllm/vllm-openai@sha256:" + "a" * 64 + "\n", "")
    got = errors(root)
    assert [(d.file, d.code) for d in got] == [("specops.yaml", "policy")], got
    assert "default serving image 'vllm/vllm-openai'" in got[0].message


@pytest.mark.parametrize("ref,mutable", [
    ("vllm/vllm-openai", True), ("vllm/vllm-openai:latest", True), ("localhost:5000/x", True),
    ("localhost:5000/x:latest", True), ("vllm/vllm-openai:v0.32.0", False),
    ("vllm/vllm-openai@sha256:" + "a" * 64, False), ("x:latest@sha256:" + "b" * 64, False),
])
def test_mutable_image(ref, mutable):
    assert mutable_image(ref) is mutable


def test_builtin_rule_keeps_pii_datasets_where_the_environment_allows_them(tmp_path):
    root = example(tmp_path)
    edit(root, "datasets/tickets.yaml", "contains: false", "contains: true")
    got = errors(root)
    # the dataset exists in dev, staging and prod: one error per environment, at `contains`
    assert {(d.file, d.pos.line, d.code) for d in got} == {("datasets/tickets.yaml", 24, "policy")}
    assert sorted(d.message.split("environment '")[1].split("'")[0] for d in got) == ["dev", "prod", "staging"]
    edit(root, "specops.yaml", "policy: {drift: reconcile, prune: true}\n",
         "policy: {drift: reconcile, prune: true, allowPii: true}\n")
    assert len(errors(root)) == 2  # dev allows it now (and only dev)


def test_an_unknown_builtin_rule_to_disable_is_an_error_at_its_line(tmp_path):
    root = example(tmp_path)
    edit(root, "specops.yaml", "  state:\n", "  rules: {disable: [prod-serving-names-gate]}\n  state:\n")
    got = errors(root)
    assert [(d.file, d.code) for d in got] == [("specops.yaml", "value")]
    assert "did you mean 'prod-serving-names-gates'" in got[0].message


def test_rules_read_kinds_specs_and_labels(tmp_path):
    root = example(tmp_path)
    write(root, "rules/labels.yaml", """\
apiVersion: specops.dev/v1alpha1
kind: Rule
metadata: {name: team-label}
spec:
  kinds: [Dataset, Model]
  expression: "has(labels.team) && (kind != 'Model' || spec.type == 'llm')"
""")
    assert errors(root) == []
    edit(root, "datasets/tickets.yaml", "  labels: {team: cx}\n", "")
    got = errors(root)
    # one dataset document, in three environments: the same line, one message per environment
    assert {(d.file, d.pos.line) for d in got} == {("datasets/tickets.yaml", 4)} and len(got) == 3


def test_an_evaluation_error_fails_closed_at_the_rule(tmp_path):
    root = example(tmp_path)
    write(root, "rules/typo.yaml", """\
apiVersion: specops.dev/v1alpha1
kind: Rule
metadata: {name: typo}
environments: [prod]
spec:
  kinds: [ServingTarget]
  expression: spec.replicaz.max <= 4
""")
    got = errors(root)
    assert [(d.file, d.pos.line, d.code) for d in got] == [("rules/typo.yaml", 7, "rule-eval")]
    assert "no such member" in got[0].message and "ServingTarget/support-llm in env 'prod'" in got[0].message


def test_a_serving_binding_on_another_kind_is_refused(tmp_path):
    root = example(tmp_path)
    write(root, "rules/wrong.yaml", """\
apiVersion: specops.dev/v1alpha1
kind: Rule
metadata: {name: wrong}
spec:
  kinds: [Dataset]
  expression: gpus <= 8
""")
    got = errors(root)
    assert [(d.file, d.pos.line, d.pos.col, d.code) for d in got] == [("rules/wrong.yaml", 6, 15, "rule-binding")]


def test_a_warning_rule_reports_without_failing(tmp_path):
    root = example(tmp_path)
    write(root, "rules/budget.yaml", BUDGET + "  severity: warning\n")
    diags = analyze(root).diagnostics
    assert not diags.has_errors and any(d.code == "policy" and d.severity == "warning" for d in diags.items)


def test_expressions_are_bounded():
    with pytest.raises(cel.CelError, match="nests too deeply"):
        cel.parse("!" * 1900 + "true")
    with pytest.raises(cel.CelError, match="nests comprehensions"):
        cel.parse("spec.a.all(x, spec.a.all(y, spec.a.all(z, true)))")
    two_deep = cel.parse("spec.a.all(x, spec.a.all(y, x + y >= 0))")
    small = {"spec": cel.to_cel({"a": list(range(10))})}
    assert bool(cel.evaluate(two_deep, small)) is True
    # 300 x 300 body evaluations: stopped by the step budget, deterministically, after at most
    # MAX_STEPS steps (a few thousand elements, well under a second or two)
    with pytest.raises(cel.CelError, match=f"costs more than {cel.MAX_STEPS} evaluation steps"):
        cel.evaluate(two_deep, {"spec": cel.to_cel({"a": list(range(300))})})
    # and every evaluation of one run draws on one total
    budget = cel.Budget(total=500)
    flat = cel.parse("spec.a.all(x, x >= 0)")
    assert bool(cel.evaluate(flat, small, budget)) is True and 0 < budget.left < 500
    with pytest.raises(cel.CelError, match="what was left of the run's"):
        cel.evaluate(flat, {"spec": cel.to_cel({"a": list(range(100))})}, budget)
    with pytest.raises(cel.CelError, match="already used all"):
        cel.evaluate(flat, small, budget)


def test_free_names_skip_comprehension_variables_and_cel_names():
    e = cel.parse("plan.changes.all(c, c.action != 'delete') && type(gpus) == int && kind == 'x'")
    assert [n.name for n in e.names] == ["plan", "gpus", "kind"]


def test_a_rule_is_overridden_per_environment(tmp_path):
    root = example(tmp_path)
    write(root, "rules/budget.yaml", BUDGET.replace("environments: [prod]\n", "")
          .replace("cost_per_hour <= 50", "cost_per_hour <= 500") + "overrides:\n  prod:\n    expression: cost_per_hour <= 50\n")
    got = errors(root)
    assert [(d.file, d.pos.line) for d in got] == [("serving/support-llm.yaml", 4)] and "'prod'" in got[0].message
    assert "rule at rules/budget.yaml:9:17: cost_per_hour <= 50" in got[0].notes[0]


def test_production_is_the_environments_flag_where_written(tmp_path):
    root = example(tmp_path)
    edit(root, "serving/support-llm.yaml", "  gates: [support-quality]\n", "  image: vllm/vllm-openai:latest\n"
         "  gates: [support-quality]\n")
    # staging uses the target too; it is not production by name, but says it is
    assert {d.message.split("environment '")[1].split("'")[0] for d in errors(root)} == {"prod"}
    edit(root, "specops.yaml", "policy: {requireGates: true, drift: reconcile, prune: true}",
         "policy: {requireGates: true, drift: reconcile, prune: true, production: true}")
    assert {d.message.split("environment '")[1].split("'")[0] for d in errors(root)} == {"prod", "staging"}
