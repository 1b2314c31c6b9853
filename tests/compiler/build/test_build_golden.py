"""Golden output trees: both examples compiled for every environment and backend.

`tests/golden/<example>/` holds the whole expected build tree (manifest included). The test
fails on a changed, a missing or an extra file. Regenerate only on purpose, then review the
git diff like any other change:

    python -m pytest tests/compiler/build/test_build_golden.py --force-regen
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from specops.build.compile import compile_repo
from specops.checks import analyze

ROOT = Path(__file__).resolve().parents[3]
GOLDEN = ROOT / "tests" / "golden"
EXAMPLES = ["churn", "support-assistant"]


def build_files(name: str, tmp_path: Path) -> dict[str, bytes]:
    resolved = analyze(ROOT / "examples" / name)
    assert not resolved.diagnostics.has_errors
    build = compile_repo(resolved, cache_dir=tmp_path / "cache")
    assert not build.diagnostics.has_errors, [d.headline() for d in build.diagnostics.sorted()]
    return build.files()


@pytest.mark.parametrize("name", EXAMPLES)
def test_compiled_tree_matches_golden(name: str, tmp_path: Path, request: pytest.FixtureRequest) -> None:
    files = build_files(name, tmp_path)
    golden = GOLDEN / name
    if request.config.getoption("force_regen", default=False):
        shutil.rmtree(golden, ignore_errors=True)
        for rel, data in files.items():
            (golden / rel).parent.mkdir(parents=True, exist_ok=True)
            (golden / rel).write_bytes(data)
        pytest.fail(f"regenerated {golden}; review `git diff {golden.relative_to(ROOT)}` and run again")
    expected = {p.relative_to(golden).as_posix(): p.read_bytes() for p in golden.rglob("*") if p.is_file()}
    assert sorted(set(files) - set(expected)) == [], "files produced but not in the golden tree"
    assert sorted(set(expected) - set(files)) == [], "golden files no longer produced"
    changed = [rel for rel in sorted(files) if files[rel] != expected[rel]]
    assert changed == [], f"files differ from the golden tree: {changed}"


def test_every_backend_is_covered() -> None:
    paths = {p.relative_to(GOLDEN).as_posix() for p in GOLDEN.rglob("*") if p.is_file()}
    for name in EXAMPLES:
        for backend in ("dev/zenml", "staging/kfp", "prod/sagemaker"):
            assert any(p.startswith(f"{name}/{backend}/") for p in paths), (name, backend)
    assert any(p.endswith("staging/serving/support-llm/inferenceservice.yaml") for p in paths)
    assert any(p.endswith("prod/serving/support-llm/endpoint.json") for p in paths)


def test_emit_cache_gives_the_same_bytes_and_moving_lines_changes_nothing(tmp_path: Path, monkeypatch) -> None:
    """A second compile reads every pipeline back from the emission cache (the last build's
    pack); the bytes are the golden ones. Comments that move every spec down a line change no
    artifact (artifacts never carry line numbers, which is what lets the cache key ignore
    them), so every emission of the second compile is a hit."""
    repo = tmp_path / "churn"
    shutil.copytree(ROOT / "examples" / "churn", repo, ignore=shutil.ignore_patterns("build", ".specops"))
    cache = tmp_path / "cache"
    golden = GOLDEN / "churn"
    expected = {p.relative_to(golden).as_posix(): p.read_bytes() for p in golden.rglob("*") if p.is_file()}
    from specops.build import compile as build_mod
    from specops.backends.registry import pipeline_backend
    from specops.build.cache import latest

    first = build_mod.compile_repo(analyze(repo), cache_dir=cache).files()
    assert len(latest(cache).index["emit"]) >= 3
    for f in repo.rglob("*.yaml"):
        f.write_text("# moved down\n\n" + f.read_text())

    def no_emit(*a, **k):
        raise AssertionError("emitted again although the IR is unchanged")

    monkeypatch.setattr(build_mod, "serving_outputs", no_emit)
    for name in ("kfp", "sagemaker", "zenml"):
        monkeypatch.setattr(pipeline_backend(name), "emit", no_emit)
    second = build_mod.compile_repo(analyze(repo), cache_dir=cache).files()
    assert first == second == expected
