"""One registry of backends; a plug-in backend that lives outside the repo is selected by a
Project and compiled to, like a built-in one."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from specops.backends import registry

ROOT = Path(__file__).resolve().parents[2]
PLUGIN = Path(__file__).parent / "data" / "plugin"


def test_every_entry_has_the_surface_of_its_protocol():
    for name, m in registry.PIPELINE_BACKENDS.items():
        assert m.NAME == name and m.FORMAT and m.RESOURCE_TYPE.endswith("_pipeline")
        assert isinstance(m.RUNS_ON_APPLY, bool) and callable(m.check) and callable(m.emit)
        assert registry.provider_module(m.RESOURCE_TYPE) == m.PROVIDER
    for name, p in registry.SERVING_PLATFORMS.items():
        assert p.NAME == name and p.ARTIFACT_BACKEND and callable(p.check) and callable(p.emit)
        assert registry.platform_of_artifact_backend(p.ARTIFACT_BACKEND) is p
    # the manifest's name for SageMaker endpoint files is kept, and derived from the entry
    assert registry.SERVING_PLATFORMS["sagemaker"].ARTIFACT_BACKEND == "sagemaker-endpoint"
    for name, r in registry.MODEL_REGISTRIES.items():
        assert r.NAME == name and r.FORMAT and set(r.RESOURCE_TYPES) == {"prompt", "registered_model"}
        assert all(registry.provider_module(t) == r.PROVIDER for t in r.RESOURCE_TYPES)
    assert registry.provider_module("prompt") == "specops.backends.mlflow_provider"
    for name, a in registry.ALERTING.items():  # a Monitor's alarms and rules: live resources too
        assert a.RESOURCE_FILES and callable(a.resource_name)
        assert registry.provider_module(a.RESOURCE_TYPE) == a.PROVIDER
    assert registry.provider_module("cloudwatch_alarms") == "specops.backends.cloudwatch_provider"


def test_help_does_not_scan_entry_points():
    code = ("import sys, importlib.metadata as m; calls = []; real = m.entry_points; "
            "m.entry_points = lambda *a, **k: calls.append(1) or real(*a, **k); "
            "from specops.cli import main; sys.argv = ['specops', '--help']\n"
            "try:\n  main()\nexcept SystemExit:\n  pass\nprint('SCANS', len(calls))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert "SCANS 0" in out


@pytest.fixture()
def installed_plugin():
    """pip-installs the plug-in from its folder (no build isolation, no deps) for the test's
    duration; uninstalled afterwards."""
    pip = [sys.executable, "-m", "pip", "--disable-pip-version-check", "-q"]
    subprocess.run([*pip, "install", "--no-build-isolation", "--no-deps", str(PLUGIN)], check=True,
                   capture_output=True)
    try:
        yield
    finally:
        subprocess.run([*pip, "uninstall", "-y", "specops-demo-backend"], check=True, capture_output=True)
        shutil.rmtree(PLUGIN / "build", ignore_errors=True)
        for egg in PLUGIN.glob("*.egg-info"):
            shutil.rmtree(egg, ignore_errors=True)


def test_a_plugin_backend_outside_the_repo_is_selected_and_compiled_to(installed_plugin, tmp_path):
    repo = tmp_path / "churn"
    shutil.copytree(ROOT / "examples" / "churn", repo, ignore=shutil.ignore_patterns("build", ".specops"))
    proj = repo / "specops.yaml"
    proj.write_text(proj.read_text().replace("backend: zenml", "backend: demo", 1))
    # a fresh process: entry points are read once per process
    r = subprocess.run([sys.executable, "-m", "specops", "compile", str(repo), "--env", "dev", "--json"],
                       capture_output=True, text=True)
    assert r.returncode == 0, r.stdout + r.stderr
    out = json.loads((repo / "build" / "dev" / "demo" / "churn-classifier" / "pipeline.json").read_text())
    assert [s["kind"] for s in out["steps"]][:2] == ["data_check", "train"]
    # the monitor's schedule: this backend cannot schedule, so the host's scheduler runs it
    assert (repo / "build" / "dev" / "monitors" / "churn-drift" / "crontab").is_file()
    manifest = json.loads((repo / "build" / "manifest.json").read_text())
    assert {a["backend"] for a in manifest["artifacts"] if a["env"] == "dev"} >= {"demo"}
    # and a name that nothing registers is an error at its line with the plug-in among the choices
    proj.write_text(proj.read_text().replace("backend: demo", "backend: dmeo", 1))
    r = subprocess.run([sys.executable, "-m", "specops", "validate", str(repo)], capture_output=True, text=True)
    assert r.returncode == 1 and "unknown backend 'dmeo'" in r.stderr and "did you mean 'demo'" in r.stderr
