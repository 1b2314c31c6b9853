"""Incremental compile (the per-pipeline and per-serving emission caches under
.specops/cache/emit, the whole-build packs, the semantic checks' records in
.specops/cache/checks.json) against a compile without any cache, on a real scaled repo: after
every step of random edit sequences (adds, removals, renames, override changes, a model
config.json edit, a spec moved down a line, edits that make or clear check errors and
warnings) the artifacts are byte-identical and the diagnostics identical, the checks' and
the compile's, positions, messages and notes included."""

from __future__ import annotations

import random
import shutil
from pathlib import Path

import pytest

from specops.build import cache
from specops.build.checkrecords import records_of
from specops.build.compile import compile_repo
from specops.checks import analyze
from tests.compiler.build.repo_edits import add_remove, move, remove_restore, scaled_repo, toggle


@pytest.fixture(scope="module")
def scaled(tmp_path_factory) -> Path:
    return scaled_repo(tmp_path_factory.mktemp("scaled") / "repo")


def steps(repo: Path) -> dict:
    c = lambda i, rel: repo / f"team{i}" / f"copy{i}" / rel  # noqa: E731
    stash = repo.parent / "stash"
    serving = c(1, "serving/support-llm.yaml").read_text().replace("name: support-llm-1\n", "name: extra-serve\n", 1)
    return {
        "prompt": lambda: toggle(c(0, "prompts/support-reply.yaml"), "version: 4", "version: 5"),
        "override": lambda: toggle(c(1, "serving/support-llm.yaml"), "max-model-len: 32768", "max-model-len: 16384"),
        "accelerator": lambda: toggle(c(2, "serving/support-llm.yaml"), "accelerator: {type: L4, count: 1}",
                                      "accelerator: {type: L4, count: 2}"),
        "model-override": lambda: toggle(c(0, "models/support-llm.yaml"), "cpu: \"16\"", "cpu: \"32\""),
        "gate": lambda: toggle(c(1, "gates/quality.yaml"), '">= 0.42"', '">= 0.5"'),
        "rename": lambda: move(c(2, "gates/regression.yaml"), c(2, "gates/regression-renamed.yaml")),
        "remove-serving": lambda: remove_restore(c(0, "serving/support-llm.yaml"), stash),
        "add-serving": lambda: add_remove(repo / "extra" / "serve.yaml", serving),
        "shift": lambda: toggle(c(1, "serving/support-llm.yaml"), "apiVersion:", "# moved down a line\napiVersion:"),
        "model-config": lambda: toggle(repo / "models" / "llama-3.1-8b" / "config.json",
                                       '"num_key_value_heads": 8', '"num_key_value_heads": 4'),
        # A prompt renamed with the gate that names it (two files, one unit).
        "rename-prompt": lambda: [toggle(c(1, "prompts/support-reply.yaml"), "name: support-reply-1\n",
                                         "name: support-reply-1x\n"),
                                  toggle(c(1, "gates/quality.yaml"), "prompt: support-reply-1\n",
                                         "prompt: support-reply-1x\n")],
        # A judge links copy 0's gate to copy 2's model by name (no resolver edge): an edit of
        # that model's base path must reach copy 0's pipeline.
        "judge": lambda: toggle(c(0, "gates/quality.yaml"), "  judge: {model: support-llm-2}\n  blocks: [staging, prod]",
                                "  blocks: [staging, prod]"),
        "judge-model-path": lambda: toggle(c(2, "models/support-llm.yaml"), "path: models/llama-3.1-8b\n",
                                           "path: models/llama-alt\n"),
        # A whole copy of the example added and removed again (new units, then gone).
        "add-copy": lambda: add_remove_tree(c(0, ""), repo / "team9" / "copy9"),
        # Edits that change what the semantic checks report (errors stop before the compile).
        "template": lambda: toggle(c(0, "prompts/support-reply.yaml"), "{{ ticket_body }}", "{{ ticket_body }"),
        "gpu-count": lambda: toggle(c(2, "serving/support-llm.yaml"), "accelerator: {type: H100, count: 1}",
                                    "accelerator: {type: H100, count: 3}"),
        "threshold": lambda: toggle(c(1, "gates/quality.yaml"), '">= 0.8"', '">= 0.8x"'),
        "unresolved": lambda: toggle(c(2, "gates/quality.yaml"), "prompt: support-reply-2\n",
                                     "prompt: support-reply-zz\n"),
        "secret": lambda: toggle(c(1, "datasets/tickets.yaml"), "description: Resolved support tickets",
                                 "description: hf_AbCdEfGhIjKlMnOpQrStUvWxYz012345 tickets"),
        "rule": lambda: add_remove(repo / "rules" / "one-gpu.yaml", RULE),
        "data-file": lambda: toggle(repo / "data" / "extra.csv", "id,label\n", "id,labels\n"),
        "project": lambda: toggle(repo / "specops.yaml", "gpus: [L4]", "gpus: [A100]"),
    }


# A policy rule over every serving target (warnings: the compile goes on).
RULE = """apiVersion: specops.dev/v1alpha1
kind: Rule
metadata: {name: one-gpu}
spec:
  kinds: [ServingTarget]
  expression: gpus <= 1
  severity: warning
"""

# A Dataset whose CSV header validate reads ("data-file" edits the header).
CSV_DATASET = """apiVersion: specops.dev/v1alpha1
kind: Dataset
metadata: {name: extra-data}
spec:
  source: {uri: file://data/extra.csv, format: csv, version: v1}
  columns:
    - {name: id, type: int}
    - {name: label, type: string}
  splits: {train: 0.8, test: 0.2}
"""


NAMES = ("support-tickets", "support-llm", "support-reply", "ticket-triage", "support-quality",
         "support-no-regression")


def add_remove_tree(src: Path, dst: Path) -> None:
    """Copy 0's specs as copy 9 (every name suffixed -9), or remove that copy again."""
    if dst.exists():
        shutil.rmtree(dst)
        return
    for f in sorted(src.rglob("*.yaml")):
        text = f.read_text()
        for n in NAMES:
            text = text.replace(f"{n}-0", f"{n}-9")
        out = dst / f.relative_to(src)
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(text)


def second_model_folder(repo: Path) -> None:
    """models/llama-alt, named by copy 1's model from the start: switching copy 2's model to
    it ("judge-model-path") then changes no path the specs name, only which spec names it."""
    shutil.copytree(repo / "models" / "llama-3.1-8b", repo / "models" / "llama-alt")
    toggle(repo / "team1" / "copy1" / "models" / "support-llm.yaml", "path: models/llama-3.1-8b\n",
           "path: models/llama-alt\n")


def build_of(repo: Path, cache_dir: Path | None):
    """(artifacts, the compile's diagnostics, the checks' diagnostics); with errors, what
    `specops compile` reports before it stops: (None, None, the diagnostics)."""
    if cache_dir is None:  # the reference: nothing cached, the loader's parse memo included
        (cache.cache_dir_of(repo) / "parse.marshal").unlink(missing_ok=True)
        resolved = analyze(repo)
    else:
        resolved = analyze(repo, parse_memo=True, records=records_of)
    checked = [d.to_row() for d in resolved.diagnostics.sorted()]
    if resolved.diagnostics.has_errors:
        return None, None, checked
    b = compile_repo(resolved, cache_dir=cache_dir)
    return b.files(), [d.to_row() for d in b.diagnostics.sorted()], checked


@pytest.fixture()
def editable(scaled, tmp_path):
    """(repo, its cache folder, the named edits) on a fresh copy of the scaled repo."""
    repo = tmp_path / "repo"
    shutil.copytree(scaled, repo)
    second_model_folder(repo)
    (repo / "data" / "extra.csv").write_text("id,label\n1,a\n")
    (repo / "extra-data.yaml").write_text(CSV_DATASET)
    return repo, cache.cache_dir_of(repo), steps(repo)


@pytest.mark.parametrize("seed", [3, 4, 5])
def test_random_edit_sequences_compile_byte_identical(editable, seed):
    repo, cdir, ops = editable
    rng = random.Random(seed)
    assert build_of(repo, cdir) == build_of(repo, None)
    for i in range(16):
        name = rng.choice(sorted(ops))
        ops[name]()
        warm = build_of(repo, cdir)
        assert warm == build_of(repo, None), f"step {i}: {name}"
    # the last build's pack carries the emission index the next compile reads
    assert len(cache.latest(cdir).index["emit"]) > 10


@pytest.mark.parametrize("script", [
    ["judge", "judge-model-path", "judge"],  # a link no resolver edge carries
    ["add-copy", "rename-prompt", "add-copy", "rename-prompt"],
    ["remove-serving", "add-serving", "remove-serving", "override"],
    # Check errors and warnings that come and go with one spec, a data file, the Project.
    ["template", "template", "gpu-count", "rule", "accelerator", "gpu-count", "rule"],
    ["data-file", "project", "data-file", "project", "secret", "secret"],
    ["threshold", "unresolved", "threshold", "unresolved", "prompt"],
])
def test_scripted_edit_sequences_compile_byte_identical(editable, script):
    repo, cdir, ops = editable
    build_of(repo, cdir)
    for i, name in enumerate(script):
        ops[name]()
        assert build_of(repo, cdir) == build_of(repo, None), f"step {i}: {name}"


def test_moved_spec_moves_its_cached_serving_warnings(scaled, tmp_path):
    repo = tmp_path / "repo"
    shutil.copytree(scaled, repo)
    cdir = cache.cache_dir_of(repo)
    _, before, _ = build_of(repo, cdir)
    f = repo / "team0" / "copy0" / "serving" / "support-llm.yaml"
    f.write_text("# one\n# two\n" + f.read_text())
    files, after, _ = build_of(repo, cdir)
    assert (files, after) == build_of(repo, None)[:2]
    moved = [(a[4], b[4]) for a, b in zip(before, after) if a[3] == b[3] == "team0/copy0/serving/support-llm.yaml"]
    assert moved and all(b == a + 2 for a, b in moved)


def test_cache_stays_within_twice_the_build_output(scaled, tmp_path):
    repo = tmp_path / "repo"
    shutil.copytree(scaled, repo)
    cdir = cache.cache_dir_of(repo)
    p = repo / "team0" / "copy0" / "prompts" / "support-reply.yaml"
    for v in range(5, 15):  # ten different builds of the repo
        p.write_text(p.read_text().replace(f"version: {v - 1}", f"version: {v}"))
        files, _, _ = build_of(repo, cdir)
    build_bytes = sum(len(v) for v in files.values())
    on_disk = sum(f.stat().st_size for f in cdir.rglob("*") if f.is_file())
    assert on_disk <= 2 * build_bytes
    assert len(list((cdir / "builds").glob("pack-*"))) >= 2  # an older build is kept, compressed


def test_an_edit_lowers_only_the_unit_it_reaches(scaled, tmp_path, monkeypatch):
    """The dependency index (build/units.py): after one prompt edit, only the edited copy's
    model and serving target are lowered again, in each environment; the rest is replayed."""
    from specops.ir import lower

    repo = tmp_path / "repo"
    shutil.copytree(scaled, repo)
    cdir = cache.cache_dir_of(repo)
    build_of(repo, cdir)
    lowered: list[str] = []
    real_pipeline, real_serving = lower.lower_pipeline, lower.lower_serving
    monkeypatch.setattr(lower, "lower_pipeline", lambda r, v, m, memo=None: lowered.append(m.key) or
                        real_pipeline(r, v, m, memo))
    monkeypatch.setattr(lower, "lower_serving", lambda r, v, st: lowered.append(st.key) or real_serving(r, v, st))
    toggle(repo / "team1" / "copy1" / "prompts" / "support-reply.yaml", "version: 4", "version: 5")
    warm = build_of(repo, cdir)
    assert sorted(set(lowered)) == ["Model/support-llm-1", "ServingTarget/support-llm-1"]
    assert warm == build_of(repo, None)


def test_a_compile_with_a_cache_holds_no_artifact_bytes(scaled, tmp_path):
    """Peak memory: each environment's new artifacts are spilled to the cache's spool once
    compiled, and replayed ones stay in the last pack; both are read back when asked for,
    the same bytes as a compile without a cache."""
    from specops.build.manifest import PackedArtifact

    repo = tmp_path / "repo"
    shutil.copytree(scaled, repo)
    cdir = cache.cache_dir_of(repo)
    for edit in (False, True):
        if edit:
            toggle(repo / "team1" / "copy1" / "prompts" / "support-reply.yaml", "version: 4", "version: 5")
        build = compile_repo(analyze(repo, parse_memo=True), cache_dir=cdir)
        assert build.artifacts and all(isinstance(a, PackedArtifact) for a in build.artifacts.values())
        plain = compile_repo(analyze(repo), cache_dir=None).files()
        assert dict(build.lazy_files()) == build.files() == plain


def test_an_edit_rechecks_only_the_unit_it_reaches(scaled, tmp_path, monkeypatch):
    """The checks' records (build/checkrecords.py): after one prompt edit, only the nodes of
    the edited copy's unit are checked again; every other node's diagnostics are replayed."""
    from specops.checks import semantics

    repo = tmp_path / "repo"
    shutil.copytree(scaled, repo)
    cdir = cache.cache_dir_of(repo)
    build_of(repo, cdir)
    checked: list[str] = []
    for name in ("check_prompt", "check_gate", "check_dataset", "check_model", "check_serving"):
        real = getattr(semantics, name)
        # Every one takes (..., node, out).
        monkeypatch.setattr(semantics, name, lambda *a, real=real: checked.append(a[-2].key) or real(*a))
    toggle(repo / "team1" / "copy1" / "prompts" / "support-reply.yaml", "version: 4", "version: 5")
    warm = build_of(repo, cdir)
    assert sorted(set(checked)) == ["Dataset/support-tickets-1", "EvalGate/support-no-regression-1",
                                    "EvalGate/support-quality-1", "Model/support-llm-1", "Prompt/support-reply-1",
                                    "Prompt/ticket-triage-1", "ServingTarget/support-llm-1"]
    assert warm == build_of(repo, None)


def test_an_edit_digests_only_the_specs_of_the_edited_file(scaled, tmp_path, monkeypatch):
    """The specs index (manifest.json's `specs`) keeps the last build's entry of a spec whose
    file did not change, and a replayed artifact its manifest line: after one prompt edit,
    only that file's spec is digested again and only its unit's artifacts are rendered, and
    the manifest is the one a compile without cache makes."""
    from specops.build import compile as compile_mod
    from specops.build import manifest as manifest_mod

    repo = tmp_path / "repo"
    shutil.copytree(scaled, repo)
    cdir = cache.cache_dir_of(repo)
    build_of(repo, cdir)
    p = repo / "team0" / "copy0" / "prompts" / "support-reply.yaml"
    p.write_text(p.read_text().replace("version: 4", "version: 5", 1))
    digested: list = []
    real = compile_mod.spec_digest
    monkeypatch.setattr(compile_mod, "spec_digest", lambda data: digested.append(data) or real(data))
    rendered: list = []
    real_one = manifest_mod._one
    monkeypatch.setattr(manifest_mod, "_one", lambda v: rendered.append(v) or real_one(v))
    files, _, _ = build_of(repo, cdir)
    assert [d["metadata"]["name"] for d in digested] == ["support-reply-0"]
    # ...and only the re-emitted unit's artifacts are rendered into the manifest again.
    entries = [v["path"] for v in rendered if isinstance(v, dict) and "sha256" in v]
    assert entries and all("support-llm-0/" in p for p in entries), entries
    monkeypatch.setattr(compile_mod, "spec_digest", real)
    monkeypatch.setattr(manifest_mod, "_one", real_one)
    assert files["manifest.json"] == build_of(repo, None)[0]["manifest.json"]
