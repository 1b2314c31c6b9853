"""Prompt rendering: the variables a template reads (AST walk, no code generation) and the
sandbox's limits on time, output size, recursion and memory, in a real worker process."""

from __future__ import annotations

import time

import jinja2
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from specops.runtime.errors import StepError
from specops.runtime.render import render_batch, render_rows, variables_used


def names(text: str) -> list[tuple[str, int]]:
    uses, _ = variables_used(text)
    return [(u.name, u.line) for u in uses]


def test_variables_used_respects_scopes_and_reports_lines() -> None:
    text = ("Hello {{ user }}\n"
            "{% for item in items if item != skip %}{{ item }} {{ loop.index }} {{ sep }}{% endfor %}\n"
            "{% set total = items | length %}{{ total }}\n"
            "{% macro show(x, y=default_y) %}{{ x }}{{ y }}{{ caller() if caller }}{% endmacro %}{{ show(tail) }}\n"
            "{% with z = zed %}{{ z }}{% endwith %}{{ range(3) | join }}")
    assert names(text) == [("user", 1), ("items", 2), ("skip", 2), ("sep", 2), ("items", 3),
                           ("default_y", 4), ("tail", 4), ("zed", 5)]


def test_variables_used_never_runs_the_code_generator() -> None:
    t0 = time.monotonic()
    uses, bad = variables_used("{{ 'a' * 10**10 }}{{ 'b' | center(1000000000) }}{{ 9**9**9 }}{{ x }}")
    assert [u.name for u in uses] == ["x"] and not bad
    assert time.monotonic() - t0 < 5  # generous: the generator would allocate 10 GB here


def test_include_and_import_are_reported() -> None:
    _, bad = variables_used("a\n{% include 'x' %}\n{% from 'y' import z %}")
    assert [(b.what, b.line) for b in bad] == [("include", 2), ("fromimport", 3)]


def test_syntax_error_raises() -> None:
    with pytest.raises(jinja2.TemplateSyntaxError):
        variables_used("{{ x }")


def test_render_rows_renders_each_row_in_a_worker() -> None:
    out = render_rows({"prompt": "Q: {{ q }}\nA:", "want": "{{ a | upper }}"},
                      [{"q": "hi", "a": "yo"}, {"q": "bye"}])
    assert out[0] == {"ok": {"prompt": "Q: hi\nA:", "want": "YO"}}
    assert "undefined" in out[1]["error"] and "'a'" in out[1]["error"]


@pytest.mark.parametrize("template, message", [
    ("{{ 'a' * 10**10 }}", "repetition"),
    ("{{ 2 ** 100000 }}", "exponent"),
    ("{{ 'b' | center(1000000000) }}", "larger than"),
    ("{{ '%0999999999d' % 1 }}", "format width"),
    ("{{ '{:>99999999}'.format(1) }}", "format width"),
    ("{% macro f(n) %}{{ f(n + 1) }}{% endmacro %}{{ f(1) }}", "recursion"),
    ("{% for i in range(100000) %}{% for j in range(100000) %}{% endfor %}{% endfor %}", "longer than"),
    ("{% for i in range(100000) %}{{ 'x' * 1000 }}{% endfor %}", "output longer"),
    ("{{ ''.__class__.__mro__ }}", "unsafe"),
])
def test_expensive_or_unsafe_templates_fail_their_row(template: str, message: str) -> None:
    [row] = render_batch({"p": template}, [{}])
    assert message in row["error"]


def test_worker_has_a_hard_time_limit() -> None:
    # Loops over data call no hook of the sandbox: only the worker's wall-time limit stops them.
    with pytest.raises(StepError, match="did not finish"):
        render_rows({"p": "{% for a in s %}{% for b in s %}{% for c in s %}{% endfor %}{% endfor %}{% endfor %}"},
                    [{"s": "x" * 3000}], timeout_s=3)


def test_a_fresh_interpreter_renders_when_threads_run() -> None:
    """Forking is only safe with no other thread; with one, the worker is a new interpreter."""
    import threading

    from specops.runtime import render

    stop = threading.Event()
    t = threading.Thread(target=stop.wait)
    t.start()
    try:
        assert not render._can_fork()
        out = render_rows({"p": "Q: {{ q | lower }}"}, [{"q": "a"}, {"q": "b"}])
        with pytest.raises(StepError, match="did not finish"):
            render_rows({"p": "{% for a in s %}{% for b in s %}{% for c in s %}{% endfor %}{% endfor %}{% endfor %}"},
                        [{"s": "x" * 3000}], timeout_s=3)
    finally:
        stop.set()
        t.join()
    assert out == [{"ok": {"p": "Q: a"}}, {"ok": {"p": "Q: b"}}]


def test_plain_substitutions_render_without_a_worker(monkeypatch) -> None:
    """Literal text and bare `{{ name }}` reads need no sandbox: no worker is started."""
    from specops.runtime import render

    def no_worker(*a, **k):
        raise AssertionError("a worker was started")

    monkeypatch.setattr(render, "_Forked", no_worker)
    monkeypatch.setattr(render.subprocess, "Popen", no_worker)
    out = render_rows({"p": "Q: {{ q }}\n{{n}} / {{ x }}\n", "v": "{{ a }}"},
                      [{"q": "hi", "n": 1.5, "x": None, "a": [1, {"b": True}]}])
    assert out == [{"ok": {"p": "Q: hi\n1.5 / None\n", "v": "[1, {'b': True}]"}}]
    [long] = render_rows({"p": "{{ q }}{{ q }}"}, [{"q": "x" * 150_000}])
    assert long == {"error": "output longer than 200000 characters"}


def test_a_missing_name_still_goes_to_the_worker() -> None:
    out = render_rows({"p": "Q: {{ q }}"}, [{"q": "a"}, {}])
    assert out[0] == {"ok": {"p": "Q: a"}} and "undefined" in out[1]["error"]


_TEXT = st.text(st.characters(blacklist_categories=("Cs",)), max_size=12).filter(
    lambda t: "{" not in t and "}" not in t and "%" not in t and "#" not in t)
_NAME = st.sampled_from(["q", "a", "range", "loop", "x1"])
_VALUE = st.recursive(st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=8),
                      lambda c: st.lists(c, max_size=3) | st.dictionaries(st.text(max_size=3), c, max_size=3),
                      max_leaves=6)


@settings(max_examples=150, deadline=None)
@given(parts=st.lists(st.tuples(_TEXT, _NAME, st.sampled_from(["{{ %s }}", "{{%s}}", "{{- %s -}}"])), max_size=4),
       tail=_TEXT, values=st.fixed_dictionaries({n: _VALUE for n in ["q", "a", "range", "loop", "x1"]}))
def test_plain_substitution_matches_the_sandbox(parts, tail, values) -> None:
    """The fast path renders exactly what the sandboxed jinja2 renders (whitespace control,
    trailing newlines, str() of every JSON value, names that shadow globals)."""
    from specops.runtime import render

    text = "".join(t + form % n for t, n, form in parts) + tail
    [fast] = render_rows({"p": text}, [values])
    assert render._plain_substitutions({"p": text}) is not None
    assert [fast] == render_batch({"p": text}, [values])
