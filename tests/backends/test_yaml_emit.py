"""The block writer of `yaml_emit.dump` against libyaml's own emitter (`_dump_events`).

`dump` writes the block structure itself and lets libyaml decide only how each distinct
scalar is written; these tests hold it to libyaml's output byte for byte on awkward
scalars in every place a scalar can stand, and check that the documents it cannot
reproduce (folded long lines, complex keys, `|+` blocks) are left to libyaml.
"""

from __future__ import annotations

import itertools
import random

import pytest

from specops.backends import yaml_emit
from tests.fixtures.ir_samples import churn_pipeline, llm_pipeline

# Characters libyaml's scalar analysis looks at: indicators, spaces, quotes, breaks, non-ASCII.
_ALPHABET = list("ab09 -?:#,[]{}&*!|>'\"%@`.~=<\\/_\t\n\r") + [
    "\u2028", "\x85", "ü", "\x7f", "\ufeff", "  ", "\n\n", "---", "...", ": ", " #"]
# Plain-looking text the implicit-tag check reads as something else, so it must be quoted.
_WORDS = ["true", "no", "on", "null", "~", "", "1.0", "0x1f", "1_000", "12:30", "2024-06-01", "=", "<<",
          "-1", ".inf", "+1", "1e3", "NaN", "y"]


def _places(s: str) -> list:
    """`s` as a key and as a value of a mapping and of a sequence, at three depths."""
    return [{s: s}, [s], {"k": [s, {s: 1, "z": [[s]]}]}, [[{"a": {s: [s]}}]]]


def _same(doc: object) -> bool:
    return yaml_emit.dump(doc) == yaml_emit._dump_events(doc)


def test_every_short_string_of_indicator_characters_is_written_as_libyaml_writes_it() -> None:
    chars = " -?:#,.'\"a0!|>[{%@`&*"
    strings = ["".join(t) for n in (1, 2) for t in itertools.product(chars, repeat=n)] + _WORDS
    strings += ["".join(t) for t in itertools.product(" -?:#'.a", repeat=3)]  # " #", ": ", "---" inside
    wrong = [s for s in strings if not all(_same(d) for d in _places(s))]
    assert wrong == []


def test_random_documents_are_written_as_libyaml_writes_them() -> None:
    rng = random.Random(18)

    def text() -> str:
        r = rng.random()
        if r < 0.2:
            return rng.choice(_WORDS)
        if r < 0.24:
            return "x" * rng.choice([128, 129, 1000, 1001, 5000])  # simple-key and folding limits
        return "".join(rng.choice(_ALPHABET) for _ in range(rng.randint(0, 12)))

    def node(depth: int) -> object:
        r = rng.random()
        if depth > 4 or r < 0.45:
            return text() if rng.random() < 0.7 else rng.choice(
                [0, -3, 10**20, 1.5, 1e20, 1e-9, float("inf"), float("-inf"), True, False, None])
        if r < 0.75:
            return {text(): node(depth + 1) for _ in range(rng.randint(0, 5))}
        return [node(depth + 1) for _ in range(rng.randint(0, 5))]

    docs = [{text(): node(1) for _ in range(rng.randint(0, 6))} for _ in range(1500)]
    docs += [node(0) for _ in range(300)]
    assert [d for d in docs if not _same(d)] == []


@pytest.mark.parametrize("doc", [
    {"a": "x\n\n", "b": 1},  # a kept-trailing-lines block (`|+`) ends the stream with "..."
    {"a": "x\n\n", "b": "y\n"},  # unless a later block scalar clears it
    {"a": ["x\n\n"], "b": {"c": "plain"}},
    {"a": "\n"}, {"a": [" lead\nx", "x\n "]},
    {"k" * 129: 1}, {"ü" * 65: 1},  # longer than a simple key's 128 bytes: `? ` key
    {"a": "word " * 1000}, {"a": ["w " * 600]},  # long enough to be folded at the width
    {"a": "x\u2028y"}, {"a": "x\ny\u2029z"},  # other line breaks take the indent of their place
])
def test_documents_that_depend_on_their_place_match_libyaml(doc: dict) -> None:
    assert yaml_emit.dump(doc) == yaml_emit._dump_events(doc)


def test_pipelines_are_written_without_the_event_path(monkeypatch: pytest.MonkeyPatch) -> None:
    from specops.backends import kfp, zenml

    docs = [kfp.build_ir(p) for p in (churn_pipeline(), llm_pipeline())]
    docs += [zenml.run_config(p) for p in (churn_pipeline(), llm_pipeline())]
    expected = [yaml_emit._dump_events(d) for d in docs]

    def refuse(doc: object) -> bytes:
        raise AssertionError("fell back to the event path")

    monkeypatch.setattr(yaml_emit, "_dump_events", refuse)
    assert [yaml_emit.dump(d) for d in docs] == expected
