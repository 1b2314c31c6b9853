"""The strict YAML reader: positions, strictness, bounded aliases, and no traceback on any bytes."""

from __future__ import annotations

from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from specops.diagnostics import Pos
from specops.frontend.yamlio import MAX_DEPTH, MAX_FILE_BYTES, MAX_NODES, fast_datas, parse

ROOT = Path(__file__).resolve().parents[3]


def one(raw: bytes):
    docs, diags = parse(raw, "f.yaml")
    return docs, diags


def test_positions_of_keys_and_values() -> None:
    docs, diags = one(b"a:\n  b: 1\n  c: [x, {d: y}]\n")
    assert not diags
    doc = docs[0]
    assert doc.data == {"a": {"b": 1, "c": ["x", {"d": "y"}]}}
    assert doc.keys[("a", "b")] .line == 2 and doc.keys[("a", "b")].col == 3
    assert (doc.values[("a", "c", 1, "d")].line, doc.values[("a", "c", 1, "d")].col) == (3, 14)
    # A missing path falls back to its nearest ancestor.
    assert doc.pos_of(("a", "zzz")).line == 2


def test_fast_path_data_and_positions_equal_the_exact_paths() -> None:
    """The fast path's data (types included: repr tells 1 from True and 1.0) and the
    positions it finds on demand, one path at a time, are the exact path's, for every key and
    value of every example spec and of a few shapes the examples lack."""
    files = [p.read_bytes() for p in sorted((ROOT / "examples").rglob("*.y*ml"))]
    assert len(files) >= 30
    files += [b"a: [1, 1.0, true, null, ~, 2024-01-01, '0x1f', 0x1f, 1:30, .inf]\n",
              b"k:\n- {a: {b: [c, [d, {e: f}]]}}\n- ''\n---\nnext: doc\n---\n",
              b"on: 1\n200: 2\n'quoted key': |\n  block\n  text\nfolded: >\n  x\n"]
    fast_docs = 0
    for raw in files:
        fast, d1 = parse(raw, "f.yaml")
        exact, d2 = parse(raw, "f.yaml", exact=True)
        assert not d1 and not d2, raw
        assert repr([d.data for d in fast]) == repr([d.data for d in exact])
        for f, e in zip(fast, exact):
            if fast_datas([f]) is None:
                continue  # anchors or merge keys: the fast path declined this file
            fast_docs += 1
            assert f.start == e.start
            for path, pos in e.values.items():
                assert f.position(path) == pos, (raw, path)
            for path, pos in e.keys.items():
                assert f.position(path, key=True) == pos, (raw, path)
            assert f.position(("no-such-key",)) is None and f.position((), key=True) is None
    assert fast_docs >= 30


def test_multi_document_files() -> None:
    docs, diags = one(b"a: 1\n---\nb: 2\n---\n")
    assert not diags
    assert [d.data for d in docs] == [{"a": 1}, {"b": 2}, None]
    assert docs[1].start.line == 3


def test_keys_are_always_strings() -> None:
    docs, _ = one(b"on: 1\nyes: 2\n200: 3\n")
    assert list(docs[0].data) == ["on", "yes", "200"]


def test_dates_stay_text() -> None:
    docs, _ = one(b"version: 2024-06-01\n")
    assert docs[0].data == {"version": "2024-06-01"}


def test_merge_keys_are_supported() -> None:
    docs, diags = one(b"base: &b {x: 1, y: 2}\nother:\n  <<: *b\n  y: 3\n")
    assert not diags
    assert docs[0].data["other"] == {"x": 1, "y": 3}


def test_duplicate_key_reports_second_occurrence() -> None:
    _, diags = one(b"a: 1\nb: 2\na: 3\n")
    assert [(d.code, d.pos.line, d.pos.col) for d in diags] == [("yaml-duplicate-key", 3, 1)]
    assert "line 1" in diags[0].message


def test_not_utf8_is_located() -> None:
    _, diags = one(b"a: ok\nb: caf\xe9\n")
    assert [(d.code, d.pos) for d in diags] == [("yaml-encoding", Pos(2, 7))]


def test_nul_byte() -> None:
    _, diags = one(b"a: 1\nb: \x00\n")
    assert diags[0].code == "yaml-encoding" and diags[0].pos.line == 2


def test_oversized_file() -> None:
    _, diags = one(b"a: " + b"x" * MAX_FILE_BYTES + b"\n")
    assert diags[0].code == "yaml-too-large"


def test_bom_is_accepted() -> None:
    docs, diags = one(b"\xef\xbb\xbfa: 1\n")
    assert not diags and docs[0].data == {"a": 1}


def test_alias_bomb_fails_fast() -> None:
    lines = ['a0: &a0 ["lol","lol","lol","lol","lol","lol","lol","lol","lol","lol"]']
    for i in range(1, 12):
        refs = ",".join(f"*a{i-1}" for _ in range(10))
        lines.append(f"a{i}: &a{i} [{refs}]")
    raw = ("\n".join(lines) + "\n").encode()  # 10^12 nodes if expanded
    _, diags = one(raw)
    # Rejected by the node budget, not by running out of time or memory (the speed is a
    # benchmark figure: benchmarks/bench.py, 'alias-bomb').
    assert diags[0].code == "yaml-alias-limit" and "more than 100000 nodes" in diags[0].message


def test_recursive_alias() -> None:
    _, diags = one(b"a: &a [*a]\n")
    assert diags and diags[0].code in ("yaml-alias-limit", "yaml-syntax")


def test_python_tags_are_refused() -> None:
    _, diags = one(b"a: !!python/object/apply:os.system ['echo hi']\n")
    assert diags[0].code == "yaml-tag" and "!!python/object/apply:os.system" in diags[0].message


def test_ruamel_second_opinion_accepts_what_libyaml_rejects() -> None:
    # libyaml builds differ on URIs inside flow mappings; either parser accepting is enough.
    docs, diags = one(b"source: {uri: hf://org/data, format: hf}\n")
    assert not diags
    assert docs[0].data == {"source": {"uri": "hf://org/data", "format": "hf"}}


def test_syntax_error_has_position() -> None:
    _, diags = one(b"a:\n  b: 1\n c: 2\n")
    assert diags[0].code == "yaml-syntax" and diags[0].pos.line == 3


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.binary(max_size=400))
def test_any_bytes_give_data_or_diagnostics(raw: bytes) -> None:
    docs, diags = parse(raw, "fuzz.yaml")
    assert (docs and not diags) or (not docs and len(diags) == 1) or (not docs and not diags)
    for d in diags:
        assert d.pos is not None and d.pos.line >= 1 and d.pos.col >= 1


_yamlish = st.text(alphabet=st.sampled_from(list("ab:-[]{},&*!|>'\"\n #?%@`\t0.9")), max_size=200)


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(_yamlish)
def test_yaml_shaped_text_never_crashes(text: str) -> None:
    docs, diags = parse(text.encode(), "fuzz.yaml")
    for d in diags:
        assert d.code.startswith("yaml-")


# ---- limits: the same on the fast and the exact path, reported where they are crossed --------


def both(raw: bytes):
    """(fast-path result, exact-path result) as (codes and positions, data)."""
    out = []
    for exact in (False, True):
        docs, diags = parse(raw, "f.yaml", exact=exact)
        out.append(([(d.code, d.pos.line, d.pos.col) for d in diags], [d.data for d in docs]))
    assert out[0] == out[1], "the fast and the exact path disagree"
    return out[0]


def test_flow_nesting_limit_is_located_on_both_paths() -> None:
    ok = b"a: " + b"[" * (MAX_DEPTH - 1) + b"]" * (MAX_DEPTH - 1) + b"\n"
    assert both(ok)[0] == []
    # The root mapping is level 1: the 64th bracket opens level 65, at column 3 + 64.
    deep = b"a: " + b"[" * MAX_DEPTH + b"]" * MAX_DEPTH + b"\n"
    assert both(deep)[0] == [("yaml-limit", 1, 4 + MAX_DEPTH - 1)]


def test_block_nesting_limit_is_located() -> None:
    raw = b"".join(b"  " * i + b"k:\n" for i in range(100)) + b"  " * 100 + b"v\n"
    assert both(raw)[0] == [("yaml-limit", MAX_DEPTH + 1, 2 * MAX_DEPTH + 1)]


def test_lone_cr_block_nesting_is_bounded_too() -> None:
    raw = b"".join(b"  " * i + b"k:\r" for i in range(100)) + b"  " * 100 + b"v\r"
    assert both(raw)[0] == [("yaml-limit", MAX_DEPTH + 1, 2 * MAX_DEPTH + 1)]


def test_nesting_that_would_overflow_the_c_stack_fails_fast() -> None:
    # 100,000 levels crash libyaml's recursive composer (SIGSEGV); the event scan stops at 65.
    raw = b"a: " + b"[" * 100_000 + b"]" * 100_000 + b"\n"
    assert both(raw)[0] == [("yaml-limit", 1, 4 + MAX_DEPTH - 1)]


def test_node_limit_is_located_without_aliases() -> None:
    raw = b"a:\n" + b"- 1\n" * (MAX_NODES + 10)
    # Nodes counted in document order: the root, `a`, the list, then one per item.
    assert both(raw)[0] == [("yaml-limit", MAX_NODES - 1, 3)]


def test_alias_bomb_is_reported_at_the_alias_that_crosses_the_limit() -> None:
    lines = ['a0: &a0 ["lol","lol","lol","lol","lol","lol","lol","lol","lol","lol"]']
    for i in range(1, 7):
        lines.append(f"a{i}: &a{i} [{','.join(f'*a{i - 1}' for _ in range(10))}]")
    codes, _ = both(("\n".join(lines) + "\n").encode())
    # 12,341 nodes before a4's aliases, each adding a3's 11,111: the eighth crosses 100,000.
    assert codes == [("yaml-alias-limit", 5, 10 + 4 * 7)]


def test_alias_that_nests_too_deep() -> None:
    raw = b"a: &a " + b"[" * 40 + b"]" * 40 + b"\nb: " + b"[" * 30 + b"*a" + b"]" * 30 + b"\n"
    assert both(raw)[0] == [("yaml-limit", 2, 34)]


def test_integers_must_fit_in_int64() -> None:
    assert both(b"a: 9223372036854775807\nb: -9223372036854775808\n") == (
        [], [{"a": 2**63 - 1, "b": -(2**63)}])
    assert both(b"a: 1\nb: 9223372036854775808\n")[0] == [("yaml-limit", 2, 4)]
    # More digits than Python will convert, a huge hex number, 10^4000.
    for big in (b"9" * 5000, b"0x" + b"f" * 5000, b"1" + b"0" * 4000):
        assert both(b"replicas: " + big + b"\n")[0] == [("yaml-limit", 1, 11)]


def test_sexagesimal_integers_cannot_burn_cpu() -> None:
    assert both(b"a: 1:30\n") == ([], [{"a": 90}])
    assert both(b"a: 1" + b":1" * 200_000 + b"\n")[0] == [("yaml-limit", 1, 4)]


def test_malformed_numbers_the_resolver_allows_are_located() -> None:
    for lit in (b"0b_", b"0x_", b"-0b__"):
        assert both(b"x: 1\na: " + lit + b"\n")[0] == [("yaml-syntax", 2, 4)]


def test_float_overflow_is_refused_but_explicit_inf_is_data() -> None:
    assert both(b"a: 1.0e+400\n")[0] == [("yaml-limit", 1, 4)]
    assert both(b"a: .inf\n") == ([], [{"a": float("inf")}])


def test_unclosed_bracket_is_reported_where_it_opened() -> None:
    assert both(b"a: 1\nb: [1, 2,\nc: 3\n")[0] == [("yaml-syntax", 2, 4)]
    assert both(b"a: 1\nb: {x: 1\n")[0] == [("yaml-syntax", 2, 4)]
    # The innermost one still open.
    assert both(b"a: 1\nb: [1, {x: [2,\n")[0] == [("yaml-syntax", 2, 12)]
    assert both(b"a: 1\r\nb: [1,\r\n")[0] == [("yaml-syntax", 2, 4)]


def test_unclosed_quote_is_reported_where_it_opened() -> None:
    assert both(b"a: 1\nb: \"abc\nc: 3\n")[0] == [("yaml-syntax", 2, 4)]
    _, diags = parse(b"a: 1\nb: 'abc", "f.yaml")
    assert [(d.code, d.pos.line, d.pos.col) for d in diags] == [("yaml-syntax", 2, 4)]
    assert "never closed" in diags[0].message


def test_positions_never_fall_past_the_last_line() -> None:
    for raw in (b"a: [\n\n\n", b"a: {b: 1,\n", b"k: v\nx", b"- [\n  - 1\n"):
        _, diags = parse(raw, "f.yaml")
        lines = raw.decode().split("\n")
        assert diags and diags[0].pos.line <= len([ln for ln in lines if ln.strip()]) , (raw, diags)
