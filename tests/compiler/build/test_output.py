"""Writing the build tree (build/output.py): a fresh build directory is written whole and
renamed into place; an existing one file by file, unchanged files left alone."""

from __future__ import annotations

import hashlib
import json
import os

from specops.build.output import stale_files, write_build


def _files() -> dict[str, bytes]:
    arts = {f"dev/kfp/m{i}/pipeline.yaml": f"name: m{i}\n".encode() for i in range(5)}
    arts["dev/serving/s/vllm.yaml"] = b"model: x\n"
    manifest = {"artifacts": [{"path": p, "sha256": hashlib.sha256(d).hexdigest()} for p, d in sorted(arts.items())]}
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




def _no_reads(monkeypatch):
    from specops.build import output

    def refuse(path, data):
        raise AssertionError(f"read {path} although the tree record says it is current")

    monkeypatch.setattr(output, "_same", refuse)


def test_the_tree_record_spares_reading_a_current_build_folder(tmp_path, monkeypatch):
    """With a tree record, a folder that holds this build already is judged by stat: no file
    is read back (a no-op compile at 1,000 specs read 2,289 of them)."""
    out, record = tmp_path / "build", tmp_path / "cache" / "tree.json"
    files = _files()
    assert write_build(files, out, record) == (len(files), 0)
    _no_reads(monkeypatch)
    assert write_build(files, out, record) == (0, 0)
    assert write_build(files, out, record) == (0, 0)


def test_the_tree_record_sees_edits_that_keep_size_and_mtime(tmp_path):
    """A build file rewritten in place at the same size with its mtime set back (`touch -d`,
    rsync -t) has a new ctime: rewritten. A deleted one is written again; another build (a
    different manifest) is compared file by file."""
    out, record = tmp_path / "build", tmp_path / "cache" / "tree.json"
    files = _files()
    write_build(files, out, record)
    f = out / "dev" / "kfp" / "m2" / "pipeline.yaml"
    st = f.stat()
    f.write_bytes(b"name: XX\n")  # same size
    os.utime(f, ns=(st.st_atime_ns, st.st_mtime_ns))
    assert f.stat().st_size == st.st_size and f.stat().st_mtime_ns == st.st_mtime_ns
    assert write_build(files, out, record) == (1, 0)
    assert f.read_bytes() == files["dev/kfp/m2/pipeline.yaml"]
    f.unlink()
    assert write_build(files, out, record) == (1, 0)
    other = {**files, "dev/serving/s/vllm.yaml": b"model: y\n"}
    other["manifest.json"] = files["manifest.json"] + b" "
    assert write_build(other, out, record) == (2, 0)
    assert write_build(files, out, record) == (2, 0)


def test_a_file_changed_in_the_records_clock_tick_is_compared_by_content(tmp_path, monkeypatch):
    """Racily clean, as in git: a file whose ctime is not older than the record could have
    changed within the clock tick after its stat was taken, so its bytes are checked (against
    the manifest's sha256) even when its stat is exactly as recorded."""
    out, record = tmp_path / "build", tmp_path / "cache" / "tree.json"
    files = _files()
    write_build(files, out, record)
    # The edit lands after the stat, in the record's tick: the record shows the new stat.
    f = out / "dev" / "kfp" / "m1" / "pipeline.yaml"
    f.write_bytes(b"name: XX\n")
    head, shas = record.read_bytes().split(b"\n")
    rec = json.loads(head)
    st = f.stat()
    rec["files"]["dev/kfp/m1/pipeline.yaml"] = [st.st_size, st.st_mtime_ns, st.st_ctime_ns, st.st_ino]
    record.write_bytes(json.dumps(rec).encode() + b"\n" + shas)
    os.utime(record, ns=(st.st_ctime_ns, st.st_ctime_ns))
    assert write_build(files, out, record) == (1, 0)
    assert f.read_bytes() == b"name: m1\n"
    # An unchanged racy file passes the content check, and the refreshed record trusts it.
    os.utime(record, ns=(0, 0))
    assert write_build(files, out, record) == (0, 0)
    _no_reads(monkeypatch)
    assert json.loads(record.read_bytes().split(b"\n")[0])["manifest"] == hashlib.sha256(files["manifest.json"]).hexdigest()
    assert write_build(files, out, record) == (0, 0)


def test_another_build_reads_only_the_files_whose_sha_changed(tmp_path, monkeypatch):
    """Writing a build over another (an edit): a file whose recorded sha256 is the new one's
    and whose stat is as recorded is not read; the changed one and the manifest are, and a
    file edited behind the record's back (same size, mtime set back) is still rewritten."""
    from specops.build import output

    out, record = tmp_path / "build", tmp_path / "cache" / "tree.json"
    files = _files()
    write_build(files, out, record)
    future = 4_000_000_000 * 10**9
    os.utime(record, ns=(future, future))  # every file older than the record: trusted by stat
    edited = out / "dev" / "kfp" / "m3" / "pipeline.yaml"
    st = edited.stat()
    edited.write_bytes(b"name: XX\n")
    os.utime(edited, ns=(st.st_atime_ns, st.st_mtime_ns))
    other = {**files, "dev/kfp/m1/pipeline.yaml": b"name: changed\n"}
    other["manifest.json"] = files["manifest.json"] + b" "
    reads: list[str] = []
    real = output._same
    monkeypatch.setattr(output, "_same", lambda p, d: reads.append(os.path.relpath(p, out)) or real(p, d))
    shas = {rel: hashlib.sha256(d).hexdigest() for rel, d in other.items()}
    assert write_build(other, out, record, shas) == (3, 0)
    assert sorted(reads) == ["dev/kfp/m1/pipeline.yaml", "dev/kfp/m3/pipeline.yaml", "manifest.json"]
    assert all((out / rel).read_bytes() == data for rel, data in other.items())
