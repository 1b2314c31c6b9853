"""The build as data: compiled artifacts, and the manifest that lists them.

Standard library only: the no-op compile path reads a build back from the cache without
importing the loader. `manifest.json` (schemaVersion 1) lists every artifact's sha256, size,
environment, backend, producing spec, source file and the spec keys it depends on; `diff`
and `plan` read it, so its field names and values are a public format.
"""

from __future__ import annotations

import hashlib
import itertools
import json
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from specops import __version__
from specops.diagnostics import Diagnostic, Diagnostics
from specops.fsio import FileSlice

MANIFEST_SCHEMA_VERSION = 1
MANIFEST = "manifest.json"

# What an artifact is part of: a pipeline's files, a serving target's deployment files, or a
# file that stands beside a serving target without being deployed (its vLLM config, which
# the deployment files embed, and its capacity report).
ArtifactRole = Literal["pipeline", "serving", "serving-config", "report", "monitor"]


@dataclass
class Artifact:
    path: str  # under the build directory: <env>/<backend or "serving">/<resource>/<file>
    data: bytes
    env: str
    # kfp | sagemaker | zenml | vllm | capacity | <serving platform's ARTIFACT_BACKEND>
    backend: str
    spec: str  # "Kind/name" that produced it
    source: dict[str, Any]  # {file}: the spec's file (lines are for diagnostics only)
    depends_on: list[str]  # spec keys whose change can change this artifact
    role: ArtifactRole = "pipeline"
    resource: str = ""  # the pipeline's or serving target's name
    file: str = ""  # the path inside the resource's folder ("definition.json", "params/train.json")
    # The bytes' sha256 (hex) once known: the manifest's hash of them, or the pack's record
    # of a replayed artifact (so an edit does not read and hash 155 MB again at 10,000 specs).
    sha: str = field(default="", compare=False, repr=False)
    # Its manifest entry as the last build rendered it (an artifact replayed unchanged from
    # the last pack, by the same code): used as it is, not rendered again.
    line: str = field(default="", compare=False, repr=False)

    def to_index(self) -> dict[str, Any]:
        """Every field but the bytes, for the cache index."""
        return {"path": self.path, "env": self.env, "backend": self.backend, "spec": self.spec,
                "source": self.source, "dependsOn": list(self.depends_on), "role": self.role,
                "resource": self.resource, "file": self.file}


class PackedArtifact(Artifact):
    """An artifact replayed from the last stored build: its bytes stay in that pack and are
    read (pread) each time they are asked for, so a compile that reuses most of the last
    build does not hold it in memory (155 MB at 10,000 specs) beside the new one."""

    def __init__(self, read: Callable[[], bytes], size: int, where: tuple[Any, int] | None = None,
                 **fields: Any) -> None:
        # `where`: (the open file, offset) its bytes are at, so a new pack copies them file to
        # file (fsio.FileSlice) instead of reading them into memory.
        self._read, self.size, self.where = read, size, where
        super().__init__(data=b"", **fields)

    @property  # type: ignore[override]
    def data(self) -> bytes:
        return self._read()

    @data.setter
    def data(self, value: bytes) -> None:  # the dataclass __init__ sets it: the pack holds it
        pass


def _size(a: Artifact) -> int:
    return a.size if isinstance(a, PackedArtifact) else len(a.data)


def sha_of(a: Artifact) -> str:
    """The artifact's sha256 (hex), computed once."""
    if not a.sha:
        a.sha = hashlib.sha256(a.data).hexdigest()
    return a.sha


class _Files(Mapping):
    """Build.files() without holding every artifact's bytes at once: each is read when asked."""

    def __init__(self, build: Build):
        self._arts = dict(sorted(build.artifacts.items()))
        self._manifest = build.manifest or manifest_bytes(build)

    def __getitem__(self, rel: str) -> bytes:
        return self._manifest if rel == MANIFEST else self._arts[rel].data

    def __iter__(self) -> Iterator[str]:
        yield from self._arts
        yield MANIFEST

    def __len__(self) -> int:
        return len(self._arts) + 1


@dataclass
class Build:
    artifacts: dict[str, Artifact] = field(default_factory=dict)
    diagnostics: Diagnostics = field(default_factory=Diagnostics)
    # "Kind/name" (or "Project") -> {file, document, digest} of every spec compiled
    specs: dict[str, Any] = field(default_factory=dict)
    # A build read from the cache carries its manifest, so no artifact is hashed again;
    # cleared whenever an artifact is added.
    manifest: bytes | None = None

    def add(self, a: Artifact) -> None:
        self.artifacts[a.path] = a
        self.manifest = None

    def files(self) -> dict[str, bytes]:
        out = {p: a.data for p, a in sorted(self.artifacts.items())}
        out[MANIFEST] = self.manifest or manifest_bytes(self)
        return out

    def lazy_files(self) -> Mapping[str, bytes]:
        """files() as a mapping that reads each artifact's bytes when asked for (writing the
        build tree: one at a time)."""
        return _Files(self)

    def shas(self) -> dict[str, str]:
        """Every file's sha256 (hex), the manifest's included: what write_build compares with
        the build folder's record instead of reading the files."""
        out = {p: sha_of(a) for p, a in self.artifacts.items()}
        out[MANIFEST] = hashlib.sha256(self.manifest or manifest_bytes(self)).hexdigest()
        return out

    def of_env(self, env: str) -> list[Artifact]:
        return [a for _, a in sorted(self.artifacts.items()) if a.env == env]

    # ---- the cache's record of a build (plain data: see build/cache.py) ----

    def to_record(self) -> tuple[dict[str, Any], Iterator[bytes]]:
        """(index, chunks): every artifact's fields with its byte range in the blob that the
        chunks make end to end, the manifest's range, the specs index and the diagnostics.
        The chunks are yielded one by one, each artifact's own bytes, never joined (a
        10,000-spec build is ~155 MB); the blob's size is the manifest's end."""
        arts = []
        order = [a for _, a in sorted(self.artifacts.items())]
        off = 0
        for a in order:
            size = _size(a)
            arts.append({**a.to_index(), "offset": off, "size": size, "sha256": sha_of(a)})
            off += size
        manifest = manifest_bytes(self)
        index = {"artifacts": arts, "specs": self.specs, "manifest": [off, len(manifest)],
                 "manifestSha": hashlib.sha256(manifest).hexdigest(), "artifactCount": len(arts),
                 "diagnostics": [_diag_to_json(d) for d in self.diagnostics.sorted()]}
        self.manifest = manifest  # files() needs it too: not hashed twice
        return index, itertools.chain((FileSlice(*a.where, a.size) if getattr(a, "where", None) else a.data
                                       for a in order), (manifest,))

    @classmethod
    def from_record(cls, index: dict[str, Any], blob: Any) -> "Build":
        b = cls(diagnostics=record_diagnostics(index), specs=index["specs"])
        read_range = getattr(blob, "read_range", None)  # a pack left in its file (cache.PackBlob)
        for a in index["artifacts"]:
            if read_range is not None:
                b.artifacts[a["path"]] = PackedArtifact(
                    lambda off=a["offset"], size=a["size"]: read_range(off, size), a["size"], path=a["path"],
                    env=a["env"], backend=a["backend"], spec=a["spec"], source=a["source"],
                    depends_on=list(a["dependsOn"]), role=a["role"], resource=a["resource"], file=a["file"],
                    sha=a["sha256"])
                continue
            b.artifacts[a["path"]] = Artifact(
                a["path"], blob[a["offset"]:a["offset"] + a["size"]], a["env"], a["backend"], a["spec"],
                a["source"], list(a["dependsOn"]), a["role"], a["resource"], a["file"], a["sha256"])
        off, size = index["manifest"]
        b.manifest = blob[off:off + size]  # set after the artifacts: add() would clear it
        return b


def record_diagnostics(index: dict[str, Any]) -> Diagnostics:
    """The diagnostics of a stored build (its record's index, or the head of its pack)."""
    return Diagnostics([_diag_from_json(j) for j in index["diagnostics"]])


def _diag_to_json(d: Diagnostic) -> dict:
    pos = None if d.pos is None else [d.pos.line, d.pos.col, d.pos.end_line, d.pos.end_col]
    return {"severity": d.severity, "code": d.code, "message": d.message, "file": d.file,
            "pos": pos, "notes": list(d.notes)}


def _diag_from_json(j: dict) -> Diagnostic:
    # Stored after redaction (Diagnostic.__post_init__): set as they were, like the validate
    # cache's rows, not processed again (the regexes cost ~0.1 s per 3,000 warnings).
    pos = j["pos"] if j.get("pos") else [None] * 4
    return Diagnostic.from_row([j["severity"], j["code"], j["message"], j.get("file"), *pos, j.get("notes", ())])


def spec_digest(data: Any) -> str:
    return hashlib.sha256(json.dumps(data, sort_keys=True, separators=(",", ":"),
                                     ensure_ascii=False, default=str).encode()).hexdigest()


def manifest_bytes(build: Build) -> bytes:
    arts = _Rendered()
    for p, a in sorted(build.artifacts.items()):
        arts.append(a.line or _one({"path": p, "sha256": sha_of(a), "bytes": _size(a), "env": a.env,
                                    "backend": a.backend, "spec": a.spec, "source": a.source,
                                    "dependsOn": sorted(a.depends_on)}))
    return _manifest_json({"schemaVersion": MANIFEST_SCHEMA_VERSION, "generator": f"specops {__version__}",
                           "artifacts": arts, "specs": build.specs})


class _Rendered(list):
    """A list whose items are JSON text already (manifest entries)."""


def _one(v: Any) -> str:
    return json.dumps(v, sort_keys=True, ensure_ascii=False, separators=(", ", ": "))


def manifest_lines(manifest: bytes, n: int) -> list[str] | None:
    """The `n` artifact entries of a manifest made by manifest_bytes, as rendered (in path
    order), or None when it is not laid out so."""
    lines = manifest.decode().split("\n")  # JSON escapes newlines in strings; U+2028 stays in its line
    if len(lines) < n + 3 or lines[1] != '  "artifacts": [' or not lines[n + 2].startswith("  ]"):
        return None
    out = [line[4:].removesuffix(",") for line in lines[2:n + 2]]
    return out if all(x.startswith("{") for x in out) else None


def _manifest_json(doc: dict[str, Any]) -> bytes:
    """JSON with one artifact (one spec) per line: diff-friendly like indented JSON, but
    written by the C encoder (indent=2 falls back to pure Python: ~0.2 s on 2,000 artifacts)."""
    one = _one
    lines = ["{"]
    keys = sorted(doc)
    for i, k in enumerate(keys):
        v = doc[k]
        end = "," if i < len(keys) - 1 else ""
        if isinstance(v, list) and v:
            lines.append(f"  {one(k)}: [")
            item = str if isinstance(v, _Rendered) else one
            lines.extend(f"    {item(x)}{',' if j < len(v) - 1 else ''}" for j, x in enumerate(v))
            lines.append(f"  ]{end}")
        elif isinstance(v, dict) and v:
            lines.append(f"  {one(k)}: {{")
            items = sorted(v.items())
            lines.extend(f"    {one(ik)}: {one(iv)}{',' if j < len(items) - 1 else ''}" for j, (ik, iv) in enumerate(items))
            lines.append(f"  }}{end}")
        else:
            lines.append(f"  {one(k)}: {one(v)}{end}")
    lines.append("}")
    return ("\n".join(lines) + "\n").encode()
