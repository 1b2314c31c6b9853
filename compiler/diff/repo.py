"""`specops diff`: compile a git ref and the working tree, and compare what they produce.

The base is read straight from git's object store (`git ls-tree` + `git cat-file --batch`)
into a temporary folder: the user's working tree, index and worktree list are never touched,
and `.gitattributes` (export-ignore, export-subst) cannot change what is compared. The head is
the working tree as it is, uncommitted edits included. PATH may be a spec repo anywhere inside
a larger git repository.

Both sides are loaded, resolved and compiled for the same environments; their manifests are
compared per environment, backend and resource (the spec that produced the artifacts).
Changed artifacts get a structural diff (YAML and JSON are parsed: `dag.tasks.train.inputs`
old -> new, never whitespace), other files a unified text diff. Each change is traced to the
spec edits that caused it through the manifest's `dependsOn` lists and per-environment spec
digests; spec edits that change no artifact (a prompt nothing consumes yet) are listed too.

The result is a plain dict, versioned by DIFF_SCHEMA_VERSION (the `--format json` output);
diff_render.py turns it into text or a markdown PR comment.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import tempfile
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from specops.build.cache import cache_dir_of
from specops.build.compile import compile_repo
from specops.checks import analyze
from specops.diagnostics import render_text, suggestion, summary
from specops.frontend.loader import find_root
from specops.resolve.graph import render_mermaid
from specops.structdiff import FieldDiff, parse_document, text_diff
from specops.structdiff import structural_diff as _structural_diff

DIFF_SCHEMA_VERSION = 1
MAX_CHANGES = 200  # field changes kept per artifact (the count of the rest is kept)


class DiffError(Exception):
    """A side failed to load or compile (or git failed). `rendered` holds the diagnostics as
    text, already rendered against that side's files (the base's temp copy is gone later)."""

    def __init__(self, message: str, side: str = "", diagnostics: list | None = None, rendered: str = ""):
        super().__init__(message)
        self.side = side
        self.diagnostics = diagnostics or []
        self.rendered = rendered

    def to_dict(self) -> dict:
        return {"message": str(self), "side": self.side,
                "diagnostics": [d.to_json() for d in self.diagnostics]}


@dataclass
class Side:
    label: str  # "base origin/main (1a2b3c4)" | "head (working tree)"
    resolved: Any | None  # None: the base has no spec repo at this path
    build: Any | None
    specs: dict[str, dict] = field(default_factory=dict)  # env -> {key: {"file", "digest"}}


# ---- git -----------------------------------------------------------------------------------


def _git(args: list[str], cwd: Path, stdin: bytes | None = None) -> bytes:
    try:
        p = subprocess.run(["git", *args], cwd=cwd, input=stdin, capture_output=True, check=False)
    except FileNotFoundError as e:
        raise DiffError("git is not installed (specops diff reads the base from git)") from e
    if p.returncode != 0:
        msg = p.stderr.decode("utf-8", "replace").strip().splitlines()
        raise DiffError(f"git {args[0]} failed: {msg[-1] if msg else f'exit {p.returncode}'}")
    return p.stdout


def git_location(root: Path) -> tuple[Path, str]:
    """(git top level, the spec root's path inside it, posix, '' for the top level)."""
    try:
        top = Path(_git(["rev-parse", "--show-toplevel"], root).decode().strip()).resolve()
    except DiffError as e:
        raise DiffError(f"{root} is not inside a git repository; specops diff compares a git ref with "
                        f"the working tree ({e})") from None
    rel = os.path.relpath(root.resolve(), top)
    return top, "" if rel == "." else Path(rel).as_posix()


def resolve_ref(top: Path, ref: str) -> str:
    if ref.startswith("-"):
        raise DiffError(f"invalid git ref '{ref}'")
    try:
        return _git(["rev-parse", "--verify", "--quiet", "--end-of-options", f"{ref}^{{commit}}"], top).decode().strip()
    except DiffError:
        raise DiffError(f"unknown git ref '{ref}' (fetch it first, e.g. `git fetch origin main`)") from None


def materialize(top: Path, commit: str, prefix: str, dest: Path) -> bool:
    """Write the tree of `commit` under `prefix` into `dest` (blobs and symlinks; submodules
    skipped). False when the commit has no specops.yaml there (no spec repo at the base)."""
    args = ["ls-tree", "-r", "-z", "--full-tree", commit]
    if prefix:
        args += ["--", prefix + "/"]
    entries = []
    for rec in _git(args, top).split(b"\0"):
        if not rec:
            continue
        meta, path = rec.split(b"\t", 1)
        mode, typ, sha = meta.decode().split()
        if typ != "blob":
            continue
        rel = path.decode("utf-8", "surrogateescape")
        if prefix:
            rel = rel[len(prefix) + 1:]
        parts = rel.split("/")
        if not rel or any(p in ("", ".", "..") for p in parts):  # git refuses these; belt and braces
            continue
        entries.append((mode, sha, rel))
    if not any(rel == "specops.yaml" for _, _, rel in entries):
        return False
    out = _git(["cat-file", "--batch"], top, stdin="".join(f"{sha}\n" for _, sha, _ in entries).encode())
    pos = 0
    for mode, sha, rel in entries:
        nl = out.index(b"\n", pos)
        size = int(out[pos:nl].split()[2])
        data = out[nl + 1:nl + 1 + size]
        pos = nl + 1 + size + 1
        target = dest / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        if mode == "120000":
            os.symlink(data.decode("utf-8", "surrogateescape"), target)
        else:
            target.write_bytes(data)
            if mode == "100755":
                target.chmod(0o755)
    return True


# ---- compiling one side --------------------------------------------------------------------


def _render_diags(items: list, root: Path | None, label: str) -> str:

    out = []
    for d in items:
        text = render_text([d], root)
        out.append(f"{label}: {text}" if text else "")
    return "".join(out) + f"{label}: {summary(items)}\n"


def compile_side(path: Path, envs: list[str] | None, cache_dir: Path | None, label: str, side: str) -> Side:

    resolved = analyze(path)
    if resolved.diagnostics.has_errors:
        items = resolved.diagnostics.sorted()
        raise DiffError(f"the {label} has invalid specs", side, items,
                        _render_diags(items, resolved.repo.root, label))
    use = [e for e in envs or resolved.envs if e in resolved.envs]
    build = compile_repo(resolved, sorted(use), cache_dir=cache_dir) if use else None
    if build is not None and build.diagnostics.has_errors:
        items = [d for d in build.diagnostics.sorted() if d.severity == "error"]
        raise DiffError(f"the {label} does not compile", side, items,
                        _render_diags(items, resolved.repo.root, label))
    s = Side(label, resolved, build)
    s.specs = spec_index(resolved, use)
    return s


def _digest(data: Any) -> str:
    return hashlib.sha256(json.dumps(data, sort_keys=True, separators=(",", ":"), ensure_ascii=False,
                                     default=str).encode()).hexdigest()


def spec_index(resolved: Any, envs: list[str]) -> dict[str, dict]:
    """env -> {spec key: {file, digest}} of each spec as it is in that environment: overrides
    applied, the `overrides` block itself left out (a prod override is no dev change)."""
    out: dict[str, dict] = {}
    project = resolved.repo.project()
    for env in envs:
        view = resolved.envs[env]
        idx = {}
        if project is not None:
            idx["Project"] = {"file": project.file, "digest": _digest(project.doc.data), "data": project.doc.data}
        for key, node in view.nodes.items():
            data = {k: v for k, v in node.doc.data.items() if k != "overrides"}
            idx[key] = {"file": node.file, "digest": _digest(data), "data": data}
        out[env] = idx
    return out


# ---- structural diff -------------------------------------------------------------------------


def _change(fd: FieldDiff) -> dict:
    """A structural change as the diff document has always written it (DIFF_SCHEMA_VERSION 1)."""
    out: dict[str, Any] = {"path": fd.path, "op": fd.op}
    if fd.op != "added":
        out["old"] = fd.before
    if fd.op != "removed":
        out["new"] = fd.after
    if fd.text:
        out["text"] = list(fd.text)
    return out


def structural_diff(old: Any, new: Any) -> list[dict]:
    return [_change(fd) for fd in _structural_diff(old, new)]


def artifact_diff(path: str, old: bytes | None, new: bytes | None) -> dict:
    status = "added" if old is None else "removed" if new is None else "changed"
    out: dict[str, Any] = {"path": path, "status": status}
    if status != "changed":
        return out
    k1, v1 = parse_document(path, old)  # type: ignore[arg-type]
    k2, v2 = parse_document(path, new)  # type: ignore[arg-type]
    if k1 == k2 != "text":
        changes = structural_diff(v1, v2)
        out["format"] = k1
        out["changes"] = changes[:MAX_CHANGES]
        if len(changes) > MAX_CHANGES:
            out["more"] = len(changes) - MAX_CHANGES
        if changes:
            return out
        # same data, different bytes (formatting only): say so with the text diff
    out["format"] = "text"
    out["text"] = text_diff(old.decode("utf-8", "replace"), new.decode("utf-8", "replace"), path)  # type: ignore[union-attr]
    return out


# ---- capacity ---------------------------------------------------------------------------------


def capacity_summary(data: bytes | None) -> dict | None:
    if data is None:
        return None
    try:
        d = json.loads(data)
        mem, kv, cost, settings = d["memory_per_gpu"], d["kv_cache"], d["cost"], d["settings"]
        return {"verdict": d["verdict"], "gpu": d["gpu"]["name"], "gpuCount": d["gpu"]["count"],
                "tensorParallelSize": settings["tensor_parallel_size"], "maxModelLen": settings["max_model_len"],
                "weightsGiB": mem["weights_gib"], "kvCacheGiB": mem["kv_cache_gib"],
                "maxSequences": kv["max_sequences_at_max_model_len"],
                "maxConcurrentSequences": kv["max_concurrent_sequences"], "usdPerHour": cost["usd_per_hour"]}
    except (ValueError, KeyError, TypeError):
        return None


# ---- the comparison ---------------------------------------------------------------------------


def _spec_changes(base: Side, head: Side, env: str) -> list[dict]:
    a, b = base.specs.get(env, {}), head.specs.get(env, {})
    out = []
    for key in sorted(set(a) | set(b)):
        if key not in a:
            out.append({"spec": key, "file": b[key]["file"], "status": "added"})
        elif key not in b:
            out.append({"spec": key, "file": a[key]["file"], "status": "removed"})
        elif a[key]["digest"] != b[key]["digest"]:
            changes = structural_diff(a[key]["data"], b[key]["data"])
            out.append({"spec": key, "file": b[key]["file"], "status": "changed", "changes": changes[:MAX_CHANGES]})
    return out


def compare(base: Side, head: Side, envs: list[str]) -> dict:
    """The diff document (DIFF_SCHEMA_VERSION). `envs`: the environments compared."""
    ba = base.build.artifacts if base.build is not None else {}
    ha = head.build.artifacts if head.build is not None else {}
    spec_changes = {env: _spec_changes(base, head, env) for env in envs}
    groups: dict[tuple, dict] = {}
    for path in sorted(set(ba) | set(ha)):
        a, b = ba.get(path), ha.get(path)
        if a is not None and b is not None and a.data == b.data:
            continue
        art = b or a
        if art.env not in envs:
            continue
        g = groups.setdefault((art.env, art.backend, art.spec), {
            "env": art.env, "backend": art.backend, "resource": art.spec, "artifacts": [], "deps": set()})
        g["deps"].update(a.depends_on if a else ())
        g["deps"].update(b.depends_on if b else ())
        g["artifacts"].append(artifact_diff(path, a.data if a else None, b.data if b else None))
    resources = []
    for (env, _, _), g in sorted(groups.items()):
        states = {x["status"] for x in g["artifacts"]}
        g["status"] = states.pop() if len(states) == 1 and states <= {"added", "removed"} else "changed"
        deps = g.pop("deps")
        g["causes"] = [{k: v for k, v in c.items() if k != "changes"} for c in spec_changes[env] if c["spec"] in deps]
        if not g["causes"]:
            g["causes"] = [{"spec": None, "file": None, "status": "generator",
                            "note": "no spec change: the specops version or a backend's output changed"}]
        resources.append(g)
    capacity = []
    for path in sorted(set(ba) | set(ha)):
        art = ha.get(path) or ba.get(path)
        if art.backend != "capacity" or art.env not in envs:
            continue
        before = capacity_summary(ba[path].data if path in ba else None)
        after = capacity_summary(ha[path].data if path in ha else None)
        if before != after:
            capacity.append({"env": art.env, "serving": art.resource, "path": path,
                             "before": before, "after": after})
    affected: dict[str, list[str]] = {}
    for env in envs:
        keys = {c["spec"] for c in spec_changes[env]} | {g["resource"] for g in resources if g["env"] == env}
        if keys:
            affected[env] = sorted(keys)
    summary = {"added": sum(g["status"] == "added" for g in resources),
               "removed": sum(g["status"] == "removed" for g in resources),
               "changed": sum(g["status"] == "changed" for g in resources),
               "artifacts": sum(len(g["artifacts"]) for g in resources),
               "specs": len({c["spec"] for cs in spec_changes.values() for c in cs})}
    changed = bool(resources or any(spec_changes.values()) or capacity)
    gates = {env: g for env in envs if (g := _gates_rerun(head, env, spec_changes[env]))}
    return {"schemaVersion": DIFF_SCHEMA_VERSION, "changed": changed, "environments": envs,
            "summary": summary, "specs": {e: c for e, c in spec_changes.items() if c},
            "resources": resources, "capacity": capacity, "affected": affected, "gates": gates}


def _gates_rerun(head: Side, env: str, changes: list[dict]) -> list[dict]:
    """The EvalGates whose verdict the change can move, so they run again before promotion:
    a gate whose own spec, prompt, dataset or model changed, with those specs as causes."""
    view = head.resolved.envs.get(env) if head.resolved is not None else None
    if view is None:
        return []
    changed = {c["spec"] for c in changes}
    out = []
    for g in view.of_kind("EvalGate"):
        s = g.spec
        prompt = view.get("Prompt", s.prompt) if s.prompt else None
        model = s.model or (prompt.spec.model if prompt is not None else None)
        keys = [f"EvalGate/{g.name}", f"Prompt/{s.prompt}" if s.prompt else None, f"Dataset/{s.dataset}",
                f"Model/{model}" if model else None]
        causes = [k for k in keys if k in changed]
        if causes:
            out.append({"gate": g.name, "causes": causes})
    return out


def lineage_mermaid(base: Side, head: Side, env: str, keys: list[str]) -> str | None:
    """Mermaid flowchart of the affected specs and their direct neighbours, changed ones
    highlighted (graph.render_mermaid over a filtered view of the head, plus removed nodes)."""

    views = [s.resolved.envs[env] for s in (head, base) if s.resolved is not None and env in s.resolved.envs]
    if not views:
        return None
    nodes: dict[str, Any] = {}
    edges: dict[tuple, Any] = {}
    for v in views:
        for k, n in v.nodes.items():
            nodes.setdefault(k, n)
        for e in v.edges:
            edges.setdefault((e.src, e.dst), e)
    wanted = {k for k in keys if k in nodes}
    if not wanted:
        return None
    shown = set(wanted)
    for (src, dst) in edges:
        if src in wanted or dst in wanted:
            shown.update((src, dst))
    view = replace(views[0], nodes={k: nodes[k] for k in sorted(shown)},
                   edges=[e for (s, d), e in sorted(edges.items()) if s in shown and d in shown])
    return render_mermaid(view, highlight=wanted)


def diff_repo(path: str | Path, base_ref: str, envs: list[str] | None = None) -> tuple[dict, dict[str, str]]:
    """Compile `base_ref` and the working tree at `path`; returns (diff document, mermaid per
    env). Raises DiffError (git failure, invalid specs on either side, unknown environment)."""

    start = Path(path)
    root = find_root(start)
    if root is None:
        raise DiffError(f"no specops.yaml found at or above '{start}'", "head")
    top, prefix = git_location(root)
    commit = resolve_ref(top, base_ref)
    label = f"base {base_ref} ({commit[:12]})"
    with tempfile.TemporaryDirectory(prefix="specops-diff-") as tmp:
        # The build cache is content-addressed, so both sides share it. It lives in the
        # repo's `.specops/` only where that folder already exists (compile made it, and it
        # is git-ignored); otherwise diff writes nothing into the working tree.
        cache_dir = cache_dir_of(root) if (root / ".specops").is_dir() else Path(tmp) / "cache"
        head = compile_side(root, envs, cache_dir, "head (working tree)", "head")
        base_root = Path(tmp) / "base"
        base_root.mkdir()
        if materialize(top, commit, prefix, base_root):
            base = compile_side(base_root, envs, cache_dir, label, "base")
        else:
            base = Side(label, None, None)
        all_envs = set(head.resolved.envs) | (set(base.resolved.envs) if base.resolved else set())
        for e in envs or ():
            if e not in all_envs:

                raise DiffError(f"unknown environment '{e}'" + suggestion(e, all_envs))
        use = sorted(envs or all_envs)
        doc = compare(base, head, use)
        doc["base"] = {"ref": base_ref, "commit": commit, "path": prefix or ".",
                       "specRepo": base.resolved is not None}
        doc["head"] = {"ref": "working tree", "path": prefix or "."}
        mermaid = {env: m for env, keys in doc["affected"].items()
                   if (m := lineage_mermaid(base, head, env, keys)) is not None}
    return doc, mermaid
