"""Fuzzing in every CI run, on a fixed budget (the big run is benchmarks/fuzz.py, its figures
in the issue notes): mutants of the examples' spec files and generated spec-shaped documents
must never make validate or compile raise, hang or report an error without a place. Inputs
that once failed are kept in fuzz_corpus/ and replayed first."""

from __future__ import annotations

import shutil
from typing import Iterator

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.compiler.frontend import fuzzing as F

# ~40 s on an idle 2-core machine: the CI budget for all of this file is two minutes.
MUTANTS = 2000
SEED = 20261202


@pytest.fixture(scope="module")
def targets() -> Iterator[list[F.Target]]:
    scratch = F.scratch_dir()
    yield [F.Target(e, scratch) for e in F.EXAMPLES]
    shutil.rmtree(scratch, ignore_errors=True)


def _report(failures) -> str:
    return "\n\n".join(f"{ex}:{rel}: {problem}\n--- input ---\n{data[:600]!r}" for ex, rel, data, problem in failures[:3])


def test_saved_corpus_never_fails(targets: list[F.Target]) -> None:
    by_name = {t.example: t for t in targets}
    cases = F.corpus_cases()
    assert cases, "the corpus is empty"
    failures = [(ex, rel, p.read_bytes(), problem) for ex, rel, p in cases
                if (problem := by_name[ex].check(rel, p.read_bytes())) is not None]
    assert not failures, _report(failures)


def test_mutants_never_crash_hang_or_lose_their_place(targets: list[F.Target]) -> None:
    result = F.run(targets, seed=SEED, inputs=MUTANTS)
    assert result.inputs == MUTANTS
    assert not result.failures, f"{len(result.failures)} of {MUTANTS} inputs failed:\n" + _report(result.failures)


@settings(max_examples=300, deadline=None, derandomize=True, database=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.filter_too_much])
@given(data=st.data())
def test_generated_documents_never_crash(targets: list[F.Target], data) -> None:
    target, doc = data.draw(F.document_strategy(targets))
    _, problem = F.check_document(target, doc, data.draw(st.integers(0, 100)))
    assert problem is None, f"{problem}\n--- input ---\n{doc.decode()[:1500]}"
