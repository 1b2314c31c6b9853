"""The k8s_manifests provider: manifests written into a GitOps directory; hand edits are drift."""

from __future__ import annotations

from pathlib import Path

import pytest

from specops.backends.gitops_provider import GitopsProvider
from specops.backends.provider import Desired, ProviderError, attributes_of, content_hash, make_provider
from specops.ir import Target
from specops.state import ResourceState

DEPLOY = b"apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: llm\nspec:\n  replicas: 2\n"
SVC = b"apiVersion: v1\nkind: Service\nmetadata:\n  name: llm\n"


def desired(files: dict[str, bytes]) -> Desired:
    return Desired("k8s_manifests.llm", "k8s_manifests", "llm", "dev", content_hash(files), files,
                   attributes_of(files), (), Target("local", "zenml"), "ServingTarget/llm")


def recorded(d: Desired, ids: dict, outputs: dict) -> ResourceState:
    return ResourceState(d.address, d.type, d.name, d.content_hash, ids, outputs, d.attributes, [])


def test_apply_writes_files_and_read_matches(tmp_path: Path):
    p = make_provider("k8s_manifests", env="dev", target=Target("local", "zenml"), root=tmp_path)
    d = desired({"deployment.yaml": DEPLOY, "service.yaml": SVC})
    assert p.read(d, None).exists is False
    ids, outputs = p.apply(d, None)
    assert ids == {"path": ".specops/gitops/dev/llm"} and outputs == {"files": ["deployment.yaml", "service.yaml"]}
    assert (tmp_path / ".specops/gitops/dev/llm/deployment.yaml").read_bytes() == DEPLOY
    live = p.read(d, recorded(d, ids, outputs))
    assert live.exists and live.content_hash == d.content_hash
    # idempotent: a second apply changes nothing
    assert p.apply(d, recorded(d, ids, outputs)) == (ids, outputs)


def test_hand_edit_changes_the_live_hash_and_attributes(tmp_path: Path):
    p = GitopsProvider("dev", tmp_path, "deploy/gitops")
    d = desired({"deployment.yaml": DEPLOY})
    ids, outputs = p.apply(d, None)
    assert ids == {"path": "deploy/gitops/llm"}
    f = tmp_path / "deploy/gitops/llm/deployment.yaml"
    f.write_bytes(DEPLOY.replace(b"replicas: 2", b"replicas: 3"))
    live = p.read(d, None)
    assert live.content_hash != d.content_hash
    assert live.attributes["deployment.yaml"]["spec"]["replicas"] == 3
    (tmp_path / "deploy/gitops/llm/extra.yaml").write_bytes(SVC)  # an added file is drift too
    p.apply(d, None)  # reconcile: back to exactly the rendered set
    assert sorted(x.name for x in (tmp_path / "deploy/gitops/llm").iterdir()) == ["deployment.yaml"]
    assert p.read(d, None).content_hash == d.content_hash


def test_update_removes_manifests_no_longer_rendered_and_delete_removes_dir(tmp_path: Path):
    p = GitopsProvider("dev", tmp_path, None)
    p.apply(desired({"deployment.yaml": DEPLOY, "service.yaml": SVC}), None)
    d2 = desired({"deployment.yaml": DEPLOY})
    p.apply(d2, None)
    assert not (tmp_path / ".specops/gitops/dev/llm/service.yaml").exists()
    p.delete(recorded(d2, {}, {}))
    assert not (tmp_path / ".specops/gitops/dev/llm").exists()
    p.delete(recorded(d2, {}, {}))  # idempotent


def test_git_url_is_a_clear_error(tmp_path: Path):
    with pytest.raises(ProviderError, match="is a git URL; give the path of a local checkout"):
        GitopsProvider("dev", tmp_path, "https://github.com/acme/gitops.git")
