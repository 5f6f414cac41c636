"""Retention and the daily maintenance delete the volume snapshots no remaining backup references, and no others."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from chalicelib.core.jobs import BackupJob, ClusterRef
from chalicelib.core.scope import BackupScope
from chalicelib.core.volume_snapshots import BACKUP_ID_LABEL
from chalicelib.maintenance.snapshots import SnapshotCollector
from chalicelib.repository import RepositoryReader
from chalicelib.services import Services
from chalicelib.snapshots.csi import CONTENTS as VSC
from tests.integration.test_volume_backup import PV, PVC, VS, VSCLASS
from tests.support.clocks import Clock
from tests.support.sharded import ListQueue
from tests.support.volumes import claim, preprovisioned_content, snapshot, snapshot_class, volume

pytestmark = pytest.mark.fakeonly
CLUSTER = "vol-life"
VSC_PATH = "/apis/snapshot.storage.k8s.io/v1/volumesnapshotcontents"


@pytest.fixture
def world(services: Services, kubeconfig_path: Any, kube_client: Any, fake_kube: Any) -> Any:
    """Three daily backups of a namespace with one claim, under a policy keeping the last one."""
    snap = fake_kube.snapshotter
    snap.enabled, snap.ready_delay = True, 0.0
    namespace, klass = f"lbl-{uuid.uuid4().hex[:8]}", f"snap-{uuid.uuid4().hex[:6]}"
    pv = f"pv-{namespace}"
    kube_client.create(VSCLASS, snapshot_class(klass, policy="Delete"))
    kube_client.create_namespace(namespace)
    kube_client.create(PV, volume(pv, namespace, "data"))
    kube_client.create(PVC, claim("data", pv), namespace=namespace)
    auth = {"type": "kubeconfig", "kubeconfig": kubeconfig_path.read_text()}
    clock = Clock(datetime.now(UTC).replace(microsecond=0) - timedelta(days=3))
    services.cluster_catalog().register(CLUSTER, auth, kubernetes_version="v1.31.0", now=clock())
    policy = {
        "name": "snaps",
        "cluster": CLUSTER,
        "schedule": {"cron": "0 2 * * *"},
        "scope": {"include_namespaces": [namespace]},
        "retention": {"keep_last": 1},
        "volumes": {"mode": "csi", "class": klass},
    }
    services.policy_service().apply_document({"policies": [policy]})
    stored = services.policy_catalog().get("snaps").policy
    service = services.backup_service(queue=ListQueue(), clock=clock)
    records = []
    for _ in range(3):
        job = BackupJob(
            f"t-{uuid.uuid4()}",
            ClusterRef(CLUSTER, auth),
            BackupScope(include_namespaces=(namespace,)),
            policy="snaps",
            shard=False,
            volumes=stored.volumes,
        )
        records.append(service.run(job).record)
        assert records[-1].state == "Completed", records[-1].errors
        clock.advance(days=1)
    reader = RepositoryReader(services.repository())
    snaps = [reader.load_manifest(CLUSTER, r.backup_id).volume_snapshots[0] for r in records]
    yield {"namespace": namespace, "records": records, "snaps": snaps, "snapshotter": snap}
    snap.enabled = False
    kube_client.delete_namespace(namespace)
    kube_client.delete(PV, pv)
    kube_client.delete(VSCLASS, klass)


def _maintenance(services: Services) -> Any:
    collector = SnapshotCollector(
        lambda: [ClusterRef(c.name, c.auth) for c in services.cluster_catalog().list() if c.auth],
        services.connect,
        services.catalog(),
        safety_margin=timedelta(0),
    )
    return services.maintenance_service(snapshots=collector)


def _contents(kube_client: Any) -> dict[str, dict[str, Any]]:
    return {c["metadata"]["name"]: c for c in kube_client.get(VSC_PATH)["items"]}


def test_retention_deletes_expired_backups_snapshots_and_orphans_and_keeps_referenced_ones(
    services: Services, kube_client: Any, world: Any
) -> None:
    namespace, snaps, storage = world["namespace"], world["snaps"], world["snapshotter"].storage
    expired_ids = [r.backup_id for r in world["records"][:2]]
    kept = snaps[2]
    # An orphan: a snapshot labelled by a backup that never committed (no record, no manifest).
    orphan = snapshot("lifeboat-orphan", "data", snaps[0]["class"])
    orphan["metadata"]["labels"] = {BACKUP_ID_LABEL: "20200101T000000Z-dead00"}
    kube_client.create(VS, orphan, namespace=namespace)
    # A content an expired backup labelled but whose storage snapshot a kept backup records: it must stay.
    shared = preprovisioned_content(f"shared-{namespace}", kept["snapshot_handle"], namespace, "elsewhere")
    shared["metadata"]["labels"] = {BACKUP_ID_LABEL: expired_ids[0]}
    kube_client.create(VSC, shared)

    dry = _maintenance(services).run(dry_run=True)
    assert dry.snapshots is not None
    assert {s.outcome for s in dry.snapshots.swept} == {"would_delete"}
    assert {s.name for s in dry.snapshots.swept if s.kind == "VolumeSnapshot"} == {
        snaps[0]["snapshot_name"],
        snaps[1]["snapshot_name"],
        "lifeboat-orphan",
    }
    assert kube_client.get_object(VS, snaps[0]["snapshot_name"], namespace) is not None, "a dry run deletes nothing"

    report = _maintenance(services).run()
    assert report.snapshots is not None and not report.snapshots.unreachable
    assert sorted(e.backup_id for e in report.expired if e.outcome == "expired") == sorted(expired_ids)
    for old in snaps[:2]:
        assert kube_client.get_object(VS, old["snapshot_name"], namespace) is None
        assert old["content_name"] not in _contents(kube_client)
        assert old["snapshot_handle"] not in storage, "the class said Delete: the storage snapshot goes too"
    assert kube_client.get_object(VS, "lifeboat-orphan", namespace) is None
    assert kube_client.get_object(VS, kept["snapshot_name"], namespace) is not None
    assert kept["content_name"] in _contents(kube_client) and kept["snapshot_handle"] in storage
    assert f"shared-{namespace}" in _contents(kube_client), "its handle is referenced by a kept backup"
    contents = [s for s in report.snapshots.swept if s.kind == "VolumeSnapshotContent"]
    assert {(s.name, s.outcome, s.storage) for s in contents} >= {
        (snaps[0]["content_name"], "deleted", "deleted"),
        (snaps[1]["content_name"], "deleted", "deleted"),
    }


def test_snapshots_younger_than_the_safety_margin_are_kept(services: Services, kube_client: Any, world: Any) -> None:
    report = services.maintenance_service().run()
    assert report.snapshots is not None
    assert report.snapshots.swept == () and report.snapshots.kept_young >= 4  # two snapshots, two contents
    for old in world["snaps"][:2]:
        assert kube_client.get_object(VS, old["snapshot_name"], world["namespace"]) is not None
