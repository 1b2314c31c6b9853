"""Provider `prompt`: prompt versions and labels in a local prompt registry (Langfuse-style).

Registry file, one per prompt and environment: `<root>/.specops/prompts/<env>/<name>.json`

    {"name": str, "versions": {"<n>": {model, template | messages, variables, parameters}},
     "labels": {"<label>": <version n>}}

apply adds the spec's version (keeping older ones) and points this env's labels at it;
labels specops set before and the spec no longer lists are removed. `read()` rebuilds the
prompt document (the version's content plus every label pointing at it), so an edit made
in the registry behind specops's back (content, or a label moved) is drift.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from specops.backends.provider import (
    Desired,
    Live,
    ProviderError,
    content_hash,
    json_bytes,
)
from specops.fsio import write_atomic


class PromptProvider:
    TYPE = "prompt"

    def __init__(self, env: str, root: Path) -> None:
        self.env, self.root = env, root
        self.base = root / ".specops" / "prompts" / env

    def _path(self, name: str) -> Path:
        if not name or "/" in name or name in (".", ".."):
            raise ProviderError(f"prompt name {name!r} cannot name a file")
        return self.base / f"{name}.json"

    def _load(self, name: str) -> dict[str, Any] | None:
        p = self._path(name)
        try:
            doc = json.loads(p.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return None
        except (OSError, ValueError) as e:
            raise ProviderError(f".specops/prompts/{self.env}/{name}.json: unreadable prompt registry ({e})") from None
        if not isinstance(doc, dict) or not isinstance(doc.get("versions"), dict) or not isinstance(doc.get("labels"), dict):
            raise ProviderError(f".specops/prompts/{self.env}/{name}.json: not a prompt registry document")
        return doc

    def _save(self, name: str, doc: dict[str, Any]) -> None:

        write_atomic(self._path(name), json_bytes(doc))

    @staticmethod
    def _document(reg: dict[str, Any], name: str, version: int) -> dict[str, Any] | None:
        body = reg["versions"].get(str(version))
        if not isinstance(body, dict):
            return None
        labels = sorted(k for k, v in reg["labels"].items() if v == version)
        return {**body, "name": name, "version": version, "labels": labels}

    def read(self, desired: Desired | None, current: Any) -> Live:
        name = desired.name if desired is not None else current.name
        reg = self._load(name)
        if reg is None:
            return Live(exists=False)
        attrs = (current.attributes if current is not None else desired.attributes).get("prompt.json", {})
        version = attrs.get("version")
        doc = self._document(reg, name, version) if isinstance(version, int) else None
        if doc is None:
            return Live(exists=True, content_hash=None, attributes={"prompt.json": {}})
        return Live(exists=True, content_hash=content_hash({"prompt.json": json_bytes(doc)}),
                    attributes={"prompt.json": doc}, ids={"version": str(version)})

    def apply(self, desired: Desired, current: Any) -> tuple[dict[str, str], dict[str, Any]]:
        want = desired.attributes["prompt.json"]
        version = want["version"]
        reg = self._load(desired.name) or {"name": desired.name, "versions": {}, "labels": {}}
        reg["versions"][str(version)] = {k: v for k, v in want.items() if k not in ("name", "version", "labels")}
        managed = set()
        if current is not None:
            managed = set(current.attributes.get("prompt.json", {}).get("labels", []))
        for label in sorted(managed - set(want["labels"])):
            reg["labels"].pop(label, None)
        for label, v in list(reg["labels"].items()):
            if v == version and label not in want["labels"]:
                reg["labels"].pop(label)  # a label set behind our back on this version (drift)
        for label in want["labels"]:
            reg["labels"][label] = version
        reg["labels"] = dict(sorted(reg["labels"].items()))
        try:
            self._save(desired.name, reg)
        except OSError as e:
            raise ProviderError(f".specops/prompts/{self.env}/{desired.name}.json: cannot write ({e.strerror or e})") from None
        return {"version": str(version)}, {"labels": list(want["labels"]), "version": version}

    def delete(self, current: Any) -> None:
        try:
            self._path(current.name).unlink()
        except FileNotFoundError:
            pass
        except OSError as e:
            raise ProviderError(f".specops/prompts/{self.env}/{current.name}.json: cannot remove ({e.strerror or e})") from None


def provider(type: str, *, env: str, target: Any, root: Path, options: dict) -> PromptProvider:
    return PromptProvider(env, Path(root))
