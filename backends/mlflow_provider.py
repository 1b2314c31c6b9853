"""Provider of the `mlflow` model registry (backends/mlflow.py): resource types `prompt` and
`registered_model`.

MLflow (tracking + model registry + prompt registry) is where versions live, through
`specops.runtime.tracking` (names, tags, one-line errors). The registry is the target's
(`targets.<t>.registry.trackingUri`, token from a secretRef), else the embedded SQLite store
under `.specops/mlflow/`.

`prompt.<name>`: `prompt.json` is the spec's version of the prompt plus this env's labels and
their aliases. apply registers the version (content stored verbatim; tagged as Jinja2, which
MLflow's `format()` does not render: specops renders it) unless a version with the same
content exists, then points the aliases `<env>` and `<env>-<label>` at it and removes the
ones specops set before that the spec no longer lists. read() rebuilds the document from what
the aliases point at, so a label moved (or a version edited) outside specops is drift.

`registered_model.<model>`: `model.json` names the registered model, the version this env
deploys (the one its pipeline registered, found by spec digest, or the pinned one) and this
env's aliases. apply points the aliases at it and stores the version's model card with the
capacity of the serving targets that serve it. read() reports, per alias, what it points at
now: an alias moved with `MlflowClient` is drift that names the alias.

A local prompt registry left by an older specops (`.specops/prompts/<env>/*.json`) is read
as live until `migrate_legacy_prompts` (run by `apply`, under the state lock) moves it here.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import Any

from specops.backends.provider import Desired, Live, ProviderError, content_hash, json_bytes
from specops.runtime import tracking

LEGACY_PROMPTS = ".specops/prompts"


def token_of(ref: dict[str, Any] | None) -> str | None:
    """The registry token from its secretRef: specops itself reads `env` secrets only."""
    if not ref:
        return os.environ.get("MLFLOW_TRACKING_TOKEN")
    provider, name = ref.get("provider", "kubernetes"), ref.get("name", "")
    if provider != "env":
        raise ProviderError(f"registry token: a secretRef of provider '{provider}' cannot be read by the specops "
                            "CLI; expose it to CI as an environment variable and use provider env")
    value = os.environ.get(name)
    if not value:
        raise ProviderError(f"registry token: environment variable {name} is not set")
    return value


def client_for(root: Path, options: dict[str, Any]) -> Any:
    reg = options.get("registry") or {}
    try:
        return tracking.connect(reg.get("uri"), root, token=token_of(reg.get("token")))
    except tracking.RegistryError as e:
        raise ProviderError(str(e)) from None


class _Base:
    def __init__(self, env: str, root: Path, options: dict[str, Any]) -> None:
        self.env, self.root, self.options = env, root, options
        self._client: Any = None

    def store_exists(self) -> bool:
        """False while the embedded store was never created: nothing of this repo is in it yet
        (a plan then creates nothing)."""
        return tracking.store_exists((self.options.get("registry") or {}).get("uri"), self.root)

    @property
    def client(self) -> Any:
        if self._client is None:
            self._client = client_for(self.root, self.options)
        return self._client

    def call(self, fn: Any, *args: Any, **kw: Any) -> Any:
        try:
            return fn(*args, **kw)
        except tracking.RegistryError as e:
            raise ProviderError(str(e)) from None


# ---- prompts ----------------------------------------------------------------------------------


def prompt_aliases(env: str, labels: list[str], version: int) -> dict[str, str]:
    """This env's aliases of a prompt and the spec version each must point at."""
    out = {tracking.env_alias(env): f"v{version}"}
    out.update({tracking.label_alias(env, lb): f"v{version}" for lb in labels})
    return dict(sorted(out.items()))


class PromptProvider(_Base):
    TYPE = "prompt"

    def _legacy(self, name: str) -> dict[str, Any] | None:
        p = self.root / LEGACY_PROMPTS / self.env / f"{name}.json"
        try:
            doc = json.loads(p.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return None
        return doc if isinstance(doc, dict) and isinstance(doc.get("versions"), dict) else None

    def read(self, desired: Desired | None, current: Any) -> Live:
        name = desired.name if desired is not None else current.name
        basis = (current.attributes if current is not None else desired.attributes).get("prompt.json", {})
        if self._legacy(name) is not None and (current is not None and "aliases" not in basis):
            # Not migrated yet: what specops recorded is what the old registry holds.
            return Live(exists=True, content_hash=current.content_hash, attributes=None)
        if not self.store_exists():
            return Live(exists=False)
        versions = self.call(tracking.prompt_versions, self.client, name)
        if versions is None:
            return Live(exists=False)
        by_number = {str(v.version): v for v in versions}
        want = basis.get("aliases") or prompt_aliases(self.env, list(basis.get("labels") or []),
                                                      int(basis.get("version") or 0))
        points = self.call(tracking.prompt_alias_versions, self.client, name, sorted(want))
        served = by_number.get(points.get(tracking.env_alias(self.env)) or "")
        if served is None:
            return Live(exists=True, content_hash=None, attributes={"prompt.json": {}})
        doc = tracking.prompt_document(served, name)
        doc["labels"] = sorted(lb for lb in basis.get("labels") or []
                               if points.get(tracking.label_alias(self.env, lb)) == str(served.version))
        doc["aliases"] = {a: self._described(by_number.get(points.get(a) or ""), want[a]) for a in sorted(want)}
        return Live(exists=True, content_hash=content_hash({"prompt.json": json_bytes(doc)}),
                    attributes={"prompt.json": doc}, ids={"mlflow_version": str(served.version)})

    @staticmethod
    def _described(pv: Any, expected: str) -> str:
        if pv is None:
            return "unset"
        spec_version = (pv.tags or {}).get(tracking.TAG + "version")
        if spec_version is None:
            return f"MLflow version {pv.version} (not registered by specops)"
        label = f"v{spec_version}"
        return label if label == expected else f"{label} (MLflow version {pv.version})"

    def apply(self, desired: Desired, current: Any) -> tuple[dict[str, str], dict[str, Any]]:
        doc = desired.attributes["prompt.json"]
        version = self.call(tracking.register_prompt_version, self.client, desired.name, doc)
        want = sorted(doc["aliases"])
        before = set()
        if current is not None:
            old = current.attributes.get("prompt.json", {})
            before = set(old.get("aliases") or prompt_aliases(self.env, list(old.get("labels") or []),
                                                               int(old.get("version") or 0)))
        for a in sorted(before - set(want)):
            try:
                self.client.delete_prompt_alias(desired.name, a)
            except Exception:  # noqa: BLE001 - already gone
                pass
        for a in want:
            self.call(tracking.guarded, f"setting alias {desired.name}@{a}",
                      lambda a=a: self.client.set_prompt_alias(desired.name, a, int(version)))
        return {"mlflow_version": version}, {"mlflow_version": version, "aliases": want}

    def delete(self, current: Any) -> None:
        doc = current.attributes.get("prompt.json", {})
        for a in sorted(doc.get("aliases") or []):
            try:
                self.client.delete_prompt_alias(current.name, a)
            except Exception:  # noqa: BLE001 - already gone: deleting is idempotent
                pass


# ---- registered models ---------------------------------------------------------------------------


class ModelProvider(_Base):
    TYPE = "registered_model"

    def _target_version(self, doc: dict[str, Any]) -> Any | None:
        src = doc.get("version_of") or {}
        if "pin" in src:
            return self.call(tracking.get_version, self.client, doc["registry"], src["pin"]["version"])
        return self.call(tracking.find_version, self.client, doc["registry"], spec_digest=src.get("spec_digest", ""))

    def read(self, desired: Desired | None, current: Any) -> Live:
        basis = (current.attributes if current is not None else desired.attributes).get("model.json", {})
        registry = basis.get("registry")
        if not self.store_exists():
            return Live(exists=False)
        points = self.call(tracking.registered_aliases, self.client, registry)
        if points is None:
            return Live(exists=False)
        expected = (current.outputs.get("version") if current is not None else None)
        if expected is None:
            mv = self._target_version(basis)
            expected = str(mv.version) if mv is not None else None
        live = dict(basis)
        live["aliases"] = {a: (basis["aliases"][a] if points.get(a) == expected and expected is not None
                               else self._described(registry, points.get(a)))
                           for a in sorted(basis.get("aliases") or {})}
        return Live(exists=True, content_hash=content_hash({"model.json": json_bytes(live)}),
                    attributes={"model.json": live}, ids={"version": expected or ""})

    def _described(self, registry: str, version: str | None) -> str:
        if version is None:
            return "unset"
        mv = self.call(tracking.get_version, self.client, registry, version)
        sd = ((mv.tags or {}).get(tracking.TAG + "spec_digest") or "")[:12] if mv is not None else ""
        return f"version {version}" + (f" (spec {sd})" if sd else "")

    def apply(self, desired: Desired, current: Any) -> tuple[dict[str, str], dict[str, Any]]:
        doc = desired.attributes["model.json"]
        registry = doc["registry"]
        mv = self._target_version(doc)
        src = doc.get("version_of") or {}
        if mv is None:
            what = (f"pinned version {src['pin']['version']}" if "pin" in src else
                    f"a version registered by the pipeline of spec {src.get('spec_digest', '')[:12]}")
            raise ProviderError(f"{registry}: {what} is not in the registry (did its pipeline run and pass its gates?)")
        if "pin" in src and (mv.tags or {}).get(tracking.TAG + "digest") != src["pin"]["digest"]:
            raise ProviderError(f"{registry} version {mv.version} has digest "
                                f"{(mv.tags or {}).get(tracking.TAG + 'digest')}, not the pinned {src['pin']['digest']}")
        version = str(mv.version)
        want = sorted(doc.get("aliases") or {})
        before = set((current.attributes.get("model.json", {}).get("aliases") or {}) if current is not None else ())
        self.call(tracking.set_aliases, self.client, registry, version, want, sorted(before - set(want)))
        card = doc.get("card") or {}
        self.call(tracking.write_model_card, self.client, registry, mv, description=card.get("description"),
                  capacity=card.get("capacity"))
        return {"version": version}, {"version": version, "aliases": want, "model_card": tracking.CARD_TAG_PATH}

    def delete(self, current: Any) -> None:
        doc = current.attributes.get("model.json", {})
        self.call(tracking.set_aliases, self.client, doc.get("registry"), "", [], sorted(doc.get("aliases") or {}))


def provider(type: str, *, env: str, target: Any, root: Path, options: dict) -> Any:
    if type == "prompt":
        return PromptProvider(env, Path(root), options)
    if type == "registered_model":
        return ModelProvider(env, Path(root), options)
    raise ProviderError(f"the mlflow registry has no resource type '{type}'")


# ---- migration of the local prompt registry of older specops versions ------------------------------


def migrate_legacy_prompts(env: str, root: Path, options: dict[str, Any]) -> list[str]:
    """Move `.specops/prompts/<env>/` (the home-made registry) into MLflow: every version it
    holds, with its labels as aliases, then remove it. Returns the notices to print."""
    base = Path(root) / LEGACY_PROMPTS / env
    if not base.is_dir():
        return []
    try:
        return _migrate(env, Path(root), base, client_for(Path(root), options))
    except tracking.RegistryError as e:
        raise ProviderError(f"migrating {LEGACY_PROMPTS}/{env}/ into MLflow: {e}") from None


def _migrate(env: str, root: Path, base: Path, client: Any) -> list[str]:
    moved = []
    for f in sorted(base.glob("*.json")):
        try:
            reg = json.loads(f.read_text(encoding="utf-8"))
        except (OSError, ValueError) as e:
            raise ProviderError(f"{f.relative_to(root)}: unreadable prompt registry ({e}); fix or remove it") from None
        name = str(reg.get("name") or f.stem)
        numbers: dict[int, str] = {}
        for v, body in sorted((reg.get("versions") or {}).items(), key=lambda kv: int(kv[0])):
            doc = {**body, "name": name, "version": int(v)}
            numbers[int(v)] = tracking.register_prompt_version(client, name, doc)
        for label, v in sorted((reg.get("labels") or {}).items()):
            if int(v) in numbers:
                tracking.guarded(f"setting alias {name}@{label}", lambda label=label, v=v: client.set_prompt_alias(
                    name, tracking.label_alias(env, label), int(numbers[int(v)])))
        if numbers:
            newest = numbers[max(numbers)]
            labelled = [numbers[int(v)] for v in (reg.get("labels") or {}).values() if int(v) in numbers]
            tracking.guarded(f"setting alias {name}@{env}", lambda: client.set_prompt_alias(
                name, tracking.env_alias(env), int(labelled[0] if labelled else newest)))
        moved.append(f"{name} ({len(numbers)} version(s))")
    shutil.rmtree(base)
    parent = base.parent
    if parent.is_dir() and not any(parent.iterdir()):
        parent.rmdir()
    return [f"migrated the local prompt registry {LEGACY_PROMPTS}/{env}/ into MLflow ({', '.join(moved) or 'empty'}) "
            "and removed it: prompt versions and labels now live in the MLflow prompt registry"]
