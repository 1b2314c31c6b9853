"""The validate cache (build/checkcache.py) on a real scaled repo with the real checks: after
every step of random edit sequences (spec edits that add and remove errors, renames, removals,
additions, a data file created where an error said it was missing, a model config.json
edited, an ignore file, touches), `specops validate` with the cache prints exactly what a run
without it prints, text and JSON; and an unchanged repo is answered without loading."""

from __future__ import annotations

import os
import random
import shutil
from pathlib import Path

import pytest
from click.testing import CliRunner

import specops.frontend.loader
from specops.build import checkcache
from specops.cli import main
from tests.compiler.build.repo_edits import (
    add_remove,
    move,
    remove_restore,
    rewrite_keeping_stat,
    safetensors_header,
    scaled_repo,
    toggle,
)


@pytest.fixture(scope="module")
def scaled(tmp_path_factory) -> Path:
    return scaled_repo(tmp_path_factory.mktemp("scaled") / "repo")


def run(*args: str) -> tuple[int, str]:
    r = CliRunner().invoke(main, list(args), catch_exceptions=False)
    return r.exit_code, r.output


def cold(repo: Path, *args: str) -> tuple[int, str]:
    shutil.rmtree(repo / ".specops" / "cache", ignore_errors=True)  # the parse memo too
    return run("validate", *args, str(repo))


class Clock:
    """mtimes far in the past and strictly increasing: an edit always moves the mtime, as a
    real later edit does, so the stat-first path is exercised with RACY_NS = 0."""

    def __init__(self, repo: Path):
        self.t = 1_600_000_000 * 10**9
        for p in repo.rglob("*"):
            self.stamp(p)

    def stamp(self, p: Path) -> None:
        self.t += 10**9
        os.utime(p, ns=(self.t, self.t), follow_symlinks=False)


def ops(repo: Path, clock: Clock) -> dict:
    c = lambda i, rel: repo / f"team{i}" / f"copy{i}" / rel  # noqa: E731
    stash = repo.parent / "stash"
    t = clock.stamp
    prompt = c(1, "prompts/triage.yaml").read_text().replace("ticket-triage-1", "ticket-triage-extra")
    return {
        "model-error": lambda: toggle(c(0, "models/support-llm.yaml"), "epochs: 2", "epochs: -1", t),
        "prompt-var": lambda: toggle(c(1, "prompts/support-reply.yaml"), "{{ product }}", "{{ produt }}", t),
        "override": lambda: toggle(c(2, "serving/support-llm.yaml"), "max-model-len: 32768",
                                   "max-model-len: 999999", t),
        "rename": lambda: move(c(0, "gates/quality.yaml"), c(0, "gates/quality-renamed.yaml"), t),
        "remove-prompt": lambda: remove_restore(c(2, "prompts/support-reply.yaml"), stash, t),
        "add-spec": lambda: add_remove(repo / "extra" / "prompt.yaml", prompt, t),
        "missing-data": lambda: toggle(c(1, "datasets/tickets.yaml"), "file://data/tickets.jsonl",
                                       "file://data/new.jsonl", t),
        "create-data": lambda: add_remove(repo / "data" / "new.jsonl", (repo / "data" / "tickets.jsonl").read_text(), t),
        "model-config": lambda: toggle(repo / "models" / "llama-3.1-8b" / "config.json",
                                       '"num_hidden_layers": 32', '"num_hidden_layers": 320', t),
        "ignore": lambda: add_remove(repo / ".specopsignore", "team2/\n", t),
        "touch": lambda: t(c(0, "prompts/support-reply.yaml")),
    }


@pytest.mark.parametrize("seed", [1, 2])
def test_random_edit_sequences_match_a_cold_run(scaled, tmp_path, monkeypatch, seed):
    repo = tmp_path / "repo"
    shutil.copytree(scaled, repo)
    (repo / "extra").mkdir()
    clock = Clock(repo)
    monkeypatch.setattr(checkcache, "RACY_NS", 0)
    steps = ops(repo, clock)
    names = sorted(steps)
    rng = random.Random(seed)
    hits = 0
    loads = []
    real_load = specops.frontend.loader.load
    monkeypatch.setattr(specops.frontend.loader, "load", lambda *a, **k: loads.append(1) or real_load(*a, **k))
    for i in range(12):
        step = rng.choice(names)
        steps[step]()
        args = ("--json",) if i % 3 == 2 else ()
        before = len(loads)
        cached = run("validate", *args, str(repo))
        hits += len(loads) == before
        assert cached == cold(repo, *args), f"step {i}: {step}"
    assert len(loads) >= 12  # every cold run loaded; a touch alone may be a hit
    # Unchanged since the cold run: answered from the record, without loading.
    before = len(loads)
    code, out = run("validate", str(repo))
    assert len(loads) == before and (code, out) == cold(repo)


def test_unchanged_repo_is_a_hit_and_every_kind_of_input_misses(scaled, tmp_path, monkeypatch):
    repo = tmp_path / "repo"
    shutil.copytree(scaled, repo)
    clock = Clock(repo)
    monkeypatch.setattr(checkcache, "RACY_NS", 0)
    first = cold(repo)
    assert first[0] == 0
    hit = checkcache.lookup(repo)
    assert hit is not None and hit.specs == 22 and hit.envs == ["dev", "prod", "staging"]
    # --env is its own record
    assert checkcache.lookup(repo, ["prod"]) is None
    steps = ops(repo, clock)
    for name in ("model-error", "missing-data", "create-data", "model-config", "ignore", "rename"):
        steps[name]()
        assert checkcache.lookup(repo) is None, name
        run("validate", str(repo))  # stores the new state
        assert checkcache.lookup(repo) is not None, name
    # A touch moves the mtime, not the bytes: hashed again, still a hit.
    steps["touch"]()
    assert checkcache.lookup(repo) is not None


def test_racy_files_are_hashed_not_trusted(scaled, tmp_path):
    """A same-size edit that keeps the mtime (one clock tick) is still seen while the file is
    younger than the record by less than RACY_NS."""
    repo = tmp_path / "repo"
    shutil.copytree(scaled, repo)
    p = repo / "team0" / "copy0" / "models" / "support-llm.yaml"
    os.utime(p)  # written just now, as an editor saving it right before validate
    assert cold(repo)[0] == 0
    st = p.stat()
    p.write_text(p.read_text().replace("epochs: 2", "epochs: 3"))
    os.utime(p, ns=(st.st_atime_ns, st.st_mtime_ns))
    assert p.stat().st_size == st.st_size
    assert checkcache.lookup(repo) is None



def test_a_weights_header_rewritten_at_the_same_size_and_mtime_misses(scaled, tmp_path, monkeypatch):
    """Capacity counts parameters from the safetensors headers beside config.json: the record
    keeps their digest, so a header rewritten without moving the file's size or mtime (rsync
    -t, a tar extract) is seen, and validate says what a cold run says."""
    repo = tmp_path / "repo"
    shutil.copytree(scaled, repo)
    st = repo / "models" / "llama-3.1-8b" / "model.safetensors"
    safetensors_header(st, 8_030_261_248)
    Clock(repo)
    monkeypatch.setattr(checkcache, "RACY_NS", 0)
    assert cold(repo)[0] == 0 and checkcache.lookup(repo) is not None
    # 400B parameters cannot fit the serving targets' GPUs: validate must now fail
    rewrite_keeping_stat(st, lambda p: safetensors_header(p, 400_000_000_000))
    assert checkcache.lookup(repo) is None
    warm = run("validate", str(repo))
    assert warm == cold(repo) and warm[0] == 1, warm[1][-400:]

def test_cache_is_bounded(scaled, tmp_path):
    repo = tmp_path / "repo"
    shutil.copytree(scaled, repo)
    for env in ("dev", "prod", "staging"):
        for extra in ((), ("--env", "dev"), ("--env", "prod"), ("--env", "staging")):
            run("validate", "--env", env, *extra, str(repo))
    run("validate", str(repo))
    assert len(list((repo / ".specops" / "cache" / "check").glob("*.json"))) <= checkcache.KEEP
