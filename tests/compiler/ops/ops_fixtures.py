"""Shared fixtures for the plan/apply tests: a copy of examples/support-assistant retargeted
at one local target (ZenML pipelines, Kubernetes manifests into a GitOps directory, prompts
in the local registry), and a stand-in for the pipeline orchestrator.

The stand-in (`fake_pipeline_provider`) replaces the `zenml_pipeline` provider in the fast
tests ONLY, because a real ZenML run costs ~15 s each; the real ZenML provider is exercised
by the @pytest.mark.slow tests in test_apply.py and tests/backends/test_zenml_provider.py.
The gitops and prompt providers are the real ones throughout.
"""

from __future__ import annotations

import shutil
from pathlib import Path

REPO = Path(__file__).resolve().parents[3]

PROJECT = """\
apiVersion: specops.dev/v1alpha1
kind: Project
metadata:
  name: support-assistant
spec:
  targets:
    local:
      backend: zenml
      provider: local
      serving: {platform: kubernetes, namespace: support}
      gpus: [L4, H100]
  environments:
    dev:
      target: local
      policy: {drift: reconcile, prune: true}
    staging:
      target: local
      policy: {requireGates: true, drift: reconcile, prune: false}
    prod:
      target: local
      policy: {requireGates: true, drift: report, prune: false}
  state: {backend: local, path: .specops/state}
  defaults:
    vllmVersion: 0.32.0
"""

FAKE = "tests.compiler.ops.fake_pipeline_provider"


def make_repo(tmp: Path) -> Path:
    root = tmp / "support"
    shutil.copytree(REPO / "examples" / "support-assistant", root,
                    ignore=shutil.ignore_patterns("build", ".specops"))
    (root / "specops.yaml").write_text(PROJECT, encoding="utf-8")
    # Kubernetes has no instance types: drop the SageMaker one from the prod override. The
    # adapter goes too: no init step can fetch it from this target's file:// artifact store
    # (an error at its line, tested in tests/backends/test_adapters.py).
    st = root / "serving" / "support-llm.yaml"
    st.write_text(st.read_text(encoding="utf-8").replace("    instanceType: ml.p5.48xlarge\n", "")
                  .replace("  adapters: [support-llm]\n", ""), encoding="utf-8")
    return root
