"""Restoring claims from the CSI snapshots a backup took: same cluster, another namespace, another cluster, dry run."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pytest

from chalicelib.core.jobs import BackupJob, ClusterRef
from chalicelib.core.resources import Resource
from chalicelib.core.restore_options import RestoreOptions
from chalicelib.core.scope import BackupScope
from chalicelib.core.volume_snapshots import VolumeSettings
from chalicelib.kube import KubeClient
from chalicelib.restore import RestoreService, RestoreState
from chalicelib.services import Services
from sandbox.kubeapi import KubeAPIServer
from tests.integration.test_volume_backup import PV, PVC, VS, VSCLASS
from tests.support.clocks import Clock
from tests.support.sharded import ListQueue
from tests.support.volumes import claim, snapshot_class, volume

pytestmark = pytest.mark.fakeonly
NAMESPACES = Resource("", "v1", "Namespace", "namespaces", False, frozenset({"get"}))


@pytest.fixture
def snapshotter(fake_kube: Any) -> Iterator[Any]:
    snap = fake_kube.snapshotter
    snap.enabled, snap.ready_delay = True, 0.0
    try:
        yield snap
    finally:
        snap.enabled = False


@pytest.fixture
def backed_up(
    services: Services, kubeconfig_path: Any, kube_client: KubeClient, snapshotter: Any
) -> Iterator[dict[str, Any]]:
    """A namespace with a bound claim (data) and an unbound one (pending), backed up with a Delete snapshot class;
    then the namespace is deleted."""
    namespace = f"lbv-{uuid.uuid4().hex[:8]}"
    klass = f"snap-{uuid.uuid4().hex[:6]}"
    pv = f"pv-{namespace}"
    kube_client.create(VSCLASS, snapshot_class(klass, policy="Delete"))
    kube_client.create_namespace(namespace)
    kube_client.create(PV, volume(pv, namespace, "data", "3Gi"))
    kube_client.create(PVC, claim("data", pv, "3Gi"), namespace=namespace)
    kube_client.create(PVC, claim("pending"), namespace=namespace)
    auth = {"type": "kubeconfig", "kubeconfig": kubeconfig_path.read_text()}
    job = BackupJob(
        job_id=f"t-{uuid.uuid4()}",
        cluster=ClusterRef("vol-restore", auth),
        scope=BackupScope(include_namespaces=(namespace,)),
        shard=False,
        volumes=VolumeSettings.from_dict({"mode": "auto", "class": klass}),
    )
    clock = Clock(datetime.now(UTC).replace(microsecond=0))
    record = services.backup_service(queue=ListQueue(), clock=clock).run(job).record
    assert record.state == "Completed", record.errors
    from chalicelib.repository import RepositoryReader

    reader = RepositoryReader(services.repository())
    manifest = reader.load_manifest(record.cluster, record.backup_id)
    snap = next(r for r in manifest.volume_snapshots if r["pvc"] == "data")
    kube_client.delete_namespace(namespace)
    _gone(kube_client, namespace)
    yield {"namespace": namespace, "manifest": manifest, "reader": reader, "snapshot": snap, "pv": pv, "class": klass}
    kube_client.delete(PV, pv)
    kube_client.delete(VSCLASS, klass)


def _gone(client: KubeClient, namespace: str) -> None:
    deadline = time.monotonic() + 5
    while client.get_object(NAMESPACES, namespace):
        assert time.monotonic() < deadline, "the namespace was not deleted"
        time.sleep(0.05)


def _wait_ready(client: KubeClient, name: str, namespace: str) -> dict[str, Any]:
    deadline = time.monotonic() + 5
    while True:
        snap = client.get_object(VS, name, namespace) or {}
        if (snap.get("status") or {}).get("readyToUse") or (snap.get("status") or {}).get("error"):
            return snap
        assert time.monotonic() < deadline, snap
        time.sleep(0.05)


def _restored_claim(client: KubeClient, backed_up: dict[str, Any], namespace: str) -> None:
    snap = backed_up["snapshot"]
    pvc = client.get_object(PVC, "data", namespace)
    assert pvc is not None
    assert pvc["spec"]["dataSource"] == {
        "apiGroup": "snapshot.storage.k8s.io",
        "kind": "VolumeSnapshot",
        "name": snap["snapshot_name"],
    }
    restored = _wait_ready(client, snap["snapshot_name"], namespace)
    assert restored["status"]["readyToUse"] is True, restored["status"]
    assert restored["spec"]["source"]["volumeSnapshotContentName"].endswith(tuple("0123456789abcdef"))
    pending = client.get_object(PVC, "pending", namespace)
    assert pending is not None and "dataSource" not in pending["spec"]


def test_the_backups_snapshot_outlives_its_namespace(backed_up: dict[str, Any], snapshotter: Any) -> None:
    # The class said Delete, but the backup switched its content to Retain once ready.
    assert backed_up["snapshot"]["snapshot_handle"] in snapshotter.storage
    assert backed_up["snapshot"]["deletion_policy"] == "Delete"


def test_restore_on_the_same_cluster_recreates_the_snapshot_and_restores_the_claim_from_it(
    backed_up: dict[str, Any], kube_client: KubeClient
) -> None:
    result = RestoreService(backed_up["reader"], kube_client).run(backed_up["manifest"], RestoreOptions())
    try:
        assert result.state == RestoreState.COMPLETED, result.failures
        _restored_claim(kube_client, backed_up, backed_up["namespace"])
    finally:
        kube_client.delete_namespace(backed_up["namespace"])


def test_restore_into_another_namespace(backed_up: dict[str, Any], kube_client: KubeClient) -> None:
    target = f"lbt-{uuid.uuid4().hex[:8]}"
    options = RestoreOptions(namespace_mapping={backed_up["namespace"]: target})
    result = RestoreService(backed_up["reader"], kube_client).run(backed_up["manifest"], options)
    try:
        assert result.state == RestoreState.COMPLETED, result.failures
        _restored_claim(kube_client, backed_up, target)
    finally:
        kube_client.delete_namespace(target)


def test_restore_into_another_cluster_preprovisions_the_content_from_the_handle(
    backed_up: dict[str, Any], snapshotter: Any
) -> None:
    with KubeAPIServer(namespace_delete_delay=0, snapshotter=True) as other:
        other.snapshotter.storage = snapshotter.storage  # the same storage system (one EBS region)
        client = KubeClient.from_kubeconfig(_yaml(other))
        result = RestoreService(backed_up["reader"], client).run(backed_up["manifest"], RestoreOptions())
        assert result.state == RestoreState.COMPLETED, result.failures
        _restored_claim(client, backed_up, backed_up["namespace"])
        content = client.get("/apis/snapshot.storage.k8s.io/v1/volumesnapshotcontents")["items"]
        assert [c["spec"]["source"] for c in content] == [{"snapshotHandle": backed_up["snapshot"]["snapshot_handle"]}]
        assert content[0]["spec"]["deletionPolicy"] == "Retain"


def test_the_dry_run_plan_says_per_claim_which_snapshot_or_why_not(
    backed_up: dict[str, Any], kube_client: KubeClient
) -> None:
    result = RestoreService(backed_up["reader"], kube_client).run(backed_up["manifest"], RestoreOptions(dry_run=True))
    assert result.plan is not None
    items = {(i["kind"], i["name"]): i for level in result.plan["levels"] for i in level}
    snap = backed_up["snapshot"]
    assert items[("PersistentVolumeClaim", "data")]["detail"].startswith(
        f"restored from VolumeSnapshot {snap['snapshot_name']} (content {snap['content_name']}-restore-"
    )
    assert "restored empty" in items[("PersistentVolumeClaim", "pending")]["detail"]
    assert "not bound" in items[("PersistentVolumeClaim", "pending")]["detail"]
    assert items[("VolumeSnapshot", snap["snapshot_name"])]["action"] == "create"
    assert items[("PersistentVolume", backed_up["pv"])]["action"] == "skip"


def _yaml(server: KubeAPIServer) -> str:
    import yaml

    return yaml.safe_dump(server.kubeconfig())
