"""The README's main job end to end: the product's functions fed by their queues, schedules and S3 events, on moto
over real HTTP and the Kubernetes API test server, the signed webhook over HTTP."""

from __future__ import annotations

from pathlib import Path

import pytest

from chalicelib.core.resources import Resource

pytestmark = pytest.mark.fakeonly


def test_the_sandbox_runs_the_product_from_schedule_to_restore_from_the_replica(tmp_path: Path) -> None:
    from chalicelib.kube import KubeClient
    from sandbox.environment import running_sandbox
    from sandbox.product import run_product

    said: list[str] = []
    with running_sandbox(tmp_path) as sandbox:
        result = run_product(sandbox, tmp_path, say=said.append)
        client = KubeClient.from_kubeconfig(sandbox.kubeconfig_path.read_text())
        cm = Resource("", "v1", "ConfigMap", "configmaps", True, frozenset({"get"}))
        deploy = Resource("apps", "v1", "Deployment", "deployments", True, frozenset({"get"}))
        pvc = Resource("", "v1", "PersistentVolumeClaim", "persistentvolumeclaims", True, frozenset({"get"}))
        restored_cm = client.get_object(cm, "web-config", "shop-dr")
        restored_deploy = client.get_object(deploy, "web", "shop-dr")
        restored_claim = client.get_object(pvc, "archive", "shop-data-dr")

    assert result["ok"], result
    assert result["errors"] == []
    # Both backups came from dispatcher ticks through the backup queue and its worker.
    full, incremental = result["backups"]
    assert [s["dispatched"] for s in result["steps"][:2]] == [{"dispatched": 1}, {"dispatched": 1}]
    assert result["invocations"]["backup_worker"] >= 2
    assert full["state"] == incremental["state"] == "Completed" and incremental["objects"] == full["objects"]
    assert incremental["new_blobs"] == 5  # 3 changed or added objects, the shop namespace tree, the root tree
    assert incremental["bytes_uploaded"] < full["bytes_uploaded"] / 2
    assert "ready" in full["volume_snapshots"] and "ready" in incremental["volume_snapshots"]
    # S3's notifications drove the replicator.
    assert full["replica"] == incremental["replica"] == "Replicated"
    assert result["invocations"]["replicator"] >= 2
    # The verification ran through its queue and measured an RTO.
    verification = result["verification"]
    assert verification["state"] == "Succeeded" and verification["rto_s"] > 0
    assert set(verification["kinds"]) >= {"resources", "replica"}
    # Retention (keep_last 1) expired the full backup.
    assert "1 backup(s) expired" in next(s for s in result["steps"] if s["step"] == "retention and GC")["detail"]
    # The signed restore read the replica: the primary bucket was gone.
    restore = result["restore"]
    assert restore["state"] == "Completed" and not restore["failures"]
    assert any("replica" in w for w in restore["warnings"])
    assert restore["plan"]["state"] == "Completed" and restore["plan"]["plan"]["counts"]["create"] > 0
    assert restored_cm is not None and restored_cm["data"]["LOG_LEVEL"] == "debug"
    assert restored_deploy is not None and restored_deploy["spec"]["replicas"] == 4
    assert restored_claim is not None and restored_claim["spec"].get("dataSource", {}).get("kind") == "VolumeSnapshot"
    assert result["rpo"]["minutes"] is not None and result["rpo"]["target_minutes"] == 90
    report = Path(result["report"])
    assert report.is_file() and "sandbox-hourly" in report.read_text()


def test_the_sandbox_demo_prints_one_summary(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    from sandbox.demo import run_demo

    # The demo quiets logs and metrics for its process; here they are undone after the test, for the tests after it.
    monkeypatch.setenv("POWERTOOLS_LOG_LEVEL", "ERROR")
    monkeypatch.setenv("POWERTOOLS_METRICS_DISABLED", "true")

    assert run_demo(output="table") == 0
    out = capsys.readouterr().out
    for words in ("what ran", "full backup", "incremental backup", "verification", "restore from the replica",
                  "3-2-1", "RPO", "HTML report", "all steps passed"):  # fmt: skip
        assert words in out
