"""The reconcile loop as shipped in examples/reconcile/: the Kubernetes ServiceAccount,
Deployment and Service validate strictly against the Kubernetes OpenAPI schemas
(kubernetes-validate, offline), and the container's entrypoint and the Deployment's arguments
are real `specops reconcile` flags, with probes on the paths the loop serves."""

from __future__ import annotations

import copy
import json
import re
from pathlib import Path

import yaml

from specops.backends.kubernetes import validate_manifests
from tests.examples.test_ci_files import check_invocation

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "reconcile"


def manifests() -> list[dict]:
    return [d for d in yaml.safe_load_all((EXAMPLE / "kubernetes.yaml").read_text()) if d]


def test_manifests_validate_against_the_kubernetes_schemas():
    assert validate_manifests({"kubernetes.yaml": (EXAMPLE / "kubernetes.yaml").read_bytes()}) == []
    kinds = [d["kind"] for d in manifests()]
    assert kinds == ["ServiceAccount", "Deployment", "Service"]
    dep = copy.deepcopy(manifests()[1])
    dep["spec"]["template"]["spec"]["containers"][0]["livenesProbe"] = {}  # a typo is caught
    errors = validate_manifests({"d.yaml": yaml.safe_dump(dep).encode()})
    assert len(errors) == 1 and "livenesProbe" in errors[0]


def test_the_deployment_runs_real_flags_and_probes_real_paths():
    sa, dep, svc = manifests()
    pod = dep["spec"]["template"]["spec"]
    assert pod["serviceAccountName"] == sa["metadata"]["name"]
    assert dep["spec"]["replicas"] == 1 and dep["spec"]["strategy"]["type"] == "Recreate"
    [c] = pod["containers"]
    check_invocation(["specops", "reconcile", *c["args"]])
    listen = next(a for a in c["args"] if a.startswith("--listen="))
    port = int(listen.rsplit(":", 1)[1])
    assert c["ports"][0]["containerPort"] == port == svc["spec"]["ports"][0]["port"]
    assert c["livenessProbe"]["httpGet"]["path"] == "/healthz"
    assert c["readinessProbe"]["httpGet"]["path"] == "/readyz"
    env = {e["name"] for e in c["env"]}
    assert {"SPECOPS_RECONCILE_ID", "SPECOPS_WEBHOOK_SECRET"} <= env
    # secrets come from a Secret, never a literal in the manifest
    assert all("valueFrom" in e for e in c["env"] if "SECRET" in e["name"] or "KEY" in e["name"])
    mounts = {m["mountPath"] for m in c["volumeMounts"]}
    assert "/var/run/secrets/specops/specops-notify" in mounts  # where runtime.secrets reads kubernetes refs


def test_the_container_entrypoint_is_specops_reconcile():
    text = (EXAMPLE / "Dockerfile").read_text()
    entry = json.loads(re.search(r"^ENTRYPOINT (\[.*\])$", text, re.M).group(1))
    cmd = json.loads(re.search(r"^CMD (\[.*\])$", text, re.M).group(1))
    assert entry == ["specops", "reconcile"]
    check_invocation([*entry, *cmd])
    assert re.search(r"^USER \d+$", text, re.M)  # not root
