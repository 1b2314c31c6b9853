"""CEL for policy rules, bounded: cel-python (a maintained implementation of Google's Common
Expression Language) parses and evaluates; this module limits what one expression may cost.

Spec authors are semi-trusted PR authors, and `validate` runs in CI on their branch, so an
expression is refused before it runs when it is too deep or too large, when comprehensions
(`all`, `exists`, `map`, `filter`) nest more than twice, and each evaluation stops after a
fixed number of evaluation steps, all evaluations of one run after a fixed total. Step counting, not wall-clock time: the same input gives
the same verdict on every machine (output is byte-identical for identical input).

cel-python costs ~0.2 s to import and to build its parser, so both happen on the first rule
only: a repo without rules never pays for them.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache
from typing import Any

# Limits on one expression (the spec model caps its length at 2000 characters).
MAX_NODES = 2000  # parse-tree nodes
MAX_DEPTH = 200  # parse-tree depth: about 20 nested parentheses or 60 chained `!`
MAX_COMPREHENSION_NESTING = 2
# Evaluation steps: one per parse-tree node visited, ITEM_STEPS per comprehension element. About
# 0.3 ms of cel-python per element (2 cores, December 2026), so one evaluation stops within
# about a second, and a whole run's rules within about a minute.
ITEM_STEPS = 30
MAX_STEPS = 100_000
MAX_TOTAL_STEPS = 5_000_000

MACROS = frozenset({"all", "exists", "exists_one", "map", "filter"})
# Names CEL itself gives meaning to when they stand alone: type denotations and `null`.
CEL_NAMES = frozenset({"int", "uint", "double", "bool", "string", "bytes", "list", "map", "null_type", "type",
                       "null", "true", "false", "dyn"})


class CelError(Exception):
    """An expression that does not parse, is too costly, or fails to evaluate: one line, with
    the 1-based column in the expression where known."""

    def __init__(self, message: str, column: int | None = None) -> None:
        super().__init__(message)
        self.column = column


@dataclass(frozen=True)
class Name:
    """A free name an expression reads (a binding), with its 1-based column."""

    name: str
    column: int


@dataclass(frozen=True)
class Expression:
    text: str
    ast: Any  # lark.Tree
    names: tuple[Name, ...]  # free names, first use of each, in order

    @property
    def name_set(self) -> frozenset[str]:
        return frozenset(n.name for n in self.names)


@cache
def _environment() -> Any:
    import celpy

    return celpy.Environment()


def parse(text: str) -> Expression:
    """Parse and bound-check one expression; CelError when it does not parse or is too costly."""
    from celpy.celparser import CELParseError

    try:
        ast = _environment().compile(text)
    except CELParseError as e:
        raise CelError(f"does not parse: {_parse_reason(e)}", getattr(e, "column", None)) from None
    except RecursionError:
        raise CelError(f"nests too deeply (more than {MAX_DEPTH} levels)") from None
    _check_shape(ast)
    return Expression(text, ast, tuple(_free_names(ast)))


def unparsed(text: str, names: tuple[Name, ...]) -> Expression:
    """An expression a check record says parses (under this code), its tree built only when it
    is first evaluated: a run whose evaluations are all replayed never imports cel-python."""
    return Expression(text, None, names)


@cache
def _tree(text: str) -> Any:
    return parse(text).ast


def _parse_reason(e: Exception) -> str:
    """One line from lark's error (cel-python's own message is the expression with a caret
    under it; the diagnostic gives the column instead)."""
    import lark

    cause = e.__context__
    if isinstance(cause, lark.exceptions.UnexpectedToken):
        return "unexpected end of the expression" if cause.token.type == "$END" else f"unexpected '{cause.token}'"
    if isinstance(cause, lark.exceptions.UnexpectedCharacters):
        return f"unexpected character '{cause.char}'"
    return "syntax error"


def _check_shape(ast: Any) -> None:
    """Size, depth and comprehension nesting, walked without recursion (a deep tree must be
    refused here, not overflow the stack)."""
    import lark

    nodes = 0
    stack: list[tuple[Any, int, int]] = [(ast, 1, 0)]
    while stack:
        tree, depth, comp = stack.pop()
        nodes += 1
        if nodes > MAX_NODES:
            raise CelError(f"is too large (more than {MAX_NODES} parse nodes)")
        if depth > MAX_DEPTH:
            raise CelError(f"nests too deeply (more than {MAX_DEPTH} levels)", _column(tree))
        if tree.data == "member_dot_arg" and str(tree.children[1]) in MACROS:
            comp += 1
            if comp > MAX_COMPREHENSION_NESTING:
                raise CelError(f"nests comprehensions ({', '.join(sorted(MACROS))}) more than "
                               f"{MAX_COMPREHENSION_NESTING} deep", tree.children[1].column)
        for child in tree.children:
            if isinstance(child, lark.Tree):
                stack.append((child, depth + 1, comp))


def _column(tree: Any) -> int | None:
    import lark

    for t in tree.scan_values(lambda v: isinstance(v, lark.Token)):
        return t.column
    return None


def _free_names(ast: Any) -> list[Name]:
    """Root identifiers the expression reads, minus comprehension variables and CEL's own
    names. A comprehension variable is bound anywhere in the expression once declared: a
    simplification that can only miss an unknown name, never invent one."""
    import lark

    bound: set[str] = set()
    idents: list[Any] = []
    stack = [ast]
    while stack:
        tree = stack.pop()
        if tree.data == "member_dot_arg" and str(tree.children[1]) in MACROS:
            exprs = tree.children[2].children if len(tree.children) > 2 and tree.children[2] is not None else []
            if exprs:
                first = [t for t in exprs[0].scan_values(lambda v: isinstance(v, lark.Token) and v.type == "IDENT")]
                if first:
                    bound.add(str(first[0]))
        if tree.data in ("ident", "dot_ident"):
            idents.append(tree.children[0])
        stack.extend(c for c in reversed(tree.children) if isinstance(c, lark.Tree))
    seen: dict[str, Name] = {}
    for tok in sorted(idents, key=lambda t: (t.line, t.column)):
        name = str(tok)
        if name not in bound and name not in CEL_NAMES and name not in seen:
            seen[name] = Name(name, tok.column)
    return list(seen.values())


def to_cel(value: Any) -> Any:
    import celpy

    return celpy.json_to_cel(value)


def is_bool(value: Any) -> bool:
    import celpy

    return isinstance(value, celpy.celtypes.BoolType)


class Budget:
    """Evaluation steps left to every evaluation of one command (validate, plan): one rule may
    use up to MAX_STEPS, all of them together up to MAX_TOTAL_STEPS."""

    def __init__(self, total: int | None = None) -> None:
        self.left = MAX_TOTAL_STEPS if total is None else total


def evaluate(expr: Expression, bindings: dict[str, Any], budget: Budget | None = None) -> Any:
    """The expression's value over `bindings` (CEL values, see to_cel); CelError when it fails
    or runs past its steps (MAX_STEPS, or what is left of `budget`)."""
    from celpy.evaluation import Activation, CELEvalError

    limit = MAX_STEPS if budget is None else min(MAX_STEPS, budget.left)
    if limit <= 0:
        raise CelError(f"not evaluated: the rules already used all {MAX_TOTAL_STEPS} evaluation steps of this run")
    base = Activation(package=None, annotations=_environment().annotations, functions=None)
    steps = [0, limit]
    tree = expr.ast if expr.ast is not None else _tree(expr.text)
    evaluator = _bounded_evaluator_class()(tree, activation=base, steps=steps)
    try:
        return evaluator.evaluate(bindings)
    except _OutOfSteps:
        raise CelError(f"costs more than {limit} evaluation steps" + (
            "" if limit == MAX_STEPS else f" (what was left of the run's {MAX_TOTAL_STEPS})")) from None
    except CELEvalError as e:
        raise CelError(str(e.args[0]) if e.args else "evaluation failed", e.column) from None
    except RecursionError:
        raise CelError(f"nests too deeply (more than {MAX_DEPTH} levels)") from None
    except (TypeError, ValueError, ArithmeticError, KeyError, IndexError) as e:
        raise CelError(f"evaluation failed: {e}") from None
    finally:
        if budget is not None:
            budget.left -= steps[0]


class _OutOfSteps(Exception):
    pass


@cache
def _bounded_evaluator_class() -> type:
    """An Evaluator that counts the parse-tree nodes it visits, and ITEM_STEPS more for each
    element a comprehension evaluates its body on (cel-python builds a fresh activation for
    each), shared with the evaluators of comprehension bodies; it stops past its limit."""
    from celpy.evaluation import Evaluator

    class Bounded(Evaluator):  # type: ignore[misc, valid-type]
        def __init__(self, ast: Any, *, activation: Any, steps: list[int]) -> None:
            super().__init__(ast, activation=activation)
            self.steps = steps  # [used, limit]

        def _charge(self, n: int) -> None:
            self.steps[0] += n
            if self.steps[0] > self.steps[1]:
                raise _OutOfSteps()

        def sub_evaluator(self, ast: Any) -> Any:
            return Bounded(ast, activation=self.activation, steps=self.steps)

        def evaluate(self, context: Any = None) -> Any:
            if self.steps[0]:  # a comprehension body, once per element
                self._charge(ITEM_STEPS)
            return super().evaluate(context)

        def visit(self, tree: Any) -> Any:
            self._charge(1)
            return super().visit(tree)

    return Bounded
