"""Prompt templates: the variables a template reads, and sandboxed rendering with limits.

Spec authors are semi-trusted PR authors, so a template must not be able to hang `validate`
or a gate, nor exhaust the machine:

- `variables_used(text)` parses (jinja2's parser is linear) and walks the AST itself. It never
  runs jinja2's code generator: that generator folds constant expressions, so
  `{{ 'a' * 10**10 }}` would allocate ten gigabytes while "compiling" (and
  `jinja2.meta.find_undeclared_variables` runs the generator).
- `render_rows(sources, rows)` (or `render_rows_iter`, row by row) renders in a separate Python process (a hard wall-time limit and
  an address-space limit), with an immutable sandbox whose arithmetic operators and filters are
  intercepted: intercepted operators and context-passing filters are never folded at compile
  time, and at render time they refuse results past the output limit. Each render has a
  deadline, an output-size limit and Python's recursion limit; `range` is the sandbox's
  bounded one.

Stdlib plus jinja2 only: the compiler imports this module at validate time.
"""

from __future__ import annotations

import functools
import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from typing import Any, Callable, Iterable, Iterator

import jinja2
from jinja2 import nodes
from jinja2.sandbox import ImmutableSandboxedEnvironment
from jinja2.utils import _PassArg

from specops.runtime.errors import ParamError, StepError

MAX_OUTPUT_CHARS = 200_000  # one rendered text (a prompt, an assertion value)
MAX_INT = 1_000_000  # an integer argument to a filter (widths, lengths), an exponent's result size
ROW_SECONDS = 2.0  # deadline of one row's renders, checked at every intercepted operation
WORKER_MEMORY = 1 << 30  # address space the rendering process may add to what it maps at start
# Names every template may read without a dataset providing them (the sandbox's globals).
GLOBALS = frozenset({"range", "dict", "lipsum", "cycler", "joiner", "namespace", "true", "false", "none",
                     "True", "False", "None"})
_BIG_FORMAT = re.compile(r"\d{6,}")  # a width or precision of a million or more in a format spec


class TemplateLimit(Exception):
    """A render crossed a limit (time, output size, recursion); one line for a human."""


# ---- what a template reads (AST walk; no code generation) -----------------------------------


@dataclass(frozen=True)
class Use:
    name: str
    line: int  # 1-based line inside the template text


@dataclass(frozen=True)
class Unsupported:
    what: str
    line: int


def parse(text: str) -> nodes.Template:
    """Parse only (raises jinja2.TemplateSyntaxError); safe on any input."""
    return jinja2.Environment().parse(text)


def variables_used(text: str) -> tuple[list[Use], list[Unsupported]]:
    """Every read of a name that no `set`/`for`/`macro`/`with` in the template binds, in source
    order (first use per name first), and the constructs a prompt cannot use (include,
    extends, import: a prompt template has no loader). Raises jinja2.TemplateSyntaxError."""
    uses, bad = _variables_used(text)
    return list(uses), list(bad)


@functools.lru_cache(maxsize=4096)
def _variables_used(text: str) -> tuple[tuple[Use, ...], tuple[Unsupported, ...]]:
    # Memoised: the checks ask about each prompt's templates several times (variables,
    # gates, assertions), and jinja's parser is the costliest part of validate's checks.
    uses: list[Use] = []
    bad: list[Unsupported] = []
    _walk_body(parse(text).body, frozenset(GLOBALS), uses, bad)
    return tuple(uses), tuple(bad)


def _targets(node: nodes.Node) -> set[str]:
    return {n.name for n in node.find_all(nodes.Name) if n.ctx in ("store", "param")} | (
        {node.name} if isinstance(node, nodes.Name) else set())


def _walk_body(body: Iterable[nodes.Node], bound: frozenset[str], uses: list[Use], bad: list[Unsupported]) -> None:
    """Statements in order: a `set` binds its names for the statements after it."""
    for stmt in body:
        _walk(stmt, bound, uses, bad)
        if isinstance(stmt, (nodes.Assign, nodes.AssignBlock)):
            bound = bound | _targets(stmt.target)
        elif isinstance(stmt, nodes.Macro):
            bound = bound | {stmt.name}
        elif isinstance(stmt, (nodes.If,)):
            # jinja2 lets a `set` inside an if leak into the enclosing scope.
            for s in stmt.find_all((nodes.Assign, nodes.AssignBlock)):
                bound = bound | _targets(s.target)


def _walk(node: nodes.Node, bound: frozenset[str], uses: list[Use], bad: list[Unsupported]) -> None:
    if isinstance(node, nodes.Name):
        if node.ctx == "load" and node.name not in bound:
            uses.append(Use(node.name, node.lineno))
        return
    if isinstance(node, (nodes.Include, nodes.Extends, nodes.Import, nodes.FromImport)):
        bad.append(Unsupported(type(node).__name__.lower(), node.lineno))
        return
    if isinstance(node, nodes.For):
        _walk(node.iter, bound, uses, bad)
        inner = bound | _targets(node.target) | {"loop"}
        if node.test is not None:
            _walk(node.test, inner, uses, bad)
        _walk_body(node.body, inner, uses, bad)
        _walk_body(node.else_, bound, uses, bad)
        return
    if isinstance(node, (nodes.Macro, nodes.CallBlock)):
        for d in node.defaults:
            _walk(d, bound, uses, bad)
        if isinstance(node, nodes.CallBlock):
            _walk(node.call, bound, uses, bad)
        inner = bound | {a.name for a in node.args} | {"varargs", "kwargs", "caller"}
        _walk_body(node.body, inner, uses, bad)
        return
    if isinstance(node, nodes.With):
        for v in node.values:
            _walk(v, bound, uses, bad)
        inner = bound | set().union(*(_targets(t) for t in node.targets)) if node.targets else bound
        _walk_body(node.body, frozenset(inner), uses, bad)
        return
    if isinstance(node, (nodes.Assign, nodes.AssignBlock)):
        if isinstance(node, nodes.Assign):
            _walk(node.node, bound, uses, bad)
        else:
            _walk_body(node.body, bound, uses, bad)
        return
    if isinstance(node, (nodes.If, nodes.Scope, nodes.ScopedEvalContextModifier, nodes.FilterBlock)):
        for field in node.fields:
            value = getattr(node, field)
            if isinstance(value, list):
                _walk_body(value, bound, uses, bad)
            elif isinstance(value, nodes.Node):
                _walk(value, bound, uses, bad)
        return
    for child in node.iter_child_nodes():
        _walk(child, bound, uses, bad)


# ---- the sandbox ---------------------------------------------------------------------------


class _Sandbox(ImmutableSandboxedEnvironment):
    """Immutable sandbox whose operators and filters are checked against the limits.

    Intercepted operators are never constant-folded by jinja2's code generator (nodes.BinExpr
    raises Impossible for them in a sandbox), and neither are context-passing filters, so all
    work a template asks for happens at render time, under `_tick` and the size checks."""

    intercepted_binops = frozenset({"+", "-", "*", "/", "//", "%", "**"})

    def __init__(self) -> None:
        super().__init__(undefined=jinja2.StrictUndefined, autoescape=False, keep_trailing_newline=True)
        self.deadline = float("inf")
        self.filters = {name: _limited_filter(f) for name, f in self.filters.items()}

    def tick(self) -> None:
        if time.monotonic() > self.deadline:
            raise TemplateLimit(f"rendering took longer than {ROW_SECONDS:g} s")

    def call_binop(self, context: Any, operator: str, left: Any, right: Any) -> Any:
        self.tick()
        if operator == "**":
            if isinstance(right, (int, float)) and isinstance(left, (int, float)) and not isinstance(right, bool):
                if abs(right) > 64 and abs(left) > 1:
                    raise TemplateLimit(f"exponent {right!r} is too large")
        elif operator == "*":
            for seq, n in ((left, right), (right, left)):
                if isinstance(seq, (str, list, tuple)) and isinstance(n, int) and len(seq) * n > MAX_OUTPUT_CHARS:
                    raise TemplateLimit(f"repetition would produce more than {MAX_OUTPUT_CHARS} items")
            if isinstance(left, int) and isinstance(right, int) and left.bit_length() + right.bit_length() > 4096:
                raise TemplateLimit("integer product is too large")
        elif operator == "%" and isinstance(left, str):
            _check_format(left)
        result = super().call_binop(context, operator, left, right)
        _check_size(result)
        return result

    def wrap_str_format(self, value: Any) -> Any:
        # `'{:>99999999}'.format(1)` allocates before any result check could run.
        if getattr(value, "__name__", "") in ("format", "format_map") and isinstance(getattr(value, "__self__", None), str):
            _check_format(value.__self__)
        return super().wrap_str_format(value)

    def call(__self, __context: Any, __obj: Any, *args: Any, **kwargs: Any) -> Any:  # noqa: N805 - jinja2's signature
        __self.tick()
        result = super().call(__context, __obj, *args, **kwargs)
        _check_size(result)
        return result


def _check_format(fmt: str) -> None:
    if _BIG_FORMAT.search(fmt):
        raise TemplateLimit("a format width or precision of a million or more")


def _check_size(value: Any) -> None:
    if isinstance(value, (str, list, tuple, dict)) and len(value) > MAX_OUTPUT_CHARS:
        raise TemplateLimit(f"a value of more than {MAX_OUTPUT_CHARS} characters or items")


def _limited_filter(func: Callable) -> Callable:
    """The filter as a context-passing function (so it is never folded at compile time) that
    refuses huge integer arguments (widths, lengths) and huge results."""
    pass_arg = _PassArg.from_obj(func)

    @jinja2.pass_context
    @functools.wraps(func)
    def limited(context: Any, value: Any, *args: Any, **kwargs: Any) -> Any:
        env = context.environment
        env.tick()
        for a in (*args, *kwargs.values()):
            if isinstance(a, int) and not isinstance(a, bool) and abs(a) > MAX_INT:
                raise TemplateLimit(f"filter argument {a} is larger than {MAX_INT}")
        if isinstance(value, str) and func.__name__ == "do_format":
            _check_format(value)
        if pass_arg is _PassArg.context:
            result = func(context, value, *args, **kwargs)
        elif pass_arg is _PassArg.eval_context:
            result = func(context.eval_ctx, value, *args, **kwargs)
        elif pass_arg is _PassArg.environment:
            result = func(env, value, *args, **kwargs)
        else:
            result = func(value, *args, **kwargs)
        _check_size(result)
        return result

    return limited


def render_one(env: _Sandbox, template: jinja2.Template, variables: dict[str, Any]) -> str:
    """Render under the row deadline and the output limit (chunks are counted as produced)."""
    out: list[str] = []
    size = 0
    for chunk in template.generate(variables):
        size += len(chunk)
        if size > MAX_OUTPUT_CHARS:
            raise TemplateLimit(f"output longer than {MAX_OUTPUT_CHARS} characters")
        out.append(chunk)
        env.tick()
    return "".join(out)


def iter_render(sources: dict[str, str], rows: list[dict[str, Any]]) -> Iterator[dict[str, Any]]:
    """In-process rendering (the worker's body), row by row: {"ok": {key: text}} or
    {"error": line}. A template that does not compile fails every row with the same error."""
    env = _Sandbox()
    try:
        templates = {k: env.from_string(v) for k, v in sorted(sources.items())}
    except (jinja2.TemplateError, TemplateLimit, RecursionError, MemoryError) as e:
        yield from ({"error": _line(e)} for _ in rows)
        return
    for row in rows:
        env.deadline = time.monotonic() + ROW_SECONDS
        try:
            yield {"ok": {k: render_one(env, t, row) for k, t in templates.items()}}
        except RecursionError:
            yield {"error": "template recursion is too deep"}
        except MemoryError:
            yield {"error": "template rendering ran out of memory"}
        except (jinja2.TemplateError, TemplateLimit, ArithmeticError, TypeError, ValueError,
                AttributeError, KeyError, IndexError) as e:
            yield {"error": _line(e)}


def render_batch(sources: dict[str, str], rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return list(iter_render(sources, rows))


def _line(e: BaseException) -> str:
    msg = " ".join(str(e).split()) or type(e).__name__
    if isinstance(e, jinja2.UndefinedError):
        return f"undefined variable: {msg}"
    if isinstance(e, jinja2.exceptions.SecurityError):
        return f"unsafe template operation: {msg}"
    return msg


def render_rows(sources: dict[str, str], rows: list[dict[str, Any]], *, timeout_s: float | None = None) -> list[dict[str, Any]]:
    """`list(render_rows_iter(...))`."""
    return list(render_rows_iter(sources, rows, timeout_s=timeout_s))


def render_rows_iter(sources: dict[str, str], rows: list[dict[str, Any]], *,
                     timeout_s: float | None = None) -> Iterator[dict[str, Any]]:
    """Render every source for every row in a worker process, yielding each row's result as
    the worker produces it ({"ok": {key: text}} or {"error": one line}), so a gate can send
    the first rows to the model while later ones render. The worker gets a hard wall-time
    limit (default: the row deadline times the rows, plus start-up) and an address-space
    limit; crossing one is a StepError."""
    if not rows:
        return
    timeout = timeout_s if timeout_s is not None else 10.0 + ROW_SECONDS * len(rows)
    payload = json.dumps({"sources": sources, "rows": rows}, default=str).encode()
    plain = _plain_substitutions(sources)
    if plain is not None:
        # Rows as the worker would see them (through the same JSON), every name present.
        seen = json.loads(payload)["rows"]
        if all(name in row for row in seen for parts in plain.values() for name in parts[1::2]):
            yield from (_substitute(plain, row) for row in seen)
            return
    proc: Any = _Forked(json.loads(payload)) if _can_fork() else subprocess.Popen(
        [sys.executable, "-m", "specops.runtime.render"], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
        stderr=subprocess.PIPE, env={**os.environ, "PYTHONHASHSEED": "0"})
    expired = threading.Event()

    def kill() -> None:
        expired.set()
        proc.kill()

    timer = threading.Timer(timeout, kill)
    timer.daemon = True
    timer.start()
    n = 0
    try:
        if proc.stdin is not None:
            try:
                proc.stdin.write(payload)  # the worker reads all of stdin before it writes
                proc.stdin.close()
            except BrokenPipeError:
                pass
        for line in proc.stdout:
            try:
                item = json.loads(line)
            except ValueError:
                raise StepError("prompt rendering returned no result") from None
            if n >= len(rows) or not isinstance(item, dict):
                raise ParamError("prompt rendering returned a result of the wrong shape")
            n += 1
            yield item
        proc.wait()
    finally:
        timer.cancel()
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        proc.stdout.close()
    if expired.is_set():
        raise StepError(f"prompt rendering did not finish in {timeout:g} s (template too expensive)")
    if proc.returncode != 0:
        tail = proc.stderr.read().decode("utf-8", "replace").strip().splitlines()
        proc.stderr.close()
        if any("MemoryError" in t for t in tail):
            raise StepError("prompt rendering ran out of memory (template too expensive)")
        raise StepError(f"prompt rendering failed: {tail[-1] if tail else f'exit {proc.returncode}'}")
    proc.stderr.close()
    if n != len(rows):
        raise ParamError("prompt rendering returned a result of the wrong shape")


def _plain_substitutions(sources: dict[str, str]) -> dict[str, list[str]] | None:
    """Each source as [text, name, text, name, ..., text] when every source is only literal
    text and bare `{{ name }}` reads; else None.

    Such a template cannot loop, compute or call anything: rendering it is `str()` of each
    value between the literal parts, which is exactly what the sandbox's code does for it
    (autoescape off, keep_trailing_newline on, and no name falls back to a global when the
    row has it). So it needs no worker, and a gate's first request does not wait ~0.1 s for
    a fresh interpreter when the calling process has threads and cannot fork. Parsing never
    runs the code generator (see the module docstring)."""
    env = _Sandbox()
    out: dict[str, list[str]] = {}
    for key, text in sorted(sources.items()):
        try:
            body = env.parse(text).body
        except jinja2.TemplateError:
            return None
        parts = [""]
        for stmt in body:
            if not isinstance(stmt, nodes.Output):
                return None
            for node in stmt.nodes:
                if isinstance(node, nodes.TemplateData):
                    parts[-1] += node.data
                elif isinstance(node, nodes.Name) and node.ctx == "load":
                    parts += [node.name, ""]
                else:
                    return None
        out[key] = parts
    return out


def _substitute(plain: dict[str, list[str]], row: dict[str, Any]) -> dict[str, Any]:
    """One row's {"ok": {key: text}}, or the worker's error for a text past the output limit."""
    texts: dict[str, str] = {}
    for key, parts in plain.items():
        text = "".join(part if i % 2 == 0 else str(row[part]) for i, part in enumerate(parts))
        if len(text) > MAX_OUTPUT_CHARS:
            return {"error": f"output longer than {MAX_OUTPUT_CHARS} characters"}
        texts[key] = text
    return {"ok": texts}


def _can_fork() -> bool:
    """Fork the worker (milliseconds; a fresh interpreter costs ~0.2 s of start-up and imports,
    which a gate would wait for before its first request) where that is safe: Linux, and no
    other Python thread that could hold a lock the child needs."""
    return sys.platform == "linux" and hasattr(os, "fork") and threading.active_count() == 1


def _limit_memory(extra: int) -> None:
    """Cap the address space at what this process maps now plus `extra` bytes (a forked
    worker inherits its parent's mappings, which may hold a loaded model)."""
    try:
        import resource

        with open("/proc/self/statm", encoding="ascii") as f:
            mapped = int(f.read().split()[0]) * os.sysconf("SC_PAGE_SIZE")
        resource.setrlimit(resource.RLIMIT_AS, (mapped + extra, mapped + extra))
    except (ImportError, ValueError, OSError):  # pragma: no cover - non-POSIX or a lower hard limit
        pass


class _Forked:
    """A forked rendering worker with the part of Popen's interface render_rows_iter uses."""

    def __init__(self, req: dict[str, Any]):
        out_r, out_w = os.pipe()
        err_r, err_w = os.pipe()
        self.pid = os.fork()
        if self.pid == 0:  # the child: render, write JSON lines, and leave without cleanup
            code = 1
            try:
                os.close(out_r)
                os.close(err_r)
                _limit_memory(WORKER_MEMORY)
                sys.setrecursionlimit(400)
                with os.fdopen(out_w, "wb") as out:
                    for item in iter_render(req["sources"], req["rows"]):
                        out.write(json.dumps(item).encode() + b"\n")
                        out.flush()
                code = 0
            except BaseException as e:  # noqa: BLE001 - reported to the parent through the pipe
                os.write(err_w, f"{type(e).__name__}: {e}".encode()[-2000:])
            finally:
                os._exit(code)
        os.close(out_w)
        os.close(err_w)
        self.stdin = None
        self.stdout = os.fdopen(out_r, "rb")
        self.stderr = os.fdopen(err_r, "rb")
        self.returncode: int | None = None

    def poll(self) -> int | None:
        if self.returncode is None:
            pid, status = os.waitpid(self.pid, os.WNOHANG)
            if pid:
                self.returncode = os.waitstatus_to_exitcode(status)
        return self.returncode

    def wait(self) -> int:
        if self.returncode is None:
            _, status = os.waitpid(self.pid, 0)
            self.returncode = os.waitstatus_to_exitcode(status)
        return self.returncode

    def kill(self) -> None:
        if self.returncode is None:
            try:
                os.kill(self.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass


def _worker() -> int:
    _limit_memory(WORKER_MEMORY)
    sys.setrecursionlimit(400)
    req = json.loads(sys.stdin.buffer.read())
    for item in iter_render(req["sources"], req["rows"]):
        sys.stdout.write(json.dumps(item) + "\n")
        sys.stdout.flush()  # the gate sends this row to the model while later rows render
    return 0


if __name__ == "__main__":
    sys.exit(_worker())
