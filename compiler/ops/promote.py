"""`specops promote NAME --from staging --to prod`: the spec change that promotes a model, as a
commit on a new git branch, ready for a pull request.

The change pins, in the target environment's overrides of the Model's file, the exact version
the source environment serves (its alias in the MLflow registry), or the version `--version`
names (a monitor's retrain, registered with no alias), and that version's digest:

    overrides:
      prod:
        registry:
          pin: {version: 3, digest: "sha256:..."}

A pinned environment does not train: its pipeline fetches that version, refuses other bytes,
and re-runs its own gates on its own data (see ir.lower and runtime/fetch.py).

Promotion refuses, naming the gate, unless every EvalGate that blocks the source environment
for the model passed there for that version (its `specops.gates.<env>` record, written by the
register step). The branch is written with git's plumbing (a blob, a tree from a private index,
commit-tree, update-ref): the user's checkout, index and working tree are not touched.
"""

from __future__ import annotations

import io
import os
import subprocess
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from specops.backends.mlflow_provider import client_for
from specops.backends.provider import ProviderError
from specops.diagnostics import suggestion
from specops.ir.lower import gate_model
from specops.resolve.refs import Resolved
from specops.runtime import tracking


class PromoteError(Exception):
    """One line: why nothing was promoted."""


@dataclass
class Promotion:
    model: str
    registry: str
    version: str
    digest: str
    from_env: str
    to_env: str
    file: str  # the Model's file, relative to the git top level
    branch: str | None = None  # None: the target already pins this version; nothing written
    commit: str | None = None
    gates: list[str] = field(default_factory=list)  # the gates that passed in from_env
    named: bool = False  # the version was named (--version), not the one from_env serves

    def to_dict(self) -> dict[str, Any]:
        # `model_version`: the CLI's envelope keeps `version` for the format (1).
        return {"model": self.model, "registry": self.registry, "model_version": self.version, "digest": self.digest,
                "from": self.from_env, "to": self.to_env, "file": self.file, "branch": self.branch,
                "commit": self.commit, "gates": list(self.gates)}


def _env(resolved: Resolved, env: str, flag: str) -> Any:
    view = resolved.envs.get(env)
    if view is None:
        raise PromoteError(f"{flag}: unknown environment '{env}'" + suggestion(env, sorted(resolved.envs)))
    return view


def promote(resolved: Resolved, name: str, from_env: str, to_env: str, *, branch: str | None = None,
            version: str | None = None) -> Promotion:
    """`version`: promote that registry version (a monitor's retrain, which no alias points at)
    instead of the one `from_env` serves; its gates must have passed in `from_env` all the same."""
    src, dst = _env(resolved, from_env, "--from"), _env(resolved, to_env, "--to")
    if from_env == to_env:
        raise PromoteError(f"--from and --to are both '{from_env}'")
    node = src.get("Model", name)
    if node is None:
        raise PromoteError(f"unknown model '{name}' in environment '{from_env}'"
                           + suggestion(name, [m.name for m in src.of_kind("Model")]))
    there = dst.get("Model", name)
    if there is None:
        raise PromoteError(f"model '{name}' is not deployed to environment '{to_env}' (its `environments`)")
    registry = node.spec.registry.name or name
    if (there.spec.registry.name or name) != registry:
        raise PromoteError(f"model '{name}' is registered as '{registry}' in {from_env} but as "
                           f"'{there.spec.registry.name or name}' in {to_env}: a pin names a version of one")
    mv = _served(resolved, src, registry) if version is None else _named(resolved, src, registry, version)
    digest = (mv.tags or {}).get(tracking.TAG + "digest")
    if not digest:
        where = f"served in {from_env}" if version is None else "named by --version"
        raise PromoteError(f"{registry} version {mv.version} ({where}) was not registered by specops: "
                           "it records no digest")
    passed = _check_gates(src, node, mv, registry, digest)
    out = Promotion(name, registry, str(mv.version), digest, from_env, to_env, "", gates=passed,
                    named=version is not None)
    _write_branch(resolved, node, out, branch)
    return out


def _lookup(resolved: Resolved, view: Any, ask: Any) -> Any:
    """`ask(client)` against the environment's registry, its errors as one PromoteError line."""
    reg = view.target.registry
    options = {"registry": {"uri": reg.tracking_uri,
                            "token": reg.token.secret_ref.model_dump(mode="json") if reg.token else None}}
    root = resolved.repo.root
    if not tracking.store_exists(reg.tracking_uri, root):
        raise PromoteError(f"nothing is registered yet (no MLflow store at {tracking.EMBEDDED_DIR}/): "
                           f"apply {view.name} first")
    try:
        return ask(client_for(root, options))
    except (ProviderError, tracking.RegistryError) as e:
        raise PromoteError(str(e)) from None


def _named(resolved: Resolved, view: Any, registry: str, version: str) -> Any:
    if not version.isdigit():
        raise PromoteError(f"--version: '{version}' is not a registry version number")
    mv = _lookup(resolved, view, lambda c: tracking.get_version(c, registry, version))
    if mv is None:
        raise PromoteError(f"--version: {registry} has no version {version}")
    return mv


def _served(resolved: Resolved, view: Any, registry: str) -> Any:
    mv = _lookup(resolved, view, lambda c: tracking.alias_version(c, registry, tracking.env_alias(view.name)))
    if mv is None:
        raise PromoteError(f"no version of {registry} serves in {view.name} (its alias '{view.name}' is not set): "
                           f"apply {view.name} first")
    return mv


def _check_gates(view: Any, node: Any, mv: Any, registry: str, digest: str) -> list[str]:
    """Every EvalGate over the model that blocks the source env must have passed there for
    this version. Returns their names; refuses naming the ones that did not."""
    required = sorted(g.name for g in view.of_kind("EvalGate")
                      if view.name in g.spec.blocks and (m := gate_model(view, g)) is not None and m.name == node.name)
    records = tracking.gate_records(mv).get(view.name) or {}
    bad = []
    for g in required:
        rec = records.get(g)
        if not isinstance(rec, dict):
            bad.append(f"gate '{g}' has not run")
        elif rec.get("passed") is not True:
            bad.append(f"gate '{g}' failed")
    if bad:
        raise PromoteError(f"refusing to promote {registry} version {mv.version} ({digest[:19]}…): "
                           f"{'; '.join(bad)} in {view.name} for that digest")
    return required


# ---- the spec change, on a new branch ------------------------------------------------------------


def _git(args: list[str], cwd: Path, *, stdin: str | None = None, env: dict[str, str] | None = None) -> str:
    try:
        p = subprocess.run(["git", *args], cwd=cwd, input=stdin, capture_output=True, text=True, check=False,
                           env={**os.environ, **(env or {})}, timeout=60)
    except (OSError, subprocess.SubprocessError) as e:
        raise PromoteError(f"git {args[0]}: {e}") from None
    if p.returncode != 0:
        lines = p.stderr.strip().splitlines()
        raise PromoteError(f"git {args[0]} failed: {lines[-1] if lines else f'exit {p.returncode}'}")
    return p.stdout


def _indent(text: str) -> dict[str, int]:
    """The file's own block-sequence style (`key:` then `  - item`, or `- item` under it), so
    the edit changes only the pin; mappings indent by 2, as the examples and `init` write."""
    lines = [ln for ln in text.splitlines() if ln.strip() and not ln.lstrip().startswith("#")]
    for prev, ln in zip(lines, lines[1:]):
        if ln.lstrip().startswith("- ") and prev.rstrip().endswith(":"):
            offset = max(0, (len(ln) - len(ln.lstrip())) - (len(prev) - len(prev.lstrip())))
            return {"mapping": 2, "sequence": offset + 2, "offset": offset}
    return {"mapping": 2, "sequence": 4, "offset": 2}


def pinned_text(text: str, kind: str, name: str, env: str, pin: dict[str, Any]) -> str:
    """`text` (one spec file) with `overrides.<env>.registry.pin` of the named spec set, by a
    round-trip edit that keeps comments and layout."""
    from ruamel.yaml import YAML
    from ruamel.yaml.comments import CommentedMap

    y = YAML()
    y.preserve_quotes = True
    y.width = 4096  # never fold a line the author did not fold
    y.indent(**_indent(text))
    docs = list(y.load_all(text))
    doc = next((d for d in docs if isinstance(d, dict) and d.get("kind") == kind
                and (d.get("metadata") or {}).get("name") == name), None)
    if doc is None:
        raise PromoteError(f"no {kind} '{name}' in the committed file (commit the spec first)")
    overrides = doc.setdefault("overrides", CommentedMap())
    env_over = overrides.setdefault(env, CommentedMap())
    reg = env_over.setdefault("registry", CommentedMap())
    value = CommentedMap(pin)
    value.fa.set_flow_style()
    reg["pin"] = value
    buf = io.StringIO()
    if len(docs) == 1:
        y.dump(docs[0], buf)
    else:
        y.dump_all(docs, buf)
    return buf.getvalue()


def _write_branch(resolved: Resolved, node: Any, out: Promotion, branch: str | None) -> None:
    root = Path(resolved.repo.root).resolve()
    top = Path(_git(["rev-parse", "--show-toplevel"], root).strip()).resolve()
    rel = Path(os.path.relpath(root / node.file, top)).as_posix()
    out.file = rel
    head = _git(["rev-parse", "--verify", "HEAD^{commit}"], top).strip()
    listed = _git(["ls-tree", "HEAD", "--", rel], top).split()
    if not listed:
        raise PromoteError(f"{rel} is not committed: commit the spec before promoting")
    mode = listed[0]
    before = _git(["show", f"HEAD:{rel}"], top)
    pin = {"version": int(out.version), "digest": out.digest}
    current = (((node.doc.data.get("overrides") or {}).get(out.to_env) or {}).get("registry") or {}).get("pin")
    after = pinned_text(before, "Model", out.model, out.to_env, pin)
    if after == before or current == pin:
        return  # already pinned to this version
    name = branch or f"promote/{out.model}-{out.to_env}-v{out.version}"
    if _git(["check-ref-format", "--branch", name], top).strip() != name:
        raise PromoteError(f"'{name}' is not a valid branch name")
    blob = _git(["hash-object", "-w", "--stdin", "--path", rel], top, stdin=after).strip()
    with tempfile.TemporaryDirectory(prefix="specops-promote-") as tmp:
        index = {"GIT_INDEX_FILE": str(Path(tmp) / "index")}
        _git(["read-tree", head], top, env=index)
        _git(["update-index", "--cacheinfo", f"{mode},{blob},{rel}"], top, env=index)
        tree = _git(["write-tree"], top, env=index).strip()
    gates = ", ".join(out.gates) or "none block it"
    which = "named by --version" if out.named else f"the version\n{out.from_env} serves"
    message = (f"Promote {out.model} to {out.to_env}: {out.registry} version {out.version}\n\n"
               f"Pins {out.registry} version {out.version} ({out.digest}) in {out.to_env}, {which}.\n"
               f"Gates passed in {out.from_env} for that digest: {gates}.\n"
               f"{out.to_env} deploys it without training and re-runs its own gates on its data.\n\n"
               f"Written by `specops promote {out.model} --from {out.from_env} --to {out.to_env}"
               f"{f' --version {out.version}' if out.named else ''}`.\n")
    commit = _git(["commit-tree", tree, "-p", head, "-F", "-"], top, stdin=message).strip()
    # The all-zero old value makes update-ref refuse a branch that already exists.
    try:
        _git(["update-ref", f"refs/heads/{name}", commit, "0" * len(head)], top)
    except PromoteError:
        raise PromoteError(f"branch '{name}' already exists; pass --branch NAME") from None
    out.branch, out.commit = name, commit
