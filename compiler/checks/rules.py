"""Policy rules: a team's own `Rule` specs (CEL, see checks/cel.py) and the built-in rule set.

Rules over specs run in `validate` (every command starts with it); rules that read `plan` run
in `plan` and `apply`, over the changes the plan shows. A violation is a `policy` diagnostic
at the line of the spec the rule was checked on (a ServingTarget over budget is reported at
its name), noting the rule; `apply` refuses while one stands.

Bindings (README "Policy rules"): per resource `kind`, `name`, `env`, `labels`, `spec` (the
resolved spec of that environment, keys as written, defaults filled); for ServingTargets also
`cost_per_hour` (USD per replica from the capacity report's instance catalogue, null where no
price is known), `kv_headroom` (KV-cache budget / usable GPU memory, null where capacity is not
planned), `gpus` (GPUs per replica) and `gates` (the gates that guard the rollout: its own and
every EvalGate blocking the environment for its model); `plan.changes` in plan (a list of
{address, type, name, action}).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from specops.checks import cel
from specops.checks.capacity import capacity_report
from specops.checks.common import at, offset_pos
from specops.checks.records import CheckRecords
from specops.diagnostics import Diagnostic, Diagnostics, suggestion
from specops.frontend.overrides import effective_document
from specops.ir.lower import env_defaults, lower_serving
from specops.specs.common import IMAGE_RE
from specops.specs.rule import RESOURCE_KINDS

if TYPE_CHECKING:
    from specops.frontend.overrides import Node
    from specops.resolve.refs import EnvView, Resolved

BUILTIN_RULES = {
    "prod-serving-names-gates": "every ServingTarget of a production environment is guarded by eval gates",
    "no-mutable-images-in-prod": "no image of a production environment is `latest` or untagged without a digest",
    "pii-only-where-allowed": "a Dataset that contains PII exists only where the environment sets `allowPii`",
}

RESOURCE_BINDINGS = ("kind", "name", "env", "labels", "spec")
SERVING_BINDINGS = ("cost_per_hour", "kv_headroom", "gpus", "gates")
ALL_BINDINGS = (*RESOURCE_BINDINGS, *SERVING_BINDINGS, "plan")


def is_production(env_name: str, env_spec: Any) -> bool:
    """`policy.production` where written, else an environment named prod or production."""
    flag = env_spec.policy.production if env_spec is not None else None
    return flag if flag is not None else env_name in ("prod", "production")


@dataclass(frozen=True)
class CompiledRule:
    node: Node
    expr: cel.Expression
    kinds: tuple[str, ...]  # the kinds it is checked on; () = once per environment
    reads_plan: bool


# ---- compiling a rule --------------------------------------------------------------------------


def compile_rule(node: Node, out: Diagnostics | None) -> CompiledRule | None:
    """The parsed rule, or None with its problem (when `out` is given) at the expression."""
    text = node.spec.expression
    try:
        expr = cel.parse(text)
    except cel.CelError as e:
        if out is not None:
            out.add(_at_expr(node, e.column, "rule-syntax", f"rule '{node.name}': the expression {e}"))
        return None
    names = expr.name_set
    for n in expr.names:
        if n.name not in ALL_BINDINGS:
            if out is not None:
                out.add(_at_expr(node, n.column, "rule-binding",
                                 f"rule '{node.name}' reads '{n.name}', which is not a binding (bindings: "
                                 f"{', '.join(ALL_BINDINGS)})" + suggestion(n.name, ALL_BINDINGS)))
            return None
    kinds = tuple(node.spec.kinds)
    serving = [n for n in expr.names if n.name in SERVING_BINDINGS]
    if serving and not kinds:
        kinds = ("ServingTarget",)  # the bindings say what the rule is about
    elif serving and set(kinds) != {"ServingTarget"}:
        if out is not None:
            out.add(_at_expr(node, serving[0].column, "rule-binding",
                             f"rule '{node.name}' reads '{serving[0].name}', which is bound for ServingTargets "
                             f"only, but it is checked on {', '.join(k for k in kinds if k != 'ServingTarget')}"))
        return None
    if not kinds and names & set(RESOURCE_BINDINGS) - {"env"}:
        kinds = RESOURCE_KINDS
    return CompiledRule(node, expr, kinds, "plan" in names)


def _at_expr(node: Node, column: int | None, code: str, msg: str, severity: str = "error") -> Diagnostic:
    pos = offset_pos(node, ("expression",), column - 1 if column else None)
    return Diagnostic(severity, code, msg, node.file, pos)  # type: ignore[arg-type]


# ---- evaluating ---------------------------------------------------------------------------------


def guarding_gates(view: EnvView, node: Node) -> list[str]:
    """The ServingTarget's own gates and every EvalGate that blocks this environment for its
    model or one of its adapters (what its rollout waits for)."""
    served = {node.spec.model, *node.spec.adapters}
    gates = set(node.spec.gates)
    gates |= {g.name for g in view.of_kind("EvalGate") if view.name in g.spec.blocks and g.spec.model in served}
    return sorted(gates)


class Bindings:
    """The bindings of one resource in one environment, computed only when a rule reads them
    (a capacity plan is not free) and converted to CEL values once."""

    def __init__(self, resolved: Resolved, view: EnvView, node: Node | None, plan: dict | None) -> None:
        self.resolved, self.view, self.node, self.plan = resolved, view, node, plan
        self._raw: dict[str, Any] = {}
        self._values: dict[str, Any] = {}
        self._report: Any = False

    def raw(self, name: str) -> Any:
        if name not in self._raw:
            self._raw[name] = self._compute(name)
        return self._raw[name]

    def key(self, names: frozenset[str]) -> str:
        """The bound values as canonical JSON: CEL is pure, so equal keys give equal results."""
        return json.dumps({n: self.raw(n) for n in sorted(names)}, sort_keys=True, default=str)

    def _compute(self, name: str) -> Any:
        node, view = self.node, self.view
        if name == "env":
            return view.name
        if name == "plan":
            return self.plan
        assert node is not None
        if name == "kind":
            return node.kind
        if name == "name":
            return node.name
        if name == "labels":
            return dict(node.labels)
        if name == "spec":
            return effective_document(node)["spec"]
        if name == "gates":
            return guarding_gates(view, node)
        if name == "gpus":
            return node.spec.accelerator.count
        report = self._capacity()
        if name == "cost_per_hour":
            return report.usd_per_hour if report is not None else None
        return round(report.headroom, 4) if report is not None else None  # kv_headroom

    def _capacity(self) -> Any:
        if self._report is False:
            self._report = None
            node, resolved = self.node, self.resolved
            model = self.view.get("Model", node.spec.model)  # type: ignore[union-attr]
            if (self.view.target is not None and model is not None and model.spec.type == "llm"
                    and model.spec.llm.base.path
                    and (resolved.repo.root / model.spec.llm.base.path / "config.json").is_file()):
                report = capacity_report(resolved.repo.root, lower_serving(resolved, self.view, node))
                self._report = None if isinstance(report, Diagnostic) else report
        return self._report

    def values(self, names: frozenset[str]) -> dict[str, Any]:
        for n in names - self._values.keys():
            self._values[n] = cel.to_cel(self.raw(n))
        return {n: self._values[n] for n in names}


@dataclass
class Evaluations:
    """What one command's rule checks share: results by expression and bound values (a spec
    without overrides has the same values in every environment, and many specs share theirs;
    cel-python interprets at about a millisecond an evaluation), and the step budget.

    `memo`: sha256 of (expression, bound values as JSON) -> [outcome, steps, full]: the
    outcome as plain data (["bool", b], ["type", name] or ["err", message, column]), the
    budget steps its evaluation took, and whether it had the whole per-evaluation limit (then
    the outcome depends on nothing else, and a check record may keep it)."""

    memo: dict[str, list]
    budget: cel.Budget
    # The outcomes of earlier runs by the same key (checks/records.py's shared scope): CEL is
    # pure, so an evaluation made with the whole limit gives the same outcome and steps again.
    records: CheckRecords | None = None

    @classmethod
    def new(cls, records: CheckRecords | None = None) -> Evaluations:
        return cls({}, cel.Budget(), records)

    def recall(self, key: str) -> list | None:
        """The outcome of `key` from an earlier run, charged to the budget as its evaluation
        would be (only while the whole per-evaluation limit is left: then this run's
        evaluation would have had it too)."""
        scope = self.records.shared() if self.records is not None else None
        if scope is None or self.budget.left < cel.MAX_STEPS:
            return None
        got = self.records.get(scope, key)  # type: ignore[union-attr]
        try:
            outcome, steps = got  # type: ignore[misc]
            if outcome[0] not in ("bool", "type", "err") or not isinstance(steps, int) or steps < 0:
                return None
        except (TypeError, ValueError, IndexError, KeyError):
            return None
        self.budget.left -= steps
        self.records.put(scope, key, got)  # type: ignore[union-attr]
        entry = self.memo[key] = [outcome, steps, True]
        return entry

    def keep(self, key: str, entry: list) -> None:
        """Store an outcome of this run for the next (one made with the whole limit)."""
        scope = self.records.shared() if self.records is not None else None
        if scope is not None and entry[2]:
            old = self.records.get(scope, key)  # type: ignore[union-attr]
            kept = [entry[0], entry[1]]
            self.records.put(scope, key, old if old == kept else kept)  # type: ignore[union-attr]


def _memo_key(text: str, bound: str) -> str:
    return hashlib.sha256(f"{text}\0{bound}".encode()).hexdigest()


def evaluate_rule(rule: CompiledRule, bindings: Bindings, out: Diagnostics, run: Evaluations) -> tuple[str, list]:
    """Check one rule on one resource (or once, on the environment); a violation at the
    resource's name, an evaluation failure at the rule's expression (fail closed). Returns the
    evaluation's memo key and entry."""
    memo = run.memo
    key = _memo_key(rule.expr.text, bindings.key(rule.expr.name_set))
    got = memo.get(key)
    if got is None:
        got = run.recall(key)
    if got is None:
        left = run.budget.left
        try:
            value = cel.evaluate(rule.expr, bindings.values(rule.expr.name_set), run.budget)
            outcome: list = ["bool", bool(value)] if cel.is_bool(value) else ["type", type(value).__name__]
        except cel.CelError as e:
            outcome = ["err", str(e), e.column]
        got = memo[key] = [outcome, left - run.budget.left, left >= cel.MAX_STEPS]
        run.keep(key, got)
    report_outcome(rule, bindings.view, bindings.node, got[0], out, bindings.raw)
    return key, got


def report_outcome(rule: CompiledRule, view: EnvView, subject: Node | None, outcome: list, out: Diagnostics,
                   raw: Any) -> None:
    """The diagnostics of one evaluation's outcome (`raw`: a bound value by name, for the
    message of a violation)."""
    node = rule.node
    what = f"{subject.key} in env '{view.name}'" if subject is not None else f"env '{view.name}'"
    if outcome[0] == "err":
        out.add(_at_expr(node, outcome[2], "rule-eval", f"rule '{node.name}' cannot be evaluated on {what}: "
                         f"{outcome[1]}", severity=node.spec.severity))
        return
    if outcome[0] == "type":
        out.add(_at_expr(node, None, "rule-eval", f"rule '{node.name}' yields {outcome[1]} on {what}, "
                         "not a bool", severity=node.spec.severity))
        return
    if outcome[1]:
        return
    shown = [f"{n} = {_show(raw(n))}" for n in sorted(rule.expr.name_set)
             if n in SERVING_BINDINGS or n in ("kind", "name")]
    msg = f"rule '{node.name}' fails for {what}: {node.spec.message or rule.expr.text}"
    if shown:
        msg += f" ({', '.join(shown)})"
    rule_pos = node.doc.pos_of(("spec", "expression"))
    note = f"rule at {node.file}:{rule_pos.line}:{rule_pos.col}: {rule.expr.text}"
    if subject is not None:
        out.add(Diagnostic(node.spec.severity, "policy", msg, subject.file,
                           subject.doc.pos_of(("metadata", "name")), (note,)))
    else:
        out.add(_at_expr(node, None, "policy", msg, severity=node.spec.severity))


def _show(v: Any) -> str:
    if v is None:
        return "null"
    if isinstance(v, list):
        return "[" + ", ".join(map(str, v)) + "]"
    return str(v)


def _errored_files(out: Diagnostics) -> set[str | None]:
    return {d.file for d in out.items if d.severity == "error"}


def run_rules(resolved: Resolved, view: EnvView, rules: list[CompiledRule], plan: dict | None,
              out: Diagnostics, broken: set[str | None], run: Evaluations,
              records: CheckRecords | None = None) -> None:
    """Evaluate `rules` in one environment, except on the specs of `broken` files (which had
    errors before any rule ran: their own problem comes first, and their bindings may not be
    computable). With `records`, see RuleRecords."""
    cache: dict[str, Bindings] = {}
    replay = RuleRecords(records, view, rules) if records is not None and plan is None else None
    for rule in rules:
        if not rule.kinds:
            evaluate_rule(rule, Bindings(resolved, view, None, plan), out, run)
            continue
        for kind in rule.kinds:
            for node in view.of_kind(kind):
                if node.file in broken:
                    continue
                if replay is not None and replay.replayed(node, out, run):
                    continue
                b = cache.setdefault(node.key, Bindings(resolved, view, node, plan))
                mine = Diagnostics() if replay is not None else out
                key, entry = evaluate_rule(rule, b, mine, run)
                if replay is not None:
                    out.extend(mine.items)
                    replay.ran(node, mine, key, entry)
    if replay is not None:
        replay.save()


class RuleRecords:
    """The rule evaluations on each node of one environment, recorded under the node's unit
    (checks/records.py) and replayed while that unit and every Rule are unchanged: a rule's
    bindings read only the node and what its unit holds (a ServingTarget's gates name its
    models: one unit), and CEL is pure. The run's step budget is kept as a cold run keeps
    it: a replayed evaluation charges the steps it took when its bound values are new to the
    run, and is replayed only while the whole per-evaluation limit is left (a cold run would
    then have had it too, so its outcome is the recorded one)."""

    def __init__(self, records: CheckRecords, view: EnvView, rules: list[CompiledRule]):
        self.records, self.view = records, view
        h = hashlib.sha256(b"rules 1\n")
        for r in rules:
            h.update(f"{r.node.key}\0{records.unit(view, r.node.key)}\0{','.join(r.kinds)}\n".encode())
        self.rules = h.hexdigest()  # each record is [this, entries]: made under these rules
        self.todo: dict[str, list | None] = {}  # node key -> its recorded entries not replayed yet
        self.recorded: dict[str, Any] = {}  # node key -> its record as found
        self.done: dict[str, list | None] = {}  # node key -> this run's entries (None: not to record)
        self.scope: dict[str, str | None] = {}

    def replayed(self, node: Node, out: Diagnostics, run: Evaluations) -> bool:
        """Add the next recorded evaluation of `node` to `out`, when there is one to replay."""
        key = node.key
        if key not in self.scope:
            scope = self.scope[key] = self.records.unit(self.view, key)
            got = self.recorded[key] = self.records.get(scope, f"{key}|rules") if scope is not None else None
            ok = isinstance(got, list) and len(got) == 2 and got[0] == self.rules and isinstance(got[1], list)
            self.todo[key] = list(got[1]) if ok else None  # type: ignore[index]
            self.done[key] = [] if scope is not None else None
        todo = self.todo[key]
        if not todo or run.budget.left < cel.MAX_STEPS:
            self.todo[key] = None  # the rest of this node's rules are evaluated
            return False
        entry = todo.pop(0)
        try:
            rows, mkey, outcome, steps = entry
            diags = [Diagnostic.from_row(r) for r in rows]
            if not isinstance(mkey, str) or not isinstance(steps, int) or outcome[0] not in ("bool", "type", "err"):
                raise ValueError(mkey)
        except (TypeError, ValueError, IndexError):
            self.todo[key] = None
            return False
        if mkey not in run.memo:  # new to this run: it costs what its evaluation cost
            run.memo[mkey] = [outcome, steps, True]
            run.budget.left -= steps
            run.keep(mkey, run.memo[mkey])
        out.extend(diags)
        done = self.done[key]
        if done is not None:
            done.append(entry)
        return True

    def ran(self, node: Node, out: Diagnostics, mkey: str, entry: list) -> None:
        """Record an evaluation of `node` that ran now (not one with an error, nor one that
        had less than the whole limit: its outcome may depend on the rest of the run)."""
        done = self.done.get(node.key)
        if done is None:
            return
        if not entry[2] or out.has_errors:
            self.done[node.key] = None
            return
        done.append([[d.to_row() for d in out.items], mkey, entry[0], entry[1]])

    def save(self) -> None:
        for key, done in self.done.items():
            scope = self.scope.get(key)
            if done is not None and scope is not None:
                # All replayed: the record as found (the store then knows nothing ran).
                old = self.recorded[key]
                self.records.put(scope, f"{key}|rules", old if [self.rules, done] == old else [self.rules, done])


# ---- entry points ----------------------------------------------------------------------------


def check_rules(resolved: Resolved, out: Diagnostics, records: CheckRecords | None = None) -> None:
    """validate: every rule parses and reads known bindings; rules over specs hold; the
    built-in rules hold unless the Project disables them. `records`: see RuleRecords."""
    broken = _errored_files(out)
    disabled = check_disabled(resolved, out)
    compiled: dict[int, CompiledRule | None] = {}  # a rule without overrides is one document
    run = Evaluations.new(records)
    for view in resolved.envs.values():
        rules = []
        for node in view.of_kind("Rule"):
            if id(node.doc) not in compiled:
                compiled[id(node.doc)] = _compiled(view, node, out, records)
            r = compiled[id(node.doc)]
            if r is not None and not r.reads_plan:
                rules.append(r if r.node is node else CompiledRule(node, r.expr, r.kinds, r.reads_plan))
        run_rules(resolved, view, rules, None, out, broken, run, records)
        check_builtin_rules(resolved, view, disabled, out)


def _compiled(view: EnvView, node: Node, out: Diagnostics, records: CheckRecords | None) -> CompiledRule | None:
    """compile_rule, or what it gave for this Rule's unchanged unit last time (a rule that
    compiled without a diagnostic), its CEL tree parsed only if it is evaluated again."""
    scope = records.unit(view, node.key) if records is not None else None
    call = f"{node.key}|compiled"
    got = records.get(scope, call) if records is not None and scope is not None else None
    try:
        kinds, reads_plan, names = got  # type: ignore[misc]
        if not (isinstance(kinds, list) and all(k in RESOURCE_KINDS for k in kinds) and isinstance(reads_plan, bool)
                and all(isinstance(n, str) and isinstance(c, (int, type(None))) for n, c in names)):
            raise ValueError(got)
        expr = cel.unparsed(node.spec.expression, tuple(cel.Name(n, c) for n, c in names))
        rule = CompiledRule(node, expr, tuple(kinds), reads_plan)
    except (TypeError, ValueError):
        rule = None
    if rule is not None:
        records.put(scope, call, got)  # type: ignore[union-attr, arg-type]
        return rule
    mine = Diagnostics()
    rule = compile_rule(node, mine)
    out.extend(mine.items)
    if rule is not None and not mine.items and records is not None and scope is not None:
        records.put(scope, call, [list(rule.kinds), rule.reads_plan, [[n.name, n.column] for n in rule.expr.names]])
    return rule


def check_plan_rules(resolved: Resolved, env: str, changes: list[dict[str, Any]]) -> Diagnostics:
    """plan/apply: the rules of `env` that read `plan`, over the plan's changes."""
    out = Diagnostics()
    view = resolved.envs[env]
    rules = [r for r in (compile_rule(n, None) for n in view.of_kind("Rule")) if r is not None and r.reads_plan]
    run_rules(resolved, view, rules, {"changes": changes}, out, _errored_files(resolved.diagnostics), Evaluations.new())
    return out


def check_disabled(resolved: Resolved, out: Diagnostics) -> set[str]:
    project = resolved.repo.project()
    names = list(resolved.project.rules.disable)
    for i, name in enumerate(names):
        if name not in BUILTIN_RULES and project is not None:
            out.add(Diagnostic("error", "value", f"no built-in rule '{name}' (built-in rules: "
                               f"{', '.join(BUILTIN_RULES)})" + suggestion(name, BUILTIN_RULES),
                               project.file, project.doc.pos_of(("spec", "rules", "disable", i))))
    return set(names)


# ---- the built-in rule set ---------------------------------------------------------------------


def check_builtin_rules(resolved: Resolved, view: EnvView, disabled: set[str], out: Diagnostics) -> None:
    env = view.env
    if env is None:
        return
    prod = is_production(view.name, env)
    if prod and "prod-serving-names-gates" not in disabled and not env.policy.require_gates:
        # Under `requireGates` the serving check already refuses an unguarded target.
        for node in view.of_kind("ServingTarget"):
            if not guarding_gates(view, node):
                where = ("gates",) if "gates" in (node.doc.data.get("spec") or {}) else ()
                d = at(node, where, "policy", f"built-in rule 'prod-serving-names-gates': ServingTarget "
                       f"'{node.name}' in production environment '{view.name}' names no eval gates; list them "
                       "in `gates` (or disable the rule in the Project's `rules.disable`)", prefer_key=True)
                out.add(d if where else _at_name(node, d))
    if prod and "no-mutable-images-in-prod" not in disabled:
        _check_images(resolved, view, out)
    if "pii-only-where-allowed" not in disabled and not env.policy.allow_pii:
        for node in view.of_kind("Dataset"):
            if node.spec.pii.contains:
                out.add(at(node, ("pii", "contains"), "policy",
                           f"built-in rule 'pii-only-where-allowed': dataset '{node.name}' contains PII, and "
                           f"environment '{view.name}' does not allow it (`policy.allowPii` in the Project)"))


def _at_name(node: Node, d: Diagnostic) -> Diagnostic:
    return Diagnostic(d.severity, d.code, d.message, node.file, node.doc.pos_of(("metadata", "name")))


def mutable_image(ref: str) -> bool:
    """An image reference without a digest whose tag is absent (implicitly `latest`) or `latest`."""
    if "@" in ref or not IMAGE_RE.fullmatch(ref):
        return False
    last = ref.rsplit("/", 1)[-1]
    return ":" not in last or last.rsplit(":", 1)[1] == "latest"


def _check_images(resolved: Resolved, view: EnvView, out: Diagnostics) -> None:
    def bad(ref: str, where: str) -> str:
        return (f"built-in rule 'no-mutable-images-in-prod': {where} image '{ref}' in production environment "
                f"'{view.name}' is mutable (`latest` or no tag, and no digest); pin a version tag or a @sha256 digest")

    for node in view.of_kind("ServingTarget"):
        if node.spec.image and mutable_image(node.spec.image):
            out.add(at(node, ("image",), "policy", bad(node.spec.image, "serving")))
    for node in view.of_kind("Model"):
        cmd = getattr(node.spec, "command", None)
        if cmd is not None and mutable_image(cmd.image):
            out.add(at(node, ("command", "image"), "policy", bad(cmd.image, "command")))
    project = resolved.repo.project()
    if project is None:
        return
    defaults = env_defaults(resolved, view.name)
    for key, field, used in (("image", "image", bool(view.of_kind("Model"))),
                             ("servingImage", "serving_image",
                              any(not n.spec.image for n in view.of_kind("ServingTarget")))):
        ref = defaults.get(field)
        if not used or not isinstance(ref, str) or not mutable_image(ref):
            continue
        env_path = ("spec", "environments", view.name, "defaults", key)
        path = env_path if project.doc.position(env_path) is not None else ("spec", "defaults", key)
        out.add(Diagnostic("error", "policy", bad(ref, "default " + ("runtime" if key == "image" else "serving")),
                           project.file, project.doc.pos_of(path)))
