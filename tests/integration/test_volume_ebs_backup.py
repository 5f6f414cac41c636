"""Backups with EBS direct snapshots: moto's EC2 (both regions) and the Kubernetes API test server's claims."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pytest

from chalicelib.aws.ec2 import Ec2Snapshot, Ec2Snapshots
from chalicelib.backup.worker import handle_message
from chalicelib.core.jobs import BackupJob, ClusterRef
from chalicelib.core.resources import Resource
from chalicelib.core.scope import BackupScope
from chalicelib.core.volume_snapshots import VolumeSettings
from chalicelib.services import Services
from chalicelib.settings import Settings
from chalicelib.snapshots.ebs import EbsSnapshots
from tests.conftest import TEST_BUCKET, TEST_REGION, TEST_TABLE
from tests.support.clocks import Clock
from tests.support.sharded import ListQueue
from tests.support.volumes import claim

pytestmark = pytest.mark.fakeonly

REPLICA_REGION = "us-west-2"
REPLICA_KEY = "alias/lifeboat-replica"
VERBS = frozenset({"create", "delete", "get", "list"})
PVC = Resource("", "v1", "PersistentVolumeClaim", "persistentvolumeclaims", True, VERBS)
PV = Resource("", "v1", "PersistentVolume", "persistentvolumes", False, VERBS)


@pytest.fixture
def services(bucket: str, table: str) -> Services:
    settings = Settings(
        table=TEST_TABLE,
        bucket=TEST_BUCKET,
        region=TEST_REGION,
        replica_region=REPLICA_REGION,
        replica_kms_key_id=REPLICA_KEY,
    )
    return Services(settings)


@pytest.fixture
def clock() -> Clock:
    return Clock(datetime.now(UTC).replace(microsecond=0))


@pytest.fixture
def queue() -> ListQueue:
    return ListQueue()


def ebs_volume(name: str, namespace: str, claim_name: str, volume_id: str, *, in_tree: bool = False) -> dict[str, Any]:
    source: dict[str, Any] = (
        {"awsElasticBlockStore": {"volumeID": f"aws://{TEST_REGION}a/{volume_id}", "fsType": "ext4"}}
        if in_tree
        else {"csi": {"driver": "ebs.csi.aws.com", "volumeHandle": volume_id}}
    )
    return {
        "apiVersion": "v1",
        "kind": "PersistentVolume",
        "metadata": {"name": name},
        "spec": {
            "capacity": {"storage": "8Gi"},
            "accessModes": ["ReadWriteOnce"],
            "persistentVolumeReclaimPolicy": "Retain",
            "claimRef": {
                "apiVersion": "v1",
                "kind": "PersistentVolumeClaim",
                "namespace": namespace,
                "name": claim_name,
            },
            **source,
        },
    }


@pytest.fixture
def ebs_claims(services: Services, kube_client: Any, test_namespace: str) -> Iterator[dict[str, str]]:
    """Two claims on moto EBS volumes: ``data`` (the EBS CSI driver) and ``legacy`` (in-tree awsElasticBlockStore)."""
    ec2 = services.client("ec2", TEST_REGION)
    volumes, made = {}, []
    for name, in_tree in (("data", False), ("legacy", True)):
        volume_id = ec2.create_volume(AvailabilityZone=f"{TEST_REGION}a", Size=8)["VolumeId"]
        pv = f"pv-{test_namespace}-{name}"
        kube_client.create(PV, ebs_volume(pv, test_namespace, name, volume_id, in_tree=in_tree))
        kube_client.create(PVC, claim(name, pv, "8Gi"), namespace=test_namespace)
        volumes[name] = volume_id
        made.append(pv)
    yield volumes
    for pv in made:
        kube_client.delete(PV, pv)


def ebs_job(kubeconfig_path: Any, namespace: str, **volumes: Any) -> BackupJob:
    auth = {"type": "kubeconfig", "kubeconfig": kubeconfig_path.read_text()}
    return BackupJob(
        job_id=f"t-{uuid.uuid4()}",
        cluster=ClusterRef("ebs-cluster", auth),
        scope=BackupScope(include_namespaces=(namespace,)),
        shard=False,
        volumes=VolumeSettings.from_dict({"mode": "ebs", **volumes}),
    )


def manifest_of(services: Services, record: Any) -> Any:
    from chalicelib.repository import RepositoryReader

    return RepositoryReader(services.repository()).load_manifest(record.cluster, record.backup_id)


def by_pvc(manifest: Any) -> dict[str, dict[str, Any]]:
    return {r["pvc"]: r for r in manifest.volume_snapshots}


def snapshots_of(services: Services, region: str, backup_id: str) -> list[Ec2Snapshot]:
    return services.ec2_snapshots(region).tagged("lifeboat.io/backup-id", backup_id)


def test_an_ebs_backup_snapshots_each_claim_copies_it_and_records_both_ids(
    services, kubeconfig_path, test_namespace, ebs_claims, queue, clock
):
    record = services.backup_service(queue=queue, clock=clock).run(ebs_job(kubeconfig_path, test_namespace)).record
    assert record.state == "Completed", record.errors
    records = by_pvc(manifest_of(services, record))
    primary = {s.snapshot_id: s for s in snapshots_of(services, TEST_REGION, record.backup_id)}
    replica = {s.snapshot_id: s for s in snapshots_of(services, REPLICA_REGION, record.backup_id)}
    assert len(primary) == len(replica) == 2
    for name in ("data", "legacy"):
        rec = records[name]
        assert rec["type"] == "ebs" and rec["state"] == "ready", rec
        assert rec["volume_id"] == ebs_claims[name] and rec["region"] == TEST_REGION
        assert rec["restore_size"] == "8Gi" and rec["ready_at"]
        snap = primary[rec["snapshot_handle"]]
        assert snap.volume_id == ebs_claims[name]
        assert snap.tags["lifeboat.io/backup-id"] == record.backup_id
        assert snap.tags["lifeboat.io/cluster"] == "ebs-cluster"
        assert snap.tags["lifeboat.io/persistent-volume-claim"] == f"{test_namespace}/{name}"
        assert snap.tags["lifeboat.io/managed-by"] == "lifeboat"
        (copy,) = rec["copies"]
        assert copy["region"] == REPLICA_REGION and copy["snapshot_id"] in replica
        assert replica[copy["snapshot_id"]].tags["lifeboat.io/copy-of"] == f"{TEST_REGION}/{rec['snapshot_handle']}"
    described = services.client("ec2", REPLICA_REGION).describe_snapshots(SnapshotIds=list(replica))["Snapshots"]
    assert all(s["Encrypted"] and s["KmsKeyId"] == REPLICA_KEY for s in described)
    assert records["legacy"]["driver"] == "kubernetes.io/aws-ebs"
    entries = {e.snapshot_id: e for e in services.ebs_snapshot_catalog().of_backup("ebs-cluster", record.backup_id)}
    assert {entries[i].state for i in primary} == {"completed"}
    assert {entries[i].state for i in replica} == {"pending"}, "a copy is pending until its event or the poller"
    assert record.counts["volume_snapshots"] == 2


class Killed(BaseException):
    """The invocation dies (a Lambda timeout): nothing of it gets to record anything."""


def test_a_redelivered_ebs_job_does_not_create_a_second_snapshot(
    services, kubeconfig_path, test_namespace, ebs_claims, queue, clock, monkeypatch
):
    job = ebs_job(kubeconfig_path, test_namespace)
    original = EbsSnapshots.observe
    calls = {"n": 0}

    def dies_once(self: EbsSnapshots, *args: Any) -> Any:
        calls["n"] += 1
        if calls["n"] == 1:
            raise Killed
        return original(self, *args)

    monkeypatch.setattr(EbsSnapshots, "observe", dies_once)
    service = services.backup_service(queue=queue, clock=clock)
    with pytest.raises(Killed):
        service.run(job)
    made = services.ec2_snapshots(TEST_REGION).tagged("lifeboat.io/backup-id")  # moto is fresh for each test
    assert len(made) == 2, "both snapshots were started before the invocation died"

    clock.advance(seconds=301)  # the dead worker's heartbeat goes stale; the queue delivers the job again
    outcome = service.run(job)
    assert outcome.record.state == "Completed", outcome.record.errors
    again = snapshots_of(services, TEST_REGION, outcome.record.backup_id)
    assert sorted(s.snapshot_id for s in again) == sorted(s.snapshot_id for s in made)
    assert len(snapshots_of(services, REPLICA_REGION, outcome.record.backup_id)) == 2
    handles = {r["snapshot_handle"] for r in manifest_of(services, outcome.record).volume_snapshots}
    assert handles == {s.snapshot_id for s in made}


@pytest.fixture
def pending_snapshots(monkeypatch: pytest.MonkeyPatch) -> dict[str, bool]:
    """While ``held["pending"]``, EC2 says every snapshot is still pending (moto completes them at once)."""
    held = {"pending": True}
    original = Ec2Snapshots.describe

    def describe(self: Ec2Snapshots, snapshot_ids: Any) -> dict[str, Ec2Snapshot]:
        seen = original(self, snapshot_ids)
        if held["pending"]:
            return {
                k: Ec2Snapshot(v.snapshot_id, v.region, "pending", v.volume_id, v.size_gib, "", v.started_at, v.tags)
                for k, v in seen.items()
            }
        return seen

    monkeypatch.setattr(Ec2Snapshots, "describe", describe)
    return held


def snapshot_event(event: str, result: str, snapshot_id: str, region: str, source: str, cause: str = "") -> dict:
    """An "EBS Snapshot Notification" as the Amazon EBS user guide documents it."""
    return {
        "version": "0",
        "id": str(uuid.uuid4()),
        "detail-type": "EBS Snapshot Notification",
        "source": "aws.ec2",
        "account": "123456789012",
        "time": "2026-12-02T01:00:00Z",
        "region": region,
        "resources": [f"arn:aws:ec2::{region}:snapshot/{snapshot_id}"],
        "detail": {
            "event": event,
            "result": result,
            "cause": cause,
            "request-id": "",
            "snapshot_id": f"arn:aws:ec2::{region}:snapshot/{snapshot_id}",
            "source": source,
            "startTime": "2026-12-02T00:59:00Z",
            "endTime": "2026-12-02T01:00:00Z",
        },
    }


@pytest.fixture
def app_client(services: Services) -> Iterator[Any]:
    from chalice.test import Client

    import app as app_module
    from chalicelib import services as services_module

    services_module.set_services(services)
    try:
        with Client(app_module.app) as client:
            yield client
    finally:
        services_module.set_services(None)


def invoke_event(app_client: Any, event: dict[str, Any]) -> dict[str, Any]:
    return app_client.lambda_.invoke("ebs_snapshot_events", event).payload  # type: ignore[no-any-return]


def test_a_failed_snapshot_event_makes_the_backup_partially_failed_naming_the_claim(
    services, kubeconfig_path, test_namespace, ebs_claims, queue, clock, pending_snapshots, app_client
):
    service = services.backup_service(queue=queue, clock=clock)
    first = handle_message(service, ebs_job(kubeconfig_path, test_namespace).to_dict())
    assert first["status"] == "Running", first
    assert [m["type"] for m, _ in queue.sent] == ["volumes"]
    snaps = {
        s.tags["lifeboat.io/persistent-volume-claim"]: s
        for s in snapshots_of(services, TEST_REGION, first["backup_id"])
    }
    failed, ok = snaps[f"{test_namespace}/data"], snaps[f"{test_namespace}/legacy"]

    volume_arn = f"arn:aws:ec2::{TEST_REGION}:volume/{failed.volume_id}"
    reply = invoke_event(
        app_client,
        snapshot_event("createSnapshot", "failed", failed.snapshot_id, TEST_REGION, volume_arn, cause="Internal error"),
    )
    assert reply["outcome"] == "failed" and reply["backup_id"] == first["backup_id"]
    reply = invoke_event(
        app_client,
        snapshot_event(
            "createSnapshot",
            "succeeded",
            ok.snapshot_id,
            TEST_REGION,
            f"arn:aws:ec2::{TEST_REGION}:volume/{ok.volume_id}",
        ),
    )
    assert reply["outcome"] == "completed"

    clock.advance(seconds=30)
    done = handle_message(service, queue.messages.popleft())
    assert done["status"] == "PartiallyFailed", done
    record = services.catalog().get("ebs-cluster", first["backup_id"])
    assert [e["error"] for e in record.errors] == [
        f"volume snapshot of {test_namespace}/data failed: EBS snapshot {failed.snapshot_id} failed: Internal error"
    ]
    records = by_pvc(manifest_of(services, record))
    assert records["data"]["state"] == "failed" and "copies" not in records["data"]
    assert records["legacy"]["state"] == "ready" and records["legacy"]["copies"][0]["snapshot_id"]


def test_without_an_event_the_wait_polls_ec2_and_the_poller_settles_the_copies(
    services, kubeconfig_path, test_namespace, ebs_claims, queue, clock, pending_snapshots, app_client
):
    service = services.backup_service(queue=queue, clock=clock)
    first = handle_message(service, ebs_job(kubeconfig_path, test_namespace).to_dict())
    clock.advance(seconds=30)
    assert handle_message(service, queue.messages.popleft())["status"] == "waiting"
    pending_snapshots["pending"] = False  # EC2 finished; no notification came
    clock.advance(seconds=30)
    assert handle_message(service, queue.messages.popleft())["status"] == "Completed"
    catalog = services.ebs_snapshot_catalog()
    copies = [e for e in catalog.of_backup("ebs-cluster", first["backup_id"]) if e.kind == "copy"]
    assert len(copies) == 2 and {c.state for c in copies} == {"pending"}

    tick = app_client.events.generate_cw_event(
        source="aws.events", detail_type="Scheduled Event", detail={}, resources=[]
    )
    polled = app_client.lambda_.invoke("ebs_snapshot_poller", tick).payload
    assert polled["completed"] == 2
    copies = [e for e in catalog.of_backup("ebs-cluster", first["backup_id"]) if e.kind == "copy"]
    assert {c.state for c in copies} == {"completed"}
    assert all(c.region == REPLICA_REGION and c.source_region == TEST_REGION for c in copies)


def test_a_copy_event_records_the_copy_and_an_unknown_snapshot_is_ignored(
    services, kubeconfig_path, test_namespace, ebs_claims, queue, clock, app_client
):
    record = services.backup_service(queue=queue, clock=clock).run(ebs_job(kubeconfig_path, test_namespace)).record
    copy = by_pvc(manifest_of(services, record))["data"]["copies"][0]["snapshot_id"]
    source = by_pvc(manifest_of(services, record))["data"]["snapshot_handle"]
    event = snapshot_event(
        "copySnapshot", "succeeded", copy, REPLICA_REGION, f"arn:aws:ec2::{TEST_REGION}:snapshot/{source}"
    )
    assert invoke_event(app_client, event)["outcome"] == "completed"
    assert invoke_event(app_client, event)["outcome"] == "completed", "a repeated event changes nothing"
    entry = services.ebs_snapshot_catalog().get("ebs-cluster", record.backup_id, copy)
    assert entry is not None and entry.state == "completed" and entry.source_snapshot_id == source

    ec2 = services.client("ec2", TEST_REGION)
    volume = ec2.create_volume(AvailabilityZone=f"{TEST_REGION}a", Size=1)["VolumeId"]
    stranger = ec2.create_snapshot(VolumeId=volume)["SnapshotId"]
    reply = invoke_event(app_client, snapshot_event("createSnapshot", "succeeded", stranger, TEST_REGION, volume))
    assert reply["outcome"] == "ignored" and "not a backup's snapshot" in reply["reason"]
    assert invoke_event(app_client, {**event, "detail-type": "EBS Volume Notification"})["outcome"] == "ignored"


def test_backups_describe_lists_every_volume_with_its_snapshot_size_and_copies(
    services, kubeconfig_path, test_namespace, ebs_claims, queue, clock, app_client, capsys
):
    import json

    from chalicelib.cli.main import main

    record = services.backup_service(queue=queue, clock=clock).run(ebs_job(kubeconfig_path, test_namespace)).record
    records = by_pvc(manifest_of(services, record))
    copy = records["data"]["copies"][0]["snapshot_id"]
    source = f"arn:aws:ec2::{TEST_REGION}:snapshot/{records['data']['snapshot_handle']}"
    invoke_event(app_client, snapshot_event("copySnapshot", "succeeded", copy, REPLICA_REGION, source))
    aws = ["--table", TEST_TABLE, "--bucket", TEST_BUCKET, "--region", TEST_REGION]

    capsys.readouterr()
    assert main(["backups", "describe", record.backup_id, *aws, "--output", "json"]) == 0
    volumes = {v["claim"]: v for v in json.loads(capsys.readouterr().out)["volumes"]}
    data = volumes[f"{test_namespace}/data"]
    assert (data["mode"], data["state"], data["size"]) == ("ebs", "ready", "8Gi")
    assert data["snapshot"] == f"{records['data']['snapshot_handle']} ({TEST_REGION})"
    assert data["copies"] == [{"region": REPLICA_REGION, "snapshot_id": copy, "state": "completed"}]
    assert volumes[f"{test_namespace}/legacy"]["copies"][0]["state"] == "pending"

    assert main(["backups", "describe", record.backup_id, *aws]) == 0
    text = capsys.readouterr().out
    table = text[text.index("Volumes") :]
    header = next(line for line in table.splitlines() if "┃" in line)
    assert [c.strip() for c in header.split("┃")[1:-1]] == ["claim", "mode", "state", "snapshot", "size", "copies"]
    # Cells may fold over lines: each column's text, read down the table, holds its values whole.
    cells = [line.split("│")[1:-1] for line in table.splitlines() if "│" in line]
    column = ["".join(row[i].strip() for row in cells) for i in range(6)]
    for name in ("data", "legacy"):
        assert f"{test_namespace}/{name}" in column[0]
        assert records[name]["snapshot_handle"] in column[3], table
        assert records[name]["copies"][0]["snapshot_id"] in column[5], table
    assert column[1] == "ebsebs" and column[2] == "readyready" and column[4] == "8Gi8Gi"
    assert "completed" in column[5] and "pending" in column[5]
