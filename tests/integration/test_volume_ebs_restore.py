"""Restoring claims from EBS direct snapshots: from the replica region with the primary bucket and snapshots gone."""

from __future__ import annotations

import time
from typing import Any

import pytest

from chalicelib.core.restore_options import RestoreOptions
from chalicelib.kube import KubeClient
from chalicelib.repository import RepositoryReader
from chalicelib.restore import RestoreService, RestoreState
from chalicelib.services import Services
from chalicelib.settings import Settings
from sandbox.kubeapi import KubeAPIServer
from sandbox.kubeapi.snapshotter import StorageSnapshot
from tests.conftest import TEST_BUCKET, TEST_REGION, TEST_TABLE
from tests.integration import test_volume_ebs_backup as ebs
from tests.integration.test_volume_backup import VS
from tests.integration.test_volume_ebs_backup import PVC, REPLICA_REGION, by_pvc, ebs_job

pytestmark = pytest.mark.fakeonly
# The EBS backup tests' fixtures: services with a replica region, claims on moto EBS volumes, the queue and clock.
services, ebs_claims, queue, clock = ebs.services, ebs.ebs_claims, ebs.queue, ebs.clock
REPLICA_BUCKET = "lifeboat-test-replica"
CONTENTS = "/apis/snapshot.storage.k8s.io/v1/volumesnapshotcontents"


def _copy_repository(s3_primary: Any, s3_replica: Any) -> None:
    """The replica bucket as replication leaves it: every object of the primary, byte for byte (replication itself
    is tested in test_replication.py)."""
    s3_replica.create_bucket(Bucket=REPLICA_BUCKET, CreateBucketConfiguration={"LocationConstraint": REPLICA_REGION})
    for page in s3_primary.get_paginator("list_objects_v2").paginate(Bucket=TEST_BUCKET):
        for obj in page.get("Contents", []):
            body = s3_primary.get_object(Bucket=TEST_BUCKET, Key=obj["Key"])["Body"].read()
            s3_replica.put_object(Bucket=REPLICA_BUCKET, Key=obj["Key"], Body=body)
            s3_primary.delete_object(Bucket=TEST_BUCKET, Key=obj["Key"])
    s3_primary.delete_bucket(Bucket=TEST_BUCKET)


def _wait_ready(client: KubeClient, name: str, namespace: str) -> dict[str, Any]:
    deadline = time.monotonic() + 5
    while True:
        snap = client.get_object(VS, name, namespace) or {}
        if (snap.get("status") or {}).get("readyToUse") or (snap.get("status") or {}).get("error"):
            return snap
        assert time.monotonic() < deadline, snap
        time.sleep(0.05)


def test_restore_from_the_replica_region_uses_the_copies_when_the_primary_region_is_gone(
    services: Services, kubeconfig_path: Any, test_namespace: str, ebs_claims: dict[str, str], queue: Any, clock: Any
) -> None:
    record = services.backup_service(queue=queue, clock=clock).run(ebs_job(kubeconfig_path, test_namespace)).record
    assert record.state == "Completed", record.errors
    primary_reader = RepositoryReader(services.repository())
    records = by_pvc(primary_reader.load_manifest(record.cluster, record.backup_id))
    copies = {name: rec["copies"][0]["snapshot_id"] for name, rec in records.items()}

    # The primary region is lost: its bucket and its snapshots.
    _copy_repository(services.client("s3", TEST_REGION), services.client("s3", REPLICA_REGION))
    primary_ec2 = services.ec2_snapshots(TEST_REGION)
    for rec in records.values():
        assert primary_ec2.delete(rec["snapshot_handle"])
    assert not primary_ec2.describe([r["snapshot_handle"] for r in records.values()])

    in_replica = Services(
        Settings(table=TEST_TABLE, bucket=REPLICA_BUCKET, region=REPLICA_REGION)  # as `lifeboat restore --region`
    )
    reader = RepositoryReader(in_replica.repository())
    manifest = reader.load_manifest(record.cluster, record.backup_id)
    existing = in_replica.ec2_snapshots(REPLICA_REGION).describe(copies.values())
    assert set(existing) == set(copies.values())

    with KubeAPIServer(namespace_delete_delay=0, snapshotter=True) as other:
        # The other cluster's EBS CSI driver sees the replica region's snapshots.
        for snap in existing.values():
            other.snapshotter.storage[snap.snapshot_id] = StorageSnapshot(
                snap.snapshot_id, "ebs.csi.aws.com", snap.volume_id, snap.size_gib << 30, time.time_ns()
            )
        import yaml

        client = KubeClient.from_kubeconfig(yaml.safe_dump(other.kubeconfig()))
        service = RestoreService(reader, client, region=REPLICA_REGION)

        plan = service.run(manifest, RestoreOptions(dry_run=True)).plan
        assert plan is not None
        items = {(i["kind"], i["name"]): i for level in plan["levels"] for i in level}
        for name in ("data", "legacy"):
            detail = items[("PersistentVolumeClaim", name)]["detail"]
            assert detail.startswith(f"restored from VolumeSnapshot {records[name]['snapshot_name']}")
            assert detail.endswith(f"EBS snapshot {copies[name]} in {REPLICA_REGION}"), detail

        result = service.run(manifest, RestoreOptions())
        assert result.state == RestoreState.COMPLETED, result.failures
        contents = {c["spec"]["source"]["snapshotHandle"]: c for c in client.get(CONTENTS)["items"]}
        assert set(contents) == set(copies.values()), "the replica region's copies, never the primary's ids"
        for content in contents.values():
            assert content["spec"]["driver"] == "ebs.csi.aws.com"
            assert content["spec"]["deletionPolicy"] == "Retain"
        for name in ("data", "legacy"):
            pvc = client.get_object(PVC, name, test_namespace)
            assert pvc is not None
            snapshot_name = records[name]["snapshot_name"]
            assert pvc["spec"]["dataSource"] == {
                "apiGroup": "snapshot.storage.k8s.io",
                "kind": "VolumeSnapshot",
                "name": snapshot_name,
            }
            assert _wait_ready(client, snapshot_name, test_namespace)["status"]["readyToUse"] is True


def test_a_restore_in_a_region_without_a_copy_restores_the_claim_empty_saying_why(
    services: Services, kubeconfig_path: Any, test_namespace: str, ebs_claims: dict[str, str], queue: Any, clock: Any
) -> None:
    record = services.backup_service(queue=queue, clock=clock).run(ebs_job(kubeconfig_path, test_namespace)).record
    reader = RepositoryReader(services.repository())
    manifest = reader.load_manifest(record.cluster, record.backup_id)
    with KubeAPIServer(namespace_delete_delay=0, snapshotter=True) as other:
        import yaml

        client = KubeClient.from_kubeconfig(yaml.safe_dump(other.kubeconfig()))
        plan = RestoreService(reader, client, region="eu-west-1").run(manifest, RestoreOptions(dry_run=True)).plan
    assert plan is not None
    items = {(i["kind"], i["name"]): i for level in plan["levels"] for i in level}
    detail = items[("PersistentVolumeClaim", "data")]["detail"]
    assert "restored empty" in detail and "has no copy in eu-west-1" in detail
    assert not any(kind == "VolumeSnapshot" for kind, _ in items)
