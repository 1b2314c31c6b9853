"""Writing the build tree (build/output.py): a fresh build directory is written whole and
renamed into place; an existing one file by file, unchanged files left alone."""

from __future__ import annotations

import json
import os

from specops.build.output import stale_files, write_build


def _files() -> dict[str, bytes]:
    arts = {f"dev/kfp/m{i}/pipeline.yaml": f"name: m{i}\n".encode() for i in range(5)}
    arts["dev/serving/s/vllm.yaml"] = b"model: x\n"
    manifest = {"artifacts": [{"path": p} for p in sorted(arts)]}
    return {**arts, "manifest.json": json.dumps(manifest).encode()}


def test_a_fresh_build_directory_is_written_whole(tmp_path):
    out = tmp_path / "nested" / "build"
    files = _files()
    assert write_build(files, out) == (len(files), 0)
    assert {str(p.relative_to(out)) for p in out.rglob("*") if p.is_file()} == set(files)
    assert all((out / rel).read_bytes() == data for rel, data in files.items())
    assert [p.name for p in out.parent.iterdir()] == ["build"]  # no temp folder left behind
    assert stale_files(files, out) == []
    assert write_build(files, out) == (0, 0)


def test_an_existing_build_directory_is_updated_in_place(tmp_path):
    out = tmp_path / "build"
    files = _files()
    write_build(files, out)
    keep = out / "dev" / "kfp" / "m0" / "pipeline.yaml"
    before = keep.stat().st_mtime_ns
    (out / "notes.txt").write_text("mine\n")  # not the compiler's: left alone
    gone = "dev/kfp/m4/pipeline.yaml"
    smaller = {k: v for k, v in files.items() if k != gone}
    smaller["manifest.json"] = json.dumps({"artifacts": [{"path": p} for p in sorted(smaller) if p != "manifest.json"]}).encode()
    smaller["dev/kfp/m1/pipeline.yaml"] = b"name: changed\n"
    assert write_build(smaller, out) == (2, 1)
    assert not (out / gone).exists() and (out / "notes.txt").exists()
    assert keep.stat().st_mtime_ns == before
    assert os.listdir(out / "dev" / "kfp" / "m1") == ["pipeline.yaml"]


