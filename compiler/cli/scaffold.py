"""`specops init DIR`: a minimal spec repo that validates and runs on the local target."""

from __future__ import annotations

import re
from importlib import resources
from pathlib import Path

import click

_FILES = ("specops.yaml", "datasets/example.yaml", "models/example.yaml", "gates/example.yaml",
          "data/example.csv", "gitignore")


def _project_name(directory: Path) -> str:
    name = re.sub(r"[^a-z0-9-]+", "-", directory.resolve().name.lower()).strip("-")[:63].strip("-")
    return name or "my-project"


def scaffold(directory: Path) -> list[Path]:
    if (directory / "specops.yaml").exists():
        raise click.ClickException(f"{directory / 'specops.yaml'} already exists; not overwriting it")
    src = resources.files("specops.templates") / "scaffold"
    written = []
    for rel in _FILES:
        text = (src / rel).read_text(encoding="utf-8")
        if rel == "specops.yaml":
            text = _set_name(text, _project_name(directory))
        # Package data cannot hold a dot-file reliably: the template is "gitignore".
        dest = directory / (".gitignore" if rel == "gitignore" else rel)
        dest.parent.mkdir(parents=True, exist_ok=True)
        if dest.exists():
            raise click.ClickException(f"{dest} already exists; not overwriting it")
        dest.write_text(text, encoding="utf-8")
        written.append(dest)
    return written


def _set_name(text: str, name: str) -> str:
    """Set metadata.name with a round-trip edit, keeping the template's comments."""
    import io

    from ruamel.yaml import YAML

    y = YAML()  # round-trip: comments and layout survive
    doc = y.load(text)
    doc["metadata"]["name"] = name
    buf = io.StringIO()
    y.dump(doc, buf)
    return buf.getvalue()
