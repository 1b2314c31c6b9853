"""The prompt provider: versions + labels in the local registry; registry edits are drift."""

from __future__ import annotations

import json
from pathlib import Path

from specops.backends.prompt_provider import PromptProvider
from specops.backends.provider import Desired, content_hash, json_bytes
from specops.ir import Target
from specops.state import ResourceState


def desired(version: int, labels: list[str], template: str = "Hi {{ name }}") -> Desired:
    doc = {"name": "greet", "version": version, "model": "m", "template": template, "variables": {},
           "parameters": {}, "labels": labels}
    files = {"prompt.json": json_bytes(doc)}
    return Desired("prompt.greet", "prompt", "greet", "dev", content_hash(files), files, {"prompt.json": doc}, (),
                   Target("local", "zenml"), "Prompt/greet")


def recorded(d: Desired) -> ResourceState:
    return ResourceState(d.address, d.type, d.name, d.content_hash, {}, {}, d.attributes, [])


def registry(root: Path) -> dict:
    return json.loads((root / ".specops/prompts/dev/greet.json").read_text())


def test_versions_accumulate_and_labels_move(tmp_path: Path):
    p = PromptProvider("dev", tmp_path)
    d1 = desired(1, ["latest", "production"])
    assert p.read(d1, None).exists is False
    assert p.apply(d1, None) == ({"version": "1"}, {"labels": ["latest", "production"], "version": 1})
    assert p.read(d1, recorded(d1)).content_hash == d1.content_hash
    d2 = desired(2, ["latest"], template="Hello {{ name }}")
    p.apply(d2, recorded(d1))
    reg = registry(tmp_path)
    assert sorted(reg["versions"]) == ["1", "2"]
    # 'production' was set by specops on v1 and is not in the spec any more: removed.
    assert reg["labels"] == {"latest": 2}
    assert p.read(d2, recorded(d2)).content_hash == d2.content_hash


def test_registry_edits_are_drift(tmp_path: Path):
    p = PromptProvider("dev", tmp_path)
    d = desired(3, ["latest"])
    p.apply(d, None)
    f = tmp_path / ".specops/prompts/dev/greet.json"
    reg = registry(tmp_path)
    reg["versions"]["3"]["template"] = "edited in the UI"
    f.write_text(json.dumps(reg))
    live = p.read(d, recorded(d))
    assert live.content_hash != d.content_hash
    assert live.attributes["prompt.json"]["template"] == "edited in the UI"
    p.apply(d, recorded(d))  # reconcile
    assert p.read(d, recorded(d)).content_hash == d.content_hash
    reg = registry(tmp_path)
    reg["labels"]["latest"] = 1  # label moved to another version by hand
    f.write_text(json.dumps(reg))
    assert p.read(d, recorded(d)).attributes["prompt.json"]["labels"] == []
    p.delete(recorded(d))
    assert not f.exists()
