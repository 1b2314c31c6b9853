"""The incremental compile cache (compiler/cache.py): real repos (the examples, a generated
benchmark repo), the real compiler; a hit is proven by making the full compile path raise."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from specops.build import cache
from specops.build import compile as build_mod
from specops.build.compile import compile_repo
from specops.build.manifest import Build
from specops.checks import analyze
from specops.cli import main
from specops.diagnostics import Diagnostics
from specops.frontend.loader import discover
from tests.compiler.build.repo_edits import rewrite_keeping_stat, safetensors_header

ROOT = Path(__file__).resolve().parents[3]
EXAMPLES = ROOT / "examples"


def copy_example(tmp: Path, name: str) -> Path:
    dst = tmp / name
    shutil.copytree(EXAMPLES / name, dst, ignore=shutil.ignore_patterns("build", ".specops", "__pycache__"))
    return dst


def no_full_compile(*a, **k):
    raise AssertionError("the full compile ran although the inputs were unchanged")


@pytest.fixture(scope="module")
def bench_repo(tmp_path_factory):
    out = tmp_path_factory.mktemp("bench") / "repo"
    subprocess.run([sys.executable, str(ROOT / "benchmarks" / "gen_repo.py"), str(out), "--specs", "200"],
                   check=True, capture_output=True)
    return out


def test_fast_discovery_matches_the_loader(tmp_path, bench_repo):
    for root in (copy_example(tmp_path, "support-assistant"), copy_example(tmp_path, "churn"), bench_repo):
        (root / ".specopsignore").write_text("datasets/group3\n")
        assert cache.discover(root) == discover(root, Diagnostics())
        (root / ".specopsignore").unlink()
        assert cache.discover(root) == discover(root, Diagnostics())


def test_cached_build_is_byte_identical_and_skips_the_compile(tmp_path, monkeypatch):
    root = copy_example(tmp_path, "support-assistant")
    resolved = analyze(root)
    plain = compile_repo(resolved, cache_dir=None).files()
    cdir = cache.cache_dir_of(root)
    first = compile_repo(resolved, cache_dir=cdir).files()
    assert first == plain
    assert list((cdir / "builds").glob("pack-*.bin"))
    monkeypatch.setattr(build_mod, "_compile_repo", no_full_compile)
    again = compile_repo(analyze(root), cache_dir=cdir)
    assert again.files() == plain
    fast = cache.fast_compile(root)
    assert fast is not None and Build.from_record(fast.cached.index, fast.cached.blob).files() == plain


def test_warnings_survive_the_cache(tmp_path):
    root = copy_example(tmp_path, "support-assistant")
    cdir = cache.cache_dir_of(root)
    r = analyze(root)
    fresh = compile_repo(r, cache_dir=None).diagnostics.sorted()
    compile_repo(r, cache_dir=cdir)
    hit = compile_repo(r, cache_dir=cdir).diagnostics.sorted()
    assert hit == fresh


def test_any_input_change_misses(tmp_path, monkeypatch):
    root = copy_example(tmp_path, "support-assistant")
    cdir = cache.cache_dir_of(root)
    base = compile_repo(analyze(root), cache_dir=cdir).files()
    assert cache.fast_compile(root) is not None
    # a spec edit
    f = root / "datasets" / "tickets.yaml"
    orig = f.read_text()
    f.write_text(orig.replace("rowCount, min: 20", "rowCount, min: 21"))
    assert cache.fast_compile(root) is None
    changed = compile_repo(analyze(root), cache_dir=cdir).files()
    assert changed != base and changed == compile_repo(analyze(root), cache_dir=None).files()
    f.write_text(orig)
    assert cache.fast_compile(root) is not None  # back to the first build's inputs: a hit
    # a comment-only edit still misses the whole-repo key (bytes changed) but gives the same output
    f.write_text("# a comment\n" + orig)
    assert cache.fast_compile(root) is None
    assert compile_repo(analyze(root), cache_dir=cdir).files() == base
    f.write_text(orig)
    # a non-YAML input that the compile reads (the model's config.json for capacity)
    cfg = root / "models" / "llama-3.1-8b" / "config.json"
    cfg_orig = cfg.read_text()
    cfg.write_text(cfg_orig.replace('"num_hidden_layers": 32', '"num_hidden_layers": 16'))
    assert cfg.read_text() != cfg_orig
    assert cache.fast_compile(root) is None
    assert compile_repo(analyze(root), cache_dir=cdir).files() != base
    cfg.write_text(cfg_orig)
    # a new YAML file, and the environments asked for (the cache keeps about twice the build
    # output: after three other builds the first may have been pruned, so compile it again)
    assert compile_repo(analyze(root), cache_dir=cdir).files() == base
    assert cache.fast_compile(root) is not None
    (root / "extra.yaml").write_text("# empty\n")
    assert cache.fast_compile(root) is None
    (root / "extra.yaml").unlink()
    assert cache.fast_compile(root, ["dev"]) is None
    # the specops code itself
    monkeypatch.setattr(cache, "_CODE_FP", "0" * 64)
    assert cache.fast_compile(root) is None



def test_a_weights_header_change_misses_even_at_the_same_size_and_mtime(tmp_path):
    """Capacity counts parameters from the safetensors headers beside config.json, so the cache
    probes them by content: a header rewritten at the same size and mtime (rsync -t, a tar
    extract) misses, and the build equals an uncached one."""
    root = copy_example(tmp_path, "support-assistant")
    st = root / "models" / "llama-3.1-8b" / "model.safetensors"
    safetensors_header(st, 8_030_261_248)
    cdir = cache.cache_dir_of(root)
    base = compile_repo(analyze(root), cache_dir=cdir).files()
    assert cache.fast_compile(root) is not None
    rewrite_keeping_stat(st, lambda p: safetensors_header(p, 3_212_749_824))  # a 3B model now
    assert cache.fast_compile(root) is None
    after = compile_repo(analyze(root), cache_dir=cdir).files()
    report = "staging/serving/support-llm/capacity.json"
    assert json.loads(after[report]) != json.loads(base[report])
    assert after == compile_repo(analyze(root), cache_dir=None).files()

def test_errors_are_never_cached(tmp_path):
    root = copy_example(tmp_path, "support-assistant")
    f = root / "serving" / "support-llm.yaml"
    f.write_text(f.read_text().replace("max-model-len: 4096", "max-model: 4096"))
    r = analyze(root)
    compile_repo(r, cache_dir=cache.cache_dir_of(root))
    assert cache.fast_compile(root) is None


def test_cli_compile_and_check_use_the_cache(tmp_path, monkeypatch):
    root = copy_example(tmp_path, "churn")
    runner = CliRunner()
    r = runner.invoke(main, ["compile", str(root)])
    assert r.exit_code == 0, r.output
    monkeypatch.setattr(build_mod, "_compile_repo", no_full_compile)
    r = runner.invoke(main, ["compile", str(root), "--check"])
    assert r.exit_code == 0, r.output
    # a hand edit in the build directory is caught by --check, even on a cache hit
    out = next((root / "build").rglob("run.yaml"))
    out.write_text(out.read_text() + "# edited\n")
    r = runner.invoke(main, ["compile", str(root), "--check"])
    assert r.exit_code == 1 and "differs" in r.output
    # and the in-process no-op path writes back exactly the cached bytes
    assert build_mod.noop_compile(root) == (1, 0)
    assert build_mod.noop_compile(root) == (0, 0)
    r = runner.invoke(main, ["compile", str(root), "--check"])
    assert r.exit_code == 0, r.output


def test_a_no_op_compile_with_a_current_build_folder_reads_no_artifact(tmp_path, monkeypatch):
    """The no-op CLI compile judges the build folder by its tree record (output.py): the
    pack's artifact index is not parsed and no build is made of it; a build file edited in
    place at the same size, its mtime set back, is still written again."""
    import os

    root = copy_example(tmp_path, "churn")
    runner = CliRunner()
    assert runner.invoke(main, ["compile", str(root)]).exit_code == 0
    monkeypatch.setattr(build_mod, "_compile_repo", no_full_compile)

    def no_build(*a, **k):
        raise AssertionError("the pack's artifacts were read although the build folder is current")

    with monkeypatch.context() as m:
        m.setattr(Build, "from_record", no_build)
        r = runner.invoke(main, ["compile", str(root)])
        assert r.exit_code == 0 and "(0 written, 0 removed)" in r.output, r.output
        r = runner.invoke(main, ["compile", str(root), "--check"])
        assert r.exit_code == 0 and "up to date" in r.output, r.output
    out = next((root / "build").rglob("run.yaml"))
    data, st = out.read_bytes(), out.stat()
    out.write_bytes(data.replace(b"a", b"b", 1))
    os.utime(out, ns=(st.st_atime_ns, st.st_mtime_ns))
    r = runner.invoke(main, ["compile", str(root), "--check"])
    assert r.exit_code == 1 and "differs" in r.output, r.output
    r = runner.invoke(main, ["compile", str(root)])
    assert r.exit_code == 0 and "(1 written, 0 removed)" in r.output, r.output
    assert out.read_bytes() == data


def test_corrupt_cache_is_a_miss(tmp_path):
    root = copy_example(tmp_path, "churn")
    cdir = cache.cache_dir_of(root)
    want = compile_repo(analyze(root), cache_dir=cdir).files()
    for p in (cdir / "builds").glob("pack-*.bin"):
        p.write_bytes(b"garbage")
    assert cache.fast_compile(root) is None
    assert compile_repo(analyze(root), cache_dir=cdir).files() == want


def test_a_pack_with_a_damaged_artifact_index_is_a_miss(tmp_path):
    """The no-op reads a pack's head alone; its artifact index is read only when a build is
    made of it. A pack whose head is whole but whose index is not is compiled past, not a crash."""
    root = copy_example(tmp_path, "churn")
    runner = CliRunner()
    assert runner.invoke(main, ["compile", str(root)]).exit_code == 0
    want = {p.relative_to(root / "build"): p.read_bytes() for p in (root / "build").rglob("*") if p.is_file()}
    shutil.rmtree(root / "build")
    pack = next((cache.cache_dir_of(root) / "builds").glob("pack-*.bin"))
    raw = bytearray(pack.read_bytes())
    start = raw.index(b"\n") + 1
    raw[start:start + 16] = b"\xff" * 16  # not marshal
    pack.write_bytes(bytes(raw))
    assert cache.fast_compile(root) is not None  # the head is whole
    r = runner.invoke(main, ["compile", str(root)])
    assert r.exit_code == 0, r.output
    assert {p.relative_to(root / "build"): p.read_bytes() for p in (root / "build").rglob("*") if p.is_file()} == want


def _age(root: Path, seconds: int = 60) -> None:
    """Every YAML file's mtime moved `seconds` into the past (outside the racy window)."""
    import os
    import time

    t = time.time() - seconds
    for p in root.rglob("*.yaml"):
        os.utime(p, (t, t))


def test_the_no_op_path_trusts_size_and_mtime_not_bytes(tmp_path, monkeypatch):
    """fast_compile stats the inputs first (like the validate cache): unchanged files are not
    read again; a same-size edit moves the mtime and is seen; a file whose mtime is too recent
    to trust (racily clean) is hashed even when size and mtime look unchanged."""
    import os

    root = copy_example(tmp_path, "support-assistant")
    _age(root)
    cdir = cache.cache_dir_of(root)
    compile_repo(analyze(root), cache_dir=cdir)
    assert cache.fast_compile(root) is not None  # hashes every file once, records their stats
    reads: list[str] = []
    real = cache.read_regular
    monkeypatch.setattr(cache, "read_regular", lambda p, n: reads.append(str(p)) or real(p, n))
    assert cache.fast_compile(root) is not None
    assert not [r for r in reads if r.endswith(".yaml")]
    # a 10,000-spec repo's record is over 1 MiB: still read (it once was refused, so every
    # file was hashed again on every no-op)
    import json

    rec_path = cdir / "builds" / cache.STAT_RECORD
    rec = json.loads(rec_path.read_bytes())
    rec["files"].update({f"pad/{i}.yaml": [1, 1, "0" * 64] for i in range(12_000)})
    rec_path.write_bytes(json.dumps(rec).encode())
    assert rec_path.stat().st_size > 1 << 20
    assert cache.fast_compile(root) is not None
    assert not [r for r in reads if r.endswith(".yaml")]
    f = root / "datasets" / "tickets.yaml"
    orig = f.read_text()
    f.write_text(orig.replace("rowCount, min: 20", "rowCount, min: 21"))  # same size, new mtime
    assert cache.fast_compile(root) is None
    st = f.stat()
    f.write_text(orig.replace("rowCount, min: 20", "rowCount, min: 22"))
    os.utime(f, ns=(st.st_atime_ns, st.st_mtime_ns))  # same size and mtime as recorded, but racy
    assert cache.fast_compile(root) is None
    f.write_text(orig)
    assert cache.fast_compile(root) is not None


def test_packs_are_streamed_and_read_back_lazily(tmp_path):
    root = copy_example(tmp_path, "support-assistant")
    cdir = cache.cache_dir_of(root)
    build = compile_repo(analyze(root), cache_dir=cdir)
    view = cache.latest_view(cdir)
    rec = cache.latest(cdir)
    assert view is not None and rec is not None and view.index == rec.index
    for a in view.index["artifacts"]:
        assert view.read(a["offset"], a["size"]) == build.artifacts[a["path"]].data
    off, size = view.index["manifest"]
    assert view.read(off, size) == build.files()["manifest.json"]


def test_default_ignores_match_as_fnmatch_does():
    """paths._default_ignored compiles DEFAULT_IGNORES into one regex; it must say what
    fnmatch says of each name (the last component of a path)."""
    import fnmatch

    from specops.paths import DEFAULT_IGNORES, _default_ignored

    names = [".git", ".gitx", "git", ".specops", "build", "builds", "xbuild", "node_modules", ".venv", ".venv-dbt",
             "venv", ".x", "a.b", "team0", "build/", "x/build", "x/.venv2/", "x\nbuild", "build\n", "a/.b", "Build"]
    for n in names:
        name = n.rstrip("/").rsplit("/", 1)[-1]
        assert _default_ignored(n) == any(fnmatch.fnmatchcase(name, p) for p in DEFAULT_IGNORES), n


def test_the_code_fingerprint_covers_the_whole_package():
    """A change to lowering, the checks or the loader changes what a compile emits: the cache
    keys must see it, not only the build stage and the backends."""
    import os

    import specops.backends.kfp
    import specops.checks.serving
    import specops.frontend.loader
    import specops.ir.lower

    hashed = {os.path.realpath(p) for _, p in cache.code_files()}
    for mod in (specops.ir.lower, specops.checks.serving, specops.frontend.loader, cache, specops.backends.kfp):
        assert os.path.realpath(mod.__file__) in hashed, mod.__name__


def test_a_cache_hit_reads_artifacts_from_the_pack_when_asked(tmp_path):
    """The no-op path leaves the pack's bytes in its file: the build it returns reads each
    artifact when asked for, the same bytes as the build that was stored."""
    from specops.build.manifest import PackedArtifact

    root = copy_example(tmp_path, "support-assistant")
    stored = compile_repo(analyze(root), cache_dir=cache.cache_dir_of(root)).files()
    fast = cache.fast_compile(root)
    assert fast is not None and isinstance(fast.cached.blob, cache.PackBlob)
    build = Build.from_record(fast.cached.index, fast.cached.blob)
    assert all(isinstance(a, PackedArtifact) for a in build.artifacts.values())
    assert build.files() == dict(build.lazy_files()) == stored


def _trust_the_stat_record(cdir: Path) -> None:
    """The inputs' stat record made as if long after every folder and file last changed (the
    racy window is 2 s: a test cannot wait for it)."""
    import time

    rec_path = cdir / "builds" / cache.STAT_RECORD
    rec = json.loads(rec_path.read_bytes())
    rec["stored_ns"] = time.time_ns() + 10 * cache.RACY_NS
    rec_path.write_bytes(json.dumps(rec).encode())


def test_the_no_op_path_skips_discovery_while_no_folder_changed(tmp_path, monkeypatch):
    """The stat record keeps every folder discovery listed (inode and ctime): while none
    changed the recorded files are the inputs and no folder is walked; a file added to any
    of them (even one that is not YAML) changes its folder, and discovery runs again."""
    root = copy_example(tmp_path, "support-assistant")
    cdir = cache.cache_dir_of(root)
    compile_repo(analyze(root), cache_dir=cdir)
    assert cache.fast_compile(root) is not None
    _trust_the_stat_record(cdir)
    walks: list[Path] = []
    real = cache.discover_traced
    monkeypatch.setattr(cache, "discover_traced", lambda r: walks.append(r) or real(r))
    assert cache.fast_compile(root) is not None
    assert walks == []
    # The repo folder is judged by its listing: a build folder appearing (a cold compile
    # makes one) is no reason to walk, a YAML file beside specops.yaml is.
    (root / "build").mkdir()
    assert cache.fast_compile(root) is not None
    assert walks == []
    (root / "top.yaml").write_text("# empty\n")
    assert cache.fast_compile(root) is None
    assert len(walks) == 1
    (root / "top.yaml").unlink()
    walks.clear()
    _trust_the_stat_record(cdir)
    (root / "serving" / "notes.txt").write_text("not a spec\n")
    assert cache.fast_compile(root) is not None  # walked again, the same inputs
    assert len(walks) == 1
    _trust_the_stat_record(cdir)
    (root / "serving" / "extra.yaml").write_text("# empty\n")
    assert cache.fast_compile(root) is None
    assert len(walks) == 2
    (root / "serving" / "extra.yaml").unlink()
    _trust_the_stat_record(cdir)
    sub = root / "serving" / "more"
    sub.mkdir()
    _trust_the_stat_record(cdir)
    assert cache.fast_compile(root) is not None and len(walks) == 3
    _trust_the_stat_record(cdir)
    (sub / "late.yaml").write_text("# empty\n")  # in a folder that did not exist before
    assert cache.fast_compile(root) is None and len(walks) == 4
    (sub / "late.yaml").unlink()
    # A symlink's target can change with no folder changing: such a repo is always walked.
    (root / "link").symlink_to(root / "serving")
    assert cache.fast_compile(root) is not None
    _trust_the_stat_record(cdir)
    assert json.loads((cdir / "builds" / cache.STAT_RECORD).read_bytes())["dirs"] is None
    n = len(walks)
    assert cache.fast_compile(root) is not None and len(walks) == n + 1


def test_the_code_fingerprint_is_recorded_by_stat(tmp_path, monkeypatch):
    """code_fingerprint reads the last run's record (the user's cache) while no file or folder
    of the package changed, and computes it again, from the bytes, when one did."""
    import os
    import time

    code = tmp_path / "pkg"
    (code / "sub").mkdir(parents=True)
    (code / "a.py").write_text("A = 1\n")
    (code / "sub" / "b.py").write_text("B = 2\n")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "usercache"))
    monkeypatch.setattr(cache, "_code_roots", lambda: [str(code)])
    monkeypatch.setattr(cache, "_CODE_FP", None)
    first = cache.code_fingerprint()
    record = next((tmp_path / "usercache" / "specops").glob("code-*.json"))
    rec = json.loads(record.read_bytes())
    rec["stored_ns"] = time.time_ns() + 10 * cache.RACY_NS
    record.write_bytes(json.dumps(rec).encode())
    monkeypatch.setattr(cache, "_CODE_FP", None)
    real = cache._code_tree
    monkeypatch.setattr(cache, "_code_tree", lambda roots: pytest.fail("walked although nothing changed"))
    assert cache.code_fingerprint() == first
    monkeypatch.setattr(cache, "_code_tree", real)
    st = (code / "sub" / "b.py").stat()
    (code / "sub" / "b.py").write_text("B = 3\n")  # same size, mtime set back: the ctime moved
    os.utime(code / "sub" / "b.py", ns=(st.st_atime_ns, st.st_mtime_ns))
    monkeypatch.setattr(cache, "_CODE_FP", None)
    second = cache.code_fingerprint()
    assert second != first
    (code / "sub" / "c.py").write_text("")
    monkeypatch.setattr(cache, "_CODE_FP", None)
    assert cache.code_fingerprint() not in (first, second)



def test_a_path_a_spec_names_that_appears_later_misses(tmp_path):
    """A string in a spec that names no repo path yet (here the example's Hub model id) is a
    probe too, recorded as missing: a folder of that name created later could change what
    the compile reads, so the fast path must not replay the build made without it."""
    root = copy_example(tmp_path, "support-assistant")
    hub = "meta-llama/Llama-3.1-8B-Instruct"
    assert f"model: {hub}" in (root / "models" / "support-llm.yaml").read_text()
    cdir = cache.cache_dir_of(root)
    compile_repo(analyze(root), cache_dir=cdir)
    assert cache.fast_compile(root) is not None
    (root / hub).mkdir(parents=True)
    assert cache.fast_compile(root) is None
    assert compile_repo(analyze(root), cache_dir=cdir).files() == compile_repo(analyze(root), cache_dir=None).files()
    assert cache.fast_compile(root) is not None  # the new state is recorded in turn
    (root / hub).rmdir()  # back to the first state: its build, recorded under it, answers
    hit = cache.fast_compile(root)
    assert hit is not None and Build.from_record(hit.cached.index, hit.cached.blob).files() == compile_repo(
        analyze(root), cache_dir=None).files()
