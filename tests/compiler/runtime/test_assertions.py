"""Assertions in promptfoo's vocabulary: each type's verdict and score on known texts (the
promptfoo side-by-side test compares verdicts row by row with promptfoo itself)."""

from __future__ import annotations

import pytest

from specops.runtime.assertions import (
    Context,
    base_type,
    bleu,
    check,
    parse_judge_answer,
    rouge_n,
    treebank_tokenize,
    validate,
)
from specops.runtime.errors import ParamError

CTX = Context()


def verdict(type_: str, value, output: str, threshold=None, latency_ms: float = 10.0):
    a = {"type": type_, "value": value}
    if threshold is not None:
        a["threshold"] = threshold
    return check(a, output, latency_ms, CTX)


@pytest.mark.parametrize("type_, value, output, passed", [
    ("equals", "Paris", "Paris", True),
    ("equals", "Paris", "Paris.", False),
    ("equals", {"a": 1}, '{"a": 1}', True),
    ("contains", "refund", "No refund is due", True),
    ("contains", "Refund", "No refund is due", False),
    ("icontains", "Refund", "No REFUND is due", True),
    ("not-icontains", "refund", "No REFUND is due", False),
    ("starts-with", "No", "No refund", True),
    ("regex", r"\d{3}-\d{4}", "call 555-1234", True),
    ("regex", r"^\d+$", "call 555", False),
    ("is-json", None, '{"x": [1, 2]}', True),
    ("is-json", None, "{x: 1}", False),
    ("is-json", {"type": "object", "required": ["x"]}, '{"y": 1}', False),
    ("is-json", "type: object\nrequired: [x]", '{"x": 1}', True),
    ("json-schema", {"type": "array"}, "[1]", True),
    ("not-contains", "sorry", "Hello there", True),
    ("levenshtein", "kitten", "sitting", True),
    ("levenshtein", "kitten", "sitting", False),
])
def test_boolean_verdicts(type_, value, output, passed) -> None:
    threshold = 2 if (type_ == "levenshtein" and not passed) else None
    v = verdict(type_, value, output, threshold)
    assert v.passed is passed
    assert v.score == (1.0 if passed else 0.0)


def test_bad_regex_fails_with_its_reason() -> None:
    v = verdict("regex", "([", "x")
    assert not v.passed and "invalid regex" in v.reason


def test_latency_threshold() -> None:
    assert check({"type": "latency", "threshold": 100}, "x", 99.0, CTX).passed
    assert not check({"type": "latency", "threshold": 100}, "x", 101.0, CTX).passed


def test_treebank_tokenizer_splits_like_js_rouge() -> None:
    assert treebank_tokenize("I can't go, he said \"no\"... (ok)?") == [
        "I", "ca", "n't", "go", ",", "he", "said", "``", "no", "''", "...", "(", "ok", ")", "?"]


def test_rouge_n_is_unigram_f1_on_lowercased_tokens() -> None:
    assert rouge_n("The cat sat", "the cat sat") == 1.0
    assert rouge_n("the cat", "the cat sat down") == pytest.approx(2 * 1.0 * 0.5 / 1.5)
    assert rouge_n("", "x") == 0.0
    v = verdict("rouge-n", "the cat sat down", "the cat")
    assert not v.passed and v.score == pytest.approx(2 / 3)


def test_bleu_matches_promptfoo_formula() -> None:
    assert bleu("the cat sat on the mat", ["the cat sat on the mat"]) == pytest.approx(1.0)
    # 3 words: 4-grams are skipped; 1/2/3-gram precisions 1; brevity penalty exp(1 - 6/3)
    assert bleu("the cat sat", ["the cat sat on the mat"]) == pytest.approx(2.718281828 ** (1 - 2))
    assert bleu("  ", ["x"]) == 0.0


def test_rouge_l_uses_google_rouge_score() -> None:
    assert verdict("rouge-l", "the cat sat on the mat", "the cat sat on the mat").passed
    assert not verdict("rouge-l", "the cat sat on the mat", "a dog ran").passed


@pytest.mark.parametrize("answer, threshold, passed, score", [
    ('{"reason": "polite", "pass": true, "score": 0.9}', None, True, 0.9),
    ('Sure! {"reason": "rude", "pass": false, "score": 0}', None, False, 0.0),
    ('{"pass": "yes"}', None, True, 1.0),
    ('{"pass": true, "score": 0.4}', 0.5, False, 0.4),
    ('{"score": "0.8"}', 0.5, True, 0.8),
    ("I think it passes.", None, False, 0.0),
])
def test_judge_answers_are_parsed_like_promptfoo(answer, threshold, passed, score) -> None:
    v = parse_judge_answer(answer, threshold)
    assert (v.passed, v.score) == (passed, pytest.approx(score))


def test_llm_rubric_asks_the_judge_with_promptfoos_grading_prompt() -> None:
    seen = []

    def judge(messages):
        seen.append(messages)
        return '{"reason": "ok", "pass": true, "score": 1}'

    v = check({"type": "llm-rubric", "value": "is polite"}, "Thanks!", 5.0, Context(judge=judge))
    assert v.passed and v.reason == "ok"
    assert seen[0][0]["role"] == "system" and "{reason: string, pass: boolean, score: number}" in seen[0][0]["content"]
    assert seen[0][1]["content"] == "<Output>\nThanks!\n</Output>\n<Rubric>\nis polite\n</Rubric>"


def test_shape_errors() -> None:
    with pytest.raises(ParamError, match="unknown assertion type 'not-latency'"):
        base_type("not-latency")
    with pytest.raises(ParamError, match="contains needs a value"):
        validate({"type": "contains"}, "a[0]")
    with pytest.raises(ParamError, match="latency needs a threshold"):
        validate({"type": "latency"}, "a[0]")
    with pytest.raises(ParamError, match="unknown key 'valeu'"):
        validate({"type": "contains", "valeu": "x"}, "a[0]")


@pytest.mark.slow
def test_similar_uses_the_offline_minilm_model() -> None:
    from specops.runtime.generate import embedder

    ctx = Context(embed=embedder())
    same = check({"type": "similar", "value": "Your invoice is due at the end of the month."},
                 "Your invoice is due at the end of the month.", 1.0, ctx)
    assert same.passed and same.score == pytest.approx(1.0, abs=1e-4)
    para = check({"type": "similar", "value": "Your invoice is due at the end of the month.", "threshold": 0.5},
                 "The bill must be paid by the end of this month.", 1.0, ctx)
    other = check({"type": "similar", "value": "Your invoice is due at the end of the month.", "threshold": 0.5},
                  "The router light is blinking red.", 1.0, ctx)
    assert para.passed and not other.passed and para.score > other.score
    assert check({"type": "similar", "value": ["The router light is blinking red.", "Pay by month end."],
                  "threshold": 0.5}, "The bill must be paid by the end of this month.", 1.0, ctx).passed
