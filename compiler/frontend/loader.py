"""Find a spec repo, read every YAML document in it, validate each against its kind's model.

The loader collects every problem instead of stopping at the first one. A file that cannot be
parsed contributes one diagnostic and no documents; a document that fails its model
contributes its diagnostics and is left out of resolution, so one bad file does not hide the
problems of the others.
"""

from __future__ import annotations

import hashlib
import marshal
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from specops.diagnostics import Diagnostics, Pos
from specops.frontend import yamlio
from specops.frontend.validation import validate_document
from specops.frontend.yamlio import MAX_FILE_BYTES, YamlDoc, parse
from specops.fsio import ReadRefused, read_regular, write_atomic
from specops.paths import PROJECT_FILE, find_root  # noqa: F401 (re-exported)
from specops.specs import KINDS
from specops.paths import discover as _discover
from specops.paths import repo_cache_dir


@dataclass(slots=True)
class Spec:
    """One validated document: the raw YAML (with positions) and its pydantic model."""

    kind: str
    name: str
    doc: YamlDoc
    model: Any  # the envelope model instance (apiVersion/kind/metadata/spec/overrides)

    @property
    def file(self) -> str:
        return self.doc.file

    @property
    def key(self) -> str:
        return f"{self.kind}/{self.name}"


@dataclass
class Repo:
    root: Path
    specs: list[Spec] = field(default_factory=list)
    diagnostics: Diagnostics = field(default_factory=Diagnostics)
    # repo-relative path -> raw bytes of every YAML file read (hashing, diff, cache keys)
    files: dict[str, bytes] = field(default_factory=dict)
    # "Kind/name" of documents that exist but failed validation: references to them are
    # not reported again as unresolved (one mistake, one error).
    invalid: set[str] = field(default_factory=set)
    # Names seen in files that did not parse at all, for the same reason.
    unparsed_names: set[str] = field(default_factory=set)
    # The YAML files discovery listed (sorted), when it met no problem: the validate record
    # keeps this list instead of walking the repo again.
    discovered: list[str] | None = None

    def project(self) -> Spec | None:
        projects = [s for s in self.specs if s.kind == "Project"]
        for s in projects:
            if s.file == PROJECT_FILE:
                return s
        return projects[0] if projects else None

    def of_kind(self, kind: str) -> list[Spec]:
        return [s for s in self.specs if s.kind == kind]


def discover(root: Path, diags: Diagnostics) -> list[str]:
    """The YAML files to read (see paths.discover); its problems become diagnostics."""
    files, problems = _discover(root)
    for rel, code, message in problems:
        diags.error(code, message, rel)
    return files


def load(path: Path | str = ".", parse_memo: bool = False) -> Repo:
    """Load and validate every spec under the repo containing `path`. With `parse_memo`
    (validate and compile, which keep caches under .specops/ anyway), files unchanged since
    the last such load are not parsed again (ParseMemo); other commands write nothing."""
    start = Path(path)
    root = find_root(start)
    if root is None:
        repo = Repo(root=start.resolve())
        repo.diagnostics.error("no-project", f"no {PROJECT_FILE} found at or above '{start}'; "
                               f"run `specops init {start}` to create one")
        return repo
    repo = Repo(root=root)
    memo = ParseMemo(root) if parse_memo else None
    found = discover(root, repo.diagnostics)
    repo.discovered = found if not repo.diagnostics.items else None
    base = f"{root}/"  # joined as text: a Path per file cost ~10 us each (0.1 s at 10,000 specs)
    for rel in found:
        try:
            raw = read_regular(base + rel, MAX_FILE_BYTES)
        except ReadRefused as e:
            repo.diagnostics.error("yaml-too-large" if e.too_large else "file-type", str(e), rel, Pos(1, 1))
            continue
        except OSError as e:
            repo.diagnostics.error("file-read", f"cannot read file: {e.strerror or e}", rel, Pos(1, 1))
            continue
        repo.files[rel] = raw
        load_bytes(repo, rel, raw, memo)
    if memo is not None:
        memo.save()
    _check_project(repo)
    return repo


# What the parse memo's entries depend on: this package's YAML reader and libyaml.
_MEMO_KEY = hashlib.sha256(Path(yamlio.__file__).read_bytes() + f"{yaml.__version__}".encode()).digest()
_MEMO_MAX_BYTES = 256 << 20


class ParseMemo:
    """Each YAML file's parsed data by the sha256 of its bytes, from the last load of the repo
    (`<root>/.specops/cache/parse.marshal`, one file written once per load, and only when a
    file changed): an edit re-parses only the files it touched, like mypy's cache. Parsing is
    most of loading a repo (~0.3 s of CPU at 1,000 specs); reading the memo ~0.02 s. Only
    files that parsed cleanly on the fast path are kept; their positions are computed from
    the bytes on demand, as after a fresh parse. marshal, not pickle: plain data only."""

    def __init__(self, root: Path):
        self.path = repo_cache_dir(root) / "parse.marshal"
        self.old: dict[bytes, list] = {}
        self.new: dict[bytes, list] = {}
        try:
            rec = marshal.loads(read_regular(self.path, _MEMO_MAX_BYTES))
            if isinstance(rec, dict) and rec.get("key") == _MEMO_KEY and isinstance(rec.get("entries"), dict):
                self.old = rec["entries"]
        except (OSError, ReadRefused, ValueError, EOFError, TypeError):
            pass

    def parse(self, raw: bytes, rel: str) -> tuple[list[YamlDoc], list[Any]]:
        k = hashlib.sha256(raw).digest()
        datas = self.old.get(k)
        if isinstance(datas, list):
            # Two files with the same bytes get their own objects, as two parses would.
            fresh = marshal.loads(marshal.dumps(datas)) if k in self.new else datas
            self.new[k] = datas
            return yamlio.from_datas(raw, rel, fresh), []
        docs, diags = parse(raw, rel)
        if not diags and (datas := yamlio.fast_datas(docs)) is not None:
            self.new[k] = datas
        return docs, diags

    def save(self) -> None:
        if self.new.keys() == self.old.keys():
            return
        try:
            write_atomic(self.path, marshal.dumps({"key": _MEMO_KEY, "entries": self.new}))
        except (OSError, ValueError):
            pass  # only slower next time (a read-only checkout, a value marshal cannot hold)


_NAME_RX = re.compile(rb"\bname:\s*['\"]?([a-z0-9][-a-z0-9]*)")


def load_bytes(repo: Repo, rel: str, raw: bytes, memo: "ParseMemo | None" = None) -> None:
    docs, diags = memo.parse(raw, rel) if memo is not None else parse(raw, rel)
    repo.diagnostics.extend(diags)
    if diags:
        repo.unparsed_names.update(m.decode() for m in _NAME_RX.findall(raw))
    for doc in docs:
        if doc.data is None:  # an empty document (`---` alone) is allowed
            continue
        spec_model, dd = validate_document(doc)
        repo.diagnostics.extend(dd)
        if spec_model is not None:
            repo.specs.append(Spec(spec_model.kind, spec_model.metadata.name, doc, spec_model))
        else:
            mark_invalid(repo, doc.data, raw)


def mark_invalid(repo: Repo, data: Any, raw: bytes = b"") -> None:
    """Remember the name of a document that failed validation, so that references to it are
    not reported again as unresolved (one mistake, one error)."""
    name = data["metadata"].get("name") if isinstance(data, dict) and isinstance(data.get("metadata"), dict) else None
    if not isinstance(name, str):
        # No readable name (a list, a scalar, a broken envelope): any name in the file.
        repo.unparsed_names.update(m.decode() for m in _NAME_RX.findall(raw))
    elif data.get("kind") in KINDS:
        repo.invalid.add(f"{data['kind']}/{name}")
    else:  # an unknown kind (a typo): the reference may be to any kind
        repo.unparsed_names.add(name)


def _check_project(repo: Repo) -> None:
    projects = repo.of_kind("Project")
    if not projects and not any(d.code == "no-project" for d in repo.diagnostics.items):
        # The file exists (find_root saw it) but holds no valid Project document.
        if not any(d.file == PROJECT_FILE for d in repo.diagnostics.items):
            repo.diagnostics.error("no-project", f"{PROJECT_FILE} holds no `kind: Project` document",
                                   PROJECT_FILE, Pos(1, 1))
    for p in projects:
        if p.file != PROJECT_FILE:
            repo.diagnostics.error("envelope", f"the Project belongs in {PROJECT_FILE} at the repository root",
                                   p.file, p.doc.start)
