"""The repo's cache (<root>/.specops/cache) is replayed instead of recomputing, so a cache
this user's machine did not write — committed in a pull request, copied from elsewhere — is
emptied before use (specops.paths.repo_cache_dir)."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from specops import paths
from specops.build.compile import compile_repo
from specops.checks import analyze

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def fresh_key(tmp_path, monkeypatch):
    """A user cache of its own, so the key is made here, and no folder is trusted yet."""
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "usercache"))
    monkeypatch.setattr(paths, "_KEY", None)
    monkeypatch.setattr(paths, "_TRUSTED", set())


def _forget(monkeypatch):
    monkeypatch.setattr(paths, "_TRUSTED", set())


def test_a_committed_cache_is_emptied_and_our_own_is_kept(tmp_path, fresh_key, monkeypatch):
    repo = tmp_path / "repo"
    shutil.copytree(ROOT / "examples" / "churn", repo, ignore=shutil.ignore_patterns(".specops", "build"))
    planted = repo / ".specops" / "cache" / "builds" / "in-crafted.json"
    planted.parent.mkdir(parents=True)
    planted.write_text('{"format": 3, "entries": []}')
    (repo / ".specops" / "cache" / "OWNER").write_text("0" * 64)  # a guessed marker

    d = paths.repo_cache_dir(repo)
    assert not planted.exists()
    assert (d / "OWNER").read_bytes() != b"0" * 64

    resolved = analyze(repo)
    compile_repo(resolved, cache_dir=d)
    written = sorted(p.relative_to(d) for p in d.rglob("*") if p.is_file())
    assert len(written) > 1
    _forget(monkeypatch)  # a later process, same user: the cache is its own and stays
    paths.repo_cache_dir(repo)
    assert sorted(p.relative_to(d) for p in d.rglob("*") if p.is_file()) == written


def test_another_users_key_does_not_trust_it(tmp_path, fresh_key, monkeypatch):
    repo = tmp_path / "repo"
    (repo / ".specops").mkdir(parents=True)
    d = paths.repo_cache_dir(repo)
    (d / "parse.marshal").write_bytes(b"x")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "other-user"))
    monkeypatch.setattr(paths, "_KEY", None)
    _forget(monkeypatch)
    paths.repo_cache_dir(repo)
    assert not (d / "parse.marshal").exists()


def test_a_symlinked_cache_is_removed_not_followed(tmp_path, fresh_key):
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "keep.txt").write_text("not specops's")
    repo = tmp_path / "repo"
    (repo / ".specops").mkdir(parents=True)
    (repo / ".specops" / "cache").symlink_to(outside)
    d = paths.repo_cache_dir(repo)
    assert d.is_dir() and not d.is_symlink()
    assert (outside / "keep.txt").read_text() == "not specops's"
