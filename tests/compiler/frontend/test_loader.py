"""Repo discovery and whole-document validation: ignore lists, symlinks, multi-document
files, and no traceback for any document shape."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from specops.frontend.loader import find_root, load
from specops.frontend.validation import validate_document
from specops.frontend.yamlio import YamlDoc

ROOT = Path(__file__).resolve().parents[3]
CHURN = ROOT / "examples" / "churn"


def copy(tmp_path: Path) -> Path:
    repo = tmp_path / "repo"
    shutil.copytree(CHURN, repo, ignore=shutil.ignore_patterns("build", ".specops"))
    return repo


def test_find_root_walks_up(tmp_path: Path) -> None:
    repo = copy(tmp_path)
    assert find_root(repo / "models") == repo.resolve()
    assert find_root(tmp_path) is None


def test_specopsignore_and_hidden_dirs_are_skipped(tmp_path: Path) -> None:
    repo = copy(tmp_path)
    (repo / "k8s").mkdir()
    (repo / "k8s" / "deploy.yaml").write_text("apiVersion: apps/v1\nkind: Deployment\n")
    (repo / ".github").mkdir()
    (repo / ".github" / "ci.yml").write_text("on: push\n")
    assert any(d.file == "k8s/deploy.yaml" for d in load(repo).diagnostics.items)
    (repo / ".specopsignore").write_text("# not specs\nk8s/\n")
    r = load(repo)
    assert not r.diagnostics.items
    assert len(r.specs) == 7  # the churn example's specs


def test_symlink_out_of_the_repo_is_refused(tmp_path: Path) -> None:
    repo = copy(tmp_path)
    outside = tmp_path / "outside.yaml"
    outside.write_text("apiVersion: specops.dev/v1alpha1\n")
    os.symlink(outside, repo / "models" / "sneaky.yaml")
    os.symlink(tmp_path, repo / "up")
    r = load(repo)
    bad = sorted((d.file, d.code) for d in r.diagnostics.items)
    assert bad == [("models/sneaky.yaml", "path-escape"), ("up", "path-escape")]


def test_symlink_inside_the_repo_is_read_once(tmp_path: Path) -> None:
    repo = copy(tmp_path)
    (repo / "models" / "churn.yaml").rename(repo / "churn-real.yaml")
    os.symlink(repo / "churn-real.yaml", repo / "models" / "churn.yaml")
    os.symlink(repo / "models", repo / "models-again")
    r = load(repo)
    assert [d.code for d in r.diagnostics.items] == []
    assert [s.file for s in r.specs if s.kind == "Model"] == ["churn-real.yaml"]


def test_several_documents_per_file(tmp_path: Path) -> None:
    repo = copy(tmp_path)
    gate = (repo / "gates" / "auc.yaml").read_text()
    (repo / "gates" / "auc.yaml").write_text(gate + "---\n" + gate.replace("name: churn-auc", "name: churn-auc-2"))
    r = load(repo)
    assert not r.diagnostics.items
    assert sorted(s.name for s in r.specs if s.kind == "EvalGate") == ["churn-auc", "churn-auc-2"]


_scalars = st.one_of(st.none(), st.booleans(), st.integers(), st.floats(allow_nan=False), st.text(max_size=12))
_keys = st.sampled_from(["apiVersion", "kind", "metadata", "spec", "name", "type", "source", "uri", "datasets",
                         "classical", "llm", "metrics", "threshold", "engine", "args", "accelerator", "overrides",
                         "environments", "targets", "x"])
_values = st.recursive(_scalars, lambda inner: st.one_of(st.lists(inner, max_size=3),
                                                          st.dictionaries(_keys, inner, max_size=4)), max_leaves=12)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(kind=st.sampled_from(["Project", "Dataset", "Model", "Prompt", "EvalGate", "ServingTarget", "Nope"]),
       body=st.dictionaries(_keys, _values, max_size=5))
def test_any_document_gives_a_model_or_positioned_diagnostics(kind: str, body: dict) -> None:
    data = {"apiVersion": "specops.dev/v1alpha1", "kind": kind, **body}
    model, diags = validate_document(YamlDoc("f.yaml", 0, data))
    assert (model is None) == bool(diags)
    for d in diags:
        assert d.file == "f.yaml" and d.pos is not None


# ---- only regular files are read, their size checked before reading --------------------------


def test_fifo_named_yaml_is_one_located_error_not_a_hang(tmp_path: Path) -> None:
    repo = copy(tmp_path)
    os.mkfifo(repo / "models" / "pipe.yaml")  # opening it for reading would block for ever
    r = load(repo)
    assert [(d.file, d.code, d.pos.line, d.pos.col) for d in r.diagnostics.items] == [
        ("models/pipe.yaml", "file-type", 1, 1)]
    assert "FIFO" in r.diagnostics.items[0].message
    assert len(r.specs) == 7  # the churn example's specs


def test_huge_file_is_refused_by_its_size_before_reading(tmp_path: Path, monkeypatch) -> None:
    repo = copy(tmp_path)
    with open(repo / "models" / "big.yaml", "wb") as f:
        f.truncate(1 << 30)  # sparse: 1 GiB that takes no disk
    reads: list[int] = []
    real_read = os.read
    monkeypatch.setattr(os, "read", lambda fd, n: reads.append(n) or real_read(fd, n))
    r = load(repo)
    assert [(d.file, d.code, d.pos.line) for d in r.diagnostics.items] == [("models/big.yaml", "yaml-too-large", 1)]
    assert sum(reads) < 32 << 20  # the seven small specs were read (1 MiB buffers), the big one not at all


def test_special_file_renders_without_reading_it(tmp_path: Path) -> None:
    from specops.diagnostics import render_text

    repo = copy(tmp_path)
    os.mkfifo(repo / "models" / "pipe.yaml")
    text = render_text(load(repo).diagnostics.sorted(), repo)  # must not block on the FIFO
    assert text.startswith("models/pipe.yaml:1:1: error:")


# .specopsignore has gitignore's semantics (pathspec). These are the cases where that differs
# from the fnmatch matching specops used before; the README says so.
@pytest.mark.parametrize("pattern, ignored, kept", [
    ("drafts/*.yaml", ["drafts/a.yaml"], ["drafts/old/b.yaml"]),  # `*` stops at `/`
    ("drafts/**/*.yaml", ["drafts/a.yaml", "drafts/old/b.yaml"], []),  # `**` crosses folders
    ("/top.yaml", ["top.yaml"], ["sub/top.yaml"]),  # a leading `/` anchors at the repo root
    ("tmp/", ["tmp/a.yaml"], ["tmp.yaml"]),  # a trailing `/` means folders only
    ("*.yaml\n!models/*.yaml\n!specops.yaml", ["x.yaml"], ["models/m.yaml"]),  # `!` re-includes
])
def test_specopsignore_uses_gitignore_semantics(tmp_path, pattern, ignored, kept):
    from specops.paths import discover

    for rel in ["specops.yaml", *ignored, *kept]:
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_text("a: 1\n")
    (tmp_path / ".specopsignore").write_text(pattern + "\n")
    files, problems = discover(tmp_path)
    assert problems == []
    assert not set(ignored) & set(files)
    assert set(kept) <= set(files)


def _docs_of(repo: Path) -> list[tuple]:
    r = load(repo, parse_memo=True)
    return [(s.key, s.file, s.doc.data, s.doc.start, s.doc.pos_of(("spec",))) for s in r.specs] + [
        (d.code, d.file, d.pos, d.message) for d in r.diagnostics.sorted()]


def test_parse_memo_gives_what_a_fresh_parse_gives(tmp_path: Path) -> None:
    repo = tmp_path / "repo"
    shutil.copytree(ROOT / "examples" / "support-assistant", repo, ignore=shutil.ignore_patterns("build", ".specops"))
    memo = repo / ".specops" / "cache" / "parse.marshal"
    assert load(repo) and not memo.exists()  # only validate and compile keep the memo
    fresh = _docs_of(repo)
    assert memo.is_file()
    assert _docs_of(repo) == fresh  # every file from the memo, positions computed from the bytes
    # an edit: that file parsed again, the others from the memo
    f = repo / "prompts" / "triage.yaml"
    f.write_text("# moved down\n" + f.read_text().replace("version: 2", "version: 3"))
    edited = _docs_of(repo)
    memo.unlink()
    assert _docs_of(repo) == edited != fresh
    # two files with the same bytes: separate objects, as two parses give
    shutil.copy(f, repo / "prompts" / "copy.yaml")
    r = load(repo, parse_memo=True)
    a, b = [s.doc.data for s in r.specs if s.file in ("prompts/triage.yaml", "prompts/copy.yaml")]
    assert a == b and a is not b


@pytest.mark.parametrize("garbage", [b"", b"\x00not marshal", b"\xe9" * 100])
def test_a_broken_or_foreign_parse_memo_is_ignored(tmp_path: Path, garbage: bytes) -> None:
    repo = tmp_path / "repo"
    shutil.copytree(ROOT / "examples" / "support-assistant", repo, ignore=shutil.ignore_patterns("build", ".specops"))
    fresh = _docs_of(repo)
    (repo / ".specops" / "cache" / "parse.marshal").write_bytes(garbage)
    assert _docs_of(repo) == fresh


def test_models_share_equal_fields_sets_and_stay_frozen() -> None:
    """validate_document points equal `model_fields_set`s at one set (memory); each model
    still reports exactly the fields its document gave, and assignment is still refused."""
    import pydantic

    def dataset(name: str, extra: dict) -> dict:
        return {"apiVersion": "specops.dev/v1alpha1", "kind": "Dataset", "metadata": {"name": name},
                "spec": {"source": {"uri": "s3://bucket/k.csv", "format": "csv", "version": "v1"},
                         "columns": [{"name": "a", "type": "int"}, {"name": "b", "type": "string"}], **extra}}

    a, da = validate_document(YamlDoc("a.yaml", 0, dataset("a", {})))
    b, db = validate_document(YamlDoc("b.yaml", 0, dataset("b", {"license": "internal"})))
    assert not da and not db
    col_a, col_b = a.spec.columns
    assert col_a.model_fields_set == {"name", "type"} and col_a.model_fields_set is col_b.model_fields_set
    assert a.spec.source.model_fields_set is b.spec.source.model_fields_set
    assert a.spec.model_fields_set == {"source", "columns"}
    assert b.spec.model_fields_set == {"source", "columns", "license"}
    with pytest.raises(pydantic.ValidationError):
        col_a.name = "c"
    assert col_b.model_fields_set == {"name", "type"}
    copied = col_a.model_copy(update={"name": "z"})
    assert copied.name == "z" and col_b.model_fields_set == {"name", "type"}


@pytest.mark.parametrize("example", ["churn", "support-assistant", "nyc-taxi"])
def test_every_model_reached_by_the_fields_set_walk(example: str) -> None:
    """The walk that shares fields-sets skips the fields whose annotation names no model: no
    model of a loaded example, nor of an environment's overridden spec, is left with a set
    of its own (a missed one would only cost memory, so nothing else would notice)."""
    from pydantic import BaseModel

    from specops.frontend import validation
    from specops.resolve.refs import resolve

    repo = load(ROOT / "examples" / example)
    resolved = resolve(repo)
    todo: list = [s.model for s in repo.specs] + [n.spec for v in resolved.envs.values() for n in v.nodes.values()]
    models = 0
    while todo:
        m = todo.pop()
        if isinstance(m, (list, tuple)):
            todo.extend(m)
        elif isinstance(m, dict):
            todo.extend(m.values())
        elif isinstance(m, BaseModel):
            models += 1
            fs = m.__pydantic_fields_set__
            assert validation._FIELDS_SETS.get(frozenset(fs)) is fs, (type(m).__name__, fs)
            todo.extend(m.__dict__.values())
    assert models > 50
