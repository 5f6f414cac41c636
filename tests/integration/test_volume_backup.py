"""Backups with CSI volume snapshots against the test server's simulated snapshotter, into emulated AWS."""

from __future__ import annotations

import dataclasses
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pytest

from chalicelib.backup.volumes import draft_key
from chalicelib.backup.worker import handle_message
from chalicelib.core.jobs import BackupJob, ClusterRef
from chalicelib.core.resources import Resource
from chalicelib.core.scope import BackupScope
from chalicelib.core.volume_snapshots import BACKUP_ID_LABEL, VolumeSettings
from chalicelib.services import Services
from chalicelib.snapshots.csi import CsiSnapshots
from sandbox.kubeapi.snapshotter import ERROR, NEVER_READY
from tests.support.clocks import Clock
from tests.support.sharded import ListQueue
from tests.support.volumes import claim, snapshot_class, volume

pytestmark = pytest.mark.fakeonly

VERBS = frozenset({"create", "delete", "get", "list"})
PVC = Resource("", "v1", "PersistentVolumeClaim", "persistentvolumeclaims", True, VERBS)
PV = Resource("", "v1", "PersistentVolume", "persistentvolumes", False, VERBS)
VSCLASS = Resource("snapshot.storage.k8s.io", "v1", "VolumeSnapshotClass", "volumesnapshotclasses", False, VERBS)
VS = Resource("snapshot.storage.k8s.io", "v1", "VolumeSnapshot", "volumesnapshots", True, VERBS)


@pytest.fixture
def snapshotter(fake_kube: Any) -> Iterator[Any]:
    """The shared test server's snapshotter, on for this test only."""
    snap = fake_kube.snapshotter
    snap.enabled, snap.ready_delay = True, 0.0
    snap.clear()
    try:
        yield snap
    finally:
        snap.enabled, snap.ready_delay = False, 0.0
        snap.clear()


@pytest.fixture
def clock() -> Clock:
    return Clock(datetime.now(UTC).replace(microsecond=0))


@pytest.fixture
def queue() -> ListQueue:
    return ListQueue()


@pytest.fixture
def klass(kube_client: Any) -> Iterator[str]:
    name = f"snap-{uuid.uuid4().hex[:6]}"
    kube_client.create(VSCLASS, snapshot_class(name, policy="Retain"))
    yield name
    kube_client.delete(VSCLASS, name)


@pytest.fixture
def claims(kube_client: Any, test_namespace: str) -> Iterator[list[str]]:
    """Two bound CSI claims (data, logs) and an unbound one (pending) in the test namespace."""
    volumes = []
    for name in ("data", "logs"):
        pv = f"pv-{test_namespace}-{name}"
        kube_client.create(PV, volume(pv, test_namespace, name, "1Gi"))
        kube_client.create(PVC, claim(name, pv, "1Gi"), namespace=test_namespace)
        volumes.append(pv)
    kube_client.create(PVC, claim("pending"), namespace=test_namespace)
    yield ["data", "logs", "pending"]
    for pv in volumes:
        kube_client.delete(PV, pv)


def _job(kubeconfig_path: Any, namespace: str, job_id: str | None = None, **volumes: Any) -> BackupJob:
    auth = {"type": "kubeconfig", "kubeconfig": kubeconfig_path.read_text()}
    return BackupJob(
        job_id=job_id or f"t-{uuid.uuid4()}",
        cluster=ClusterRef("vol-cluster", auth),
        scope=BackupScope(include_namespaces=(namespace,)),
        shard=False,
        volumes=VolumeSettings.from_dict({"mode": "auto", **volumes}),
    )


def _manifest(services: Services, record: Any) -> Any:
    from chalicelib.repository import RepositoryReader

    return RepositoryReader(services.repository()).load_manifest(record.cluster, record.backup_id)


def _by_pvc(manifest: Any) -> dict[str, dict[str, Any]]:
    return {r["pvc"]: r for r in manifest.volume_snapshots}


def _wait(service: Any, queue: ListQueue, clock: Clock, step_s: float = 30, limit: int = 200) -> list[dict[str, Any]]:
    """Deliver the queue's volumes messages one by one, each after its delay (the clock advances by it)."""
    import time

    results = []
    for _ in range(limit):
        if not queue.messages:
            return results
        message = queue.messages.popleft()
        clock.advance(seconds=step_s)
        time.sleep(0.05)  # the snapshotter works in real time
        results.append(handle_message(service, message))
    raise AssertionError("the backup never finished waiting")


def test_a_backup_snapshots_every_claim_it_holds_and_records_each(
    services, kubeconfig_path, kube_client, test_namespace, snapshotter, claims, klass, queue, clock
):
    service = services.backup_service(queue=queue, clock=clock)
    record = service.run(_job(kubeconfig_path, test_namespace, **{"class": klass})).record
    assert record.state == "Completed", record.failure or record.errors
    records = _by_pvc(_manifest(services, record))
    assert set(records) == {"data", "logs", "pending"}
    for name in ("data", "logs"):
        rec = records[name]
        assert rec["state"] == "ready"
        assert rec["driver"] == "ebs.csi.aws.com" and rec["class"] == klass
        assert rec["snapshot_handle"].startswith("snap-") and rec["restore_size"] == "1Gi"
        assert rec["content_name"].startswith("snapcontent-") and rec["ready_at"]
        snap = kube_client.get_object(VS, rec["snapshot_name"], test_namespace)
        assert snap["metadata"]["labels"][BACKUP_ID_LABEL] == record.backup_id
        assert snap["spec"]["source"] == {"persistentVolumeClaimName": name}
    assert records["pending"]["state"] == "not-snapshotable"
    assert "not bound" in records["pending"]["reason"]
    assert record.counts["volume_snapshots"] == 2
    assert not queue.sent, "nothing to wait for"


def test_a_backup_waits_for_its_snapshots_across_invocations(
    services, kubeconfig_path, test_namespace, snapshotter, claims, klass, queue, clock
):
    snapshotter.ready_delay = 0.3
    service = services.backup_service(queue=queue, clock=clock)
    first = handle_message(service, _job(kubeconfig_path, test_namespace, **{"class": klass}).to_dict())
    assert first["status"] == "Running"
    assert [m["type"] for m, _ in queue.sent] == ["volumes"]
    assert queue.sent[0][1] == 30, "the next look comes with a delay, not a sleep"
    assert services.repository().store.exists(draft_key("vol-cluster", first["backup_id"]))
    assert services.catalog().get("vol-cluster", first["backup_id"]).manifest_key is None

    results = _wait(service, queue, clock, step_s=1)
    assert results[-1]["status"] == "Completed", results
    record = services.catalog().get("vol-cluster", first["backup_id"])
    records = _by_pvc(_manifest(services, record))
    assert records["data"]["state"] == records["logs"]["state"] == "ready"


def test_a_snapshot_that_never_becomes_ready_fails_its_claim_after_the_timeout(
    services, kubeconfig_path, test_namespace, snapshotter, claims, klass, queue, clock
):
    snapshotter.inject(test_namespace, "logs", NEVER_READY)
    service = services.backup_service(queue=queue, clock=clock)
    job = _job(kubeconfig_path, test_namespace, **{"class": klass, "ready_timeout": 120})
    assert handle_message(service, job.to_dict())["status"] == "Running"
    results = _wait(service, queue, clock, step_s=30)
    assert [r["status"] for r in results[:-1]] == ["waiting"] * (len(results) - 1)
    assert len(results) >= 4, "the wait spans several invocations"
    assert results[-1]["status"] == "PartiallyFailed"
    record = services.catalog().get("vol-cluster", results[-1]["backup_id"])
    assert any(f"{test_namespace}/logs" in e["error"] and "not ready after 120s" in e["error"] for e in record.errors)
    records = _by_pvc(_manifest(services, record))
    assert records["logs"]["state"] == "failed" and records["data"]["state"] == "ready"


def test_a_snapshot_error_makes_the_backup_partially_failed_naming_the_claim(
    services, kubeconfig_path, test_namespace, snapshotter, claims, klass, queue, clock
):
    snapshotter.inject(test_namespace, "data", ERROR, "rpc error: code = Internal desc = volume busy")
    record = (
        services.backup_service(queue=queue, clock=clock)
        .run(_job(kubeconfig_path, test_namespace, **{"class": klass}))
        .record
    )
    assert record.state == "PartiallyFailed"
    assert record.errors == [
        {
            "resource": "persistentvolumeclaims",
            "error": f"volume snapshot of {test_namespace}/data failed: rpc error: code = Internal desc = volume busy",
        }
    ]
    assert _by_pvc(_manifest(services, record))["data"]["error"].endswith("volume busy")


def test_csi_mode_fails_a_claim_it_cannot_snapshot_and_selectors_exclude_claims(
    services, kubeconfig_path, test_namespace, snapshotter, claims, klass, queue, clock
):
    job = _job(kubeconfig_path, test_namespace, mode="csi", **{"class": klass, "exclude": [{"name": "logs"}]})
    record = services.backup_service(queue=queue, clock=clock).run(job).record
    assert record.state == "PartiallyFailed"
    assert any(f"{test_namespace}/pending" in e["error"] for e in record.errors)
    records = _by_pvc(_manifest(services, record))
    assert records["logs"]["state"] == "excluded" and "snapshot_name" not in records["logs"]
    assert records["data"]["state"] == "ready"


class Killed(BaseException):
    """The invocation dies (a Lambda timeout): nothing of it gets to record anything."""


def test_a_redelivered_job_does_not_create_a_second_snapshot(
    services, kubeconfig_path, kube_client, test_namespace, snapshotter, claims, klass, queue, clock, monkeypatch
):
    job = _job(kubeconfig_path, test_namespace, **{"class": klass})
    original = CsiSnapshots.observe
    calls = {"n": 0}

    def dies_once(self: CsiSnapshots, records: Any, now: str, backup_id: str) -> Any:
        calls["n"] += 1
        if calls["n"] == 1:
            raise Killed
        return original(self, records, now, backup_id)

    monkeypatch.setattr(CsiSnapshots, "observe", dies_once)
    service = services.backup_service(queue=queue, clock=clock)
    with pytest.raises(Killed):
        service.run(job)
    made = kube_client.get(VS.collection_path(test_namespace))["items"]
    assert len(made) == 2

    clock.advance(seconds=301)  # the dead worker's heartbeat goes stale; the queue delivers the job again
    outcome = service.run(job)
    assert not outcome.created and outcome.record.state == "Completed", outcome.record.errors
    again = kube_client.get(VS.collection_path(test_namespace))["items"]
    assert sorted(s["metadata"]["uid"] for s in again) == sorted(s["metadata"]["uid"] for s in made)
    names = {r["snapshot_name"] for r in _manifest(services, outcome.record).volume_snapshots if "snapshot_name" in r}
    assert names == {s["metadata"]["name"] for s in made}


def test_a_job_asking_for_snapshots_without_a_backup_queue_fails(services, kubeconfig_path, test_namespace):
    record = services.backup_service().run(_job(kubeconfig_path, test_namespace)).record
    assert record.state == "Failed"
    assert "need the backup queue" in (record.failure or "")


def test_a_sharded_backup_snapshots_its_claims_before_its_commit(
    services, kubeconfig_path, test_namespace, snapshotter, claims, klass, queue, clock
):
    snapshotter.ready_delay = 0.3
    service = services.backup_service(queue=queue, clock=clock)
    job = dataclasses.replace(_job(kubeconfig_path, test_namespace, **{"class": klass}), shard=True)
    started = handle_message(service, job.to_dict())
    assert started["status"] == "Running"
    results = _wait(service, queue, clock, step_s=1)
    kinds = [m.get("type", "job") for m, _ in queue.sent]
    assert "commit" in kinds and "volumes" in kinds, kinds
    assert results[-1]["status"] == "Completed", results
    record = services.catalog().get("vol-cluster", started["backup_id"])
    assert record.stats.get("shards"), "it was sharded"
    records = _by_pvc(_manifest(services, record))
    assert records["data"]["state"] == records["logs"]["state"] == "ready"
    assert records["pending"]["state"] == "not-snapshotable"


def test_a_wait_whose_cluster_is_unreachable_ends_at_the_deadline_naming_the_endpoint(
    services, kubeconfig_path, test_namespace, snapshotter, claims, klass, queue, clock
):
    import re

    snapshotter.inject(test_namespace, "logs", NEVER_READY)
    service = services.backup_service(queue=queue, clock=clock)
    job = _job(kubeconfig_path, test_namespace, **{"class": klass, "ready_timeout": 90})
    assert handle_message(service, job.to_dict())["status"] == "Running"
    # The cluster goes away while the backup waits: every later look meets a closed port.
    gone = "https://127.0.0.1:9"
    (message,) = queue.messages
    auth = message["cluster"]["auth"]
    auth["kubeconfig"] = re.sub(r"server: \S+", f"server: {gone}", auth["kubeconfig"])
    results = _wait(service, queue, clock, step_s=30)
    assert [r["status"] for r in results[:-1]] == ["waiting"] * (len(results) - 1), "looked at again, not failed"
    assert results[-1]["status"] == "PartiallyFailed", results
    record = services.catalog().get("vol-cluster", results[-1]["backup_id"])
    (error,) = [e["error"] for e in record.errors]
    assert f"{test_namespace}/logs" in error and "not ready after 90s" in error
    assert f"cluster unreachable at {gone}" in error
    records = _by_pvc(_manifest(services, record))
    assert records["logs"]["state"] == "failed" and records["data"]["state"] == "ready"
    assert record.manifest_key, "the manifest is committed"


def test_a_later_backup_does_not_back_up_the_snapshots_an_earlier_one_took(
    services, kubeconfig_path, kube_client, test_namespace, snapshotter, claims, klass, queue, clock
):
    from chalicelib.repository import RepositoryReader

    service = services.backup_service(queue=queue, clock=clock)
    first = service.run(_job(kubeconfig_path, test_namespace, **{"class": klass})).record
    assert first.state == "Completed", first.failure or first.errors
    names = {r["snapshot_name"] for r in _manifest(services, first).volume_snapshots if r.get("snapshot_name")}
    assert names and all(kube_client.get_object(VS, n, test_namespace) for n in names)  # they exist in the cluster

    second = service.run(_job(kubeconfig_path, test_namespace, **{"class": klass})).record

    assert second.state == "Completed", second.failure or second.errors
    reader = RepositoryReader(services.repository())
    kinds = {e.kind for _, e in reader.walk(reader.load_manifest(second.cluster, second.backup_id))}
    assert "PersistentVolumeClaim" in kinds
    assert not kinds & {"VolumeSnapshot", "VolumeSnapshotContent"}  # its own snapshots are its volume records
    assert {r["pvc"] for r in _manifest(services, second).volume_snapshots} == {"data", "logs", "pending"}
