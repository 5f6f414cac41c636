"""Retention deletes an expired backup's EBS snapshots in both regions; kept, young and running ones stay."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from chalicelib.core.volume_ebs import BACKUP_ID_TAG, CLUSTER_TAG, MANAGED_BY, MANAGED_BY_TAG
from chalicelib.maintenance.snapshots import SnapshotCollector
from chalicelib.repository import RepositoryReader
from chalicelib.repository.reach import volume_snapshots_of
from chalicelib.services import Services
from tests.conftest import TEST_REGION
from tests.integration import test_volume_ebs_backup as ebs
from tests.integration.test_volume_ebs_backup import REPLICA_REGION, ebs_job, snapshots_of

pytestmark = pytest.mark.fakeonly
services, ebs_claims, queue, clock = ebs.services, ebs.ebs_claims, ebs.queue, ebs.clock


def _collector(services: Services, margin: timedelta) -> SnapshotCollector:
    return SnapshotCollector(
        lambda: [],
        services.connect,
        services.catalog(),
        safety_margin=margin,
        ebs=lambda: [services.ec2_snapshots(TEST_REGION), services.ec2_snapshots(REPLICA_REGION)],
    )


def test_an_expired_backups_ebs_snapshots_go_in_both_regions_and_the_kept_ones_stay(
    services: Services, kubeconfig_path: Any, test_namespace: str, ebs_claims: Any, queue: Any, clock: Any
) -> None:
    service = services.backup_service(queue=queue, clock=clock)
    old = service.run(ebs_job(kubeconfig_path, test_namespace)).record
    kept = service.run(ebs_job(kubeconfig_path, test_namespace)).record
    assert old.state == kept.state == "Completed"
    reader = RepositoryReader(services.repository())
    manifests = [reader.load_manifest(r.cluster, r.backup_id) for r in (old, kept)]
    refs = volume_snapshots_of(manifests)
    assert {r.region for r in refs} == {TEST_REGION, REPLICA_REGION}, "copies are nodes of the walk"
    assert len(refs) == 8  # 2 backups x 2 claims x (snapshot + copy)

    # An orphan: tagged by a backup that never committed (and whose record is gone), and a young one.
    ec2 = services.client("ec2", TEST_REGION)
    volume = ec2.create_volume(AvailabilityZone=f"{TEST_REGION}a", Size=1)["VolumeId"]
    tags = [
        {"Key": BACKUP_ID_TAG, "Value": "20260101T000000Z-dead00"},
        {"Key": CLUSTER_TAG, "Value": "ebs-cluster"},
        {"Key": MANAGED_BY_TAG, "Value": MANAGED_BY},
    ]
    orphan = ec2.create_snapshot(VolumeId=volume, TagSpecifications=[{"ResourceType": "snapshot", "Tags": tags}])

    later = datetime.now(UTC) + timedelta(hours=2)
    young = _collector(services, timedelta(days=1)).collect(
        reader, now=later, exclude_manifests={(old.cluster, old.backup_id)}
    )
    assert young.swept == () and young.kept_young >= 5, "nothing younger than the margin goes"

    dry = _collector(services, timedelta(hours=1)).collect(
        reader, now=later, dry_run=True, exclude_manifests={(old.cluster, old.backup_id)}
    )
    assert {s.outcome for s in dry.swept} == {"would_delete"} and len(dry.swept) == 5
    assert len(snapshots_of(services, TEST_REGION, old.backup_id)) == 2, "a dry run deletes nothing"

    report = _collector(services, timedelta(hours=1)).collect(
        reader, now=later, exclude_manifests={(old.cluster, old.backup_id)}
    )
    swept = {(s.region, s.name): s for s in report.swept}
    assert {s.outcome for s in swept.values()} == {"deleted"} and len(swept) == 5
    assert {s.backup_id for s in swept.values()} == {old.backup_id, "20260101T000000Z-dead00"}
    assert (TEST_REGION, orphan["SnapshotId"]) in swept, "an orphan older than the margin is reported and removed"
    assert snapshots_of(services, TEST_REGION, old.backup_id) == []
    assert snapshots_of(services, REPLICA_REGION, old.backup_id) == []
    assert len(snapshots_of(services, TEST_REGION, kept.backup_id)) == 2
    assert len(snapshots_of(services, REPLICA_REGION, kept.backup_id)) == 2


def test_a_snapshot_a_kept_backup_records_is_never_deleted_whoever_tagged_it(
    services: Services, kubeconfig_path: Any, test_namespace: str, ebs_claims: Any, queue: Any, clock: Any
) -> None:
    service = services.backup_service(queue=queue, clock=clock)
    kept = service.run(ebs_job(kubeconfig_path, test_namespace)).record
    reader = RepositoryReader(services.repository())
    shared = reader.load_manifest(kept.cluster, kept.backup_id).volume_snapshots[0]
    # Re-tag the kept backup's snapshot and its copy as another (expired) backup's: a snapshot two backups share.
    for region, snapshot_id in (
        (TEST_REGION, shared["snapshot_handle"]),
        (REPLICA_REGION, shared["copies"][0]["snapshot_id"]),
    ):
        services.client("ec2", region).create_tags(
            Resources=[snapshot_id], Tags=[{"Key": BACKUP_ID_TAG, "Value": "20260101T000000Z-gone00"}]
        )
    report = _collector(services, timedelta(0)).collect(reader, now=datetime.now(UTC) + timedelta(hours=1))
    assert report.swept == ()
    assert services.ec2_snapshots(TEST_REGION).describe([shared["snapshot_handle"]])


def test_a_running_backups_snapshots_are_kept(
    services: Services,
    kubeconfig_path: Any,
    test_namespace: str,
    ebs_claims: Any,
    queue: Any,
    clock: Any,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from chalicelib.aws.ec2 import Ec2Snapshot, Ec2Snapshots

    original = Ec2Snapshots.describe
    monkeypatch.setattr(
        Ec2Snapshots,
        "describe",
        lambda self, ids: {
            k: Ec2Snapshot(v.snapshot_id, v.region, "pending", tags=v.tags) for k, v in original(self, ids).items()
        },
    )
    started = services.backup_service(queue=queue, clock=clock).run(ebs_job(kubeconfig_path, test_namespace)).record
    assert started.state == "Running"
    reader = RepositoryReader(services.repository())
    report = _collector(services, timedelta(0)).collect(reader, now=datetime.now(UTC) + timedelta(hours=1))
    assert report.swept == () and report.kept_running == 2
