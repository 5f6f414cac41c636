"""The README's main job end to end: moto over real HTTP, the Kubernetes API test server, the webhook over HTTP."""

from __future__ import annotations

from pathlib import Path

import pytest

from chalicelib.core.resources import Resource

pytestmark = pytest.mark.fakeonly


def test_sandbox_flow_backs_up_incrementally_and_restores_through_the_webhook(tmp_path: Path) -> None:
    from chalicelib.kube import KubeClient
    from sandbox.demo import run_flow
    from sandbox.environment import running_sandbox

    said: list[str] = []
    with running_sandbox(tmp_path) as sandbox:
        result = run_flow(sandbox, say=said.append)
        client = KubeClient.from_kubeconfig(sandbox.kubeconfig_path.read_text())
        cm = Resource("", "v1", "ConfigMap", "configmaps", True, frozenset({"get"}))
        deploy = Resource("apps", "v1", "Deployment", "deployments", True, frozenset({"get"}))
        restored_cm = client.get_object(cm, "web-config", "shop-restored")
        restored_deploy = client.get_object(deploy, "web", "shop-restored")
        pvc = Resource("", "v1", "PersistentVolumeClaim", "persistentvolumeclaims", True, frozenset({"get"}))
        restored_claim = client.get_object(pvc, "archive", "shop-data-restored")

    assert result["ok"], result
    full, incremental = result["backups"]
    assert full["state"] == incremental["state"] == "Completed"
    assert incremental["objects"] == full["objects"]
    # 3 changed or added objects + the shop namespace tree + the root tree (a deletion adds no blob).
    assert incremental["new_blobs"] == 5
    assert incremental["bytes_uploaded"] < full["bytes_uploaded"] / 2
    assert result["repo_check"]["problems"] == 0
    plan = result["restores"]["dry_run"]
    assert plan["state"] == "Completed" and plan["plan"]["counts"]["create"] > 0
    restore = result["restores"]["restore"]
    assert restore["state"] == "Completed" and not restore["failures"]
    # The restore reflects the incremental backup: the edited value, the scaled Deployment.
    assert restored_cm is not None and restored_cm["data"]["LOG_LEVEL"] == "debug"
    assert restored_deploy is not None and restored_deploy["spec"]["replicas"] == 4
    assert restored_deploy["metadata"]["labels"]["lifeboat.io/restore-id"] == restore["restore_id"]
    # The incremental backup snapshotted the bound claim, recorded the unbound one, and the claim came back from it.
    volumes = {(v["namespace"], v["pvc"]): v for v in result["volumes"]["snapshots"]}
    assert volumes[("shop-data", "archive")]["state"] == "ready"
    assert volumes[("shop", "uploads")]["state"] == "not-snapshotable"
    assert result["volumes"]["restore"] == "Completed"
    assert restored_claim is not None
    assert restored_claim["spec"]["dataSource"]["name"] == volumes[("shop-data", "archive")]["snapshot_name"]
