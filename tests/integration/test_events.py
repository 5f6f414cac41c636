"""Every outcome emits its event: moto EventBridge with a rule sending Lifeboat's events to an SQS queue, read back."""

from __future__ import annotations

import json
import uuid
from typing import Any

import pytest

from chalicelib.core import events as ev
from chalicelib.core.jobs import BackupJob, ClusterRef
from chalicelib.core.scope import BackupScope
from chalicelib.services import Services
from tests.conftest import TEST_REGION


class EventQueue:
    """An SQS queue an EventBridge rule (source ``lifeboat``, the default bus) sends every event to."""

    def __init__(self, services: Services) -> None:
        sqs, events = services.client("sqs"), services.client("events")
        self._sqs = sqs
        self.url = sqs.create_queue(QueueName=f"events-{uuid.uuid4().hex[:8]}")["QueueUrl"]
        arn = sqs.get_queue_attributes(QueueUrl=self.url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
        rule = f"lifeboat-all-{uuid.uuid4().hex[:6]}"
        events.put_rule(Name=rule, EventPattern=json.dumps({"source": [ev.SOURCE]}), State="ENABLED")
        events.put_targets(Rule=rule, Targets=[{"Id": "queue", "Arn": arn}])
        self.seen: list[dict[str, Any]] = []

    def read(self) -> list[dict[str, Any]]:
        """Every event delivered so far (whole EventBridge events), oldest first."""
        while True:
            got = self._sqs.receive_message(QueueUrl=self.url, MaxNumberOfMessages=10, WaitTimeSeconds=0)
            messages = got.get("Messages", [])
            if not messages:
                return list(self.seen)
            for message in messages:
                self.seen.append(json.loads(message["Body"]))
                self._sqs.delete_message(QueueUrl=self.url, ReceiptHandle=message["ReceiptHandle"])

    def types(self, backup_id: str | None = None) -> list[str]:
        return [e["detail-type"] for e in self.read() if backup_id is None or e["detail"].get("backup_id") == backup_id]

    def one(self, detail_type: str) -> dict[str, Any]:
        found = [e for e in self.read() if e["detail-type"] == detail_type]
        assert len(found) == 1, [e["detail-type"] for e in self.seen]
        return found[0]


@pytest.fixture
def bus(services: Services) -> EventQueue:
    return EventQueue(services)


def _job(kubeconfig_path: Any, namespaces: list[str], *, job_id: str | None = None) -> BackupJob:
    auth = {"type": "kubeconfig", "kubeconfig": kubeconfig_path.read_text()}
    return BackupJob(
        job_id=job_id or f"t-{uuid.uuid4()}",
        cluster=ClusterRef("events-cluster", auth),
        scope=BackupScope(include_namespaces=tuple(namespaces)),
    )


def _schema_ok(event: dict[str, Any]) -> None:
    assert event["source"] == "lifeboat"
    assert event["detail"]["schema_version"] == ev.SCHEMA_VERSION
    assert event["region"] == TEST_REGION


# -- backups --------------------------------------------------------------------------------------------------------


def test_a_one_shot_backup_announces_started_then_completed(services, bus, kubeconfig_path, test_namespace):
    record = services.backup_service().run(_job(kubeconfig_path, [test_namespace])).record
    assert record.state == "Completed"
    assert bus.types(record.backup_id) == ["Backup Started", "Backup Completed"]
    done = bus.one("Backup Completed")
    _schema_ok(done)
    detail = done["detail"]
    assert detail["cluster"] == "events-cluster" and detail["state"] == "Completed"
    assert detail["manifest_key"] == record.manifest_key
    assert detail["counts"]["objects"] == record.counts["objects"] > 0
    assert detail["errors_total"] == 0 and detail["failure"] is None


def test_no_second_backup_completed_on_a_redelivered_job(services, bus, kubeconfig_path, test_namespace):
    job = _job(kubeconfig_path, [test_namespace], job_id=f"redelivered-{uuid.uuid4()}")
    first = services.backup_service().run(job)
    again = services.backup_service().run(job)
    assert first.created and not again.created
    assert again.record.backup_id == first.record.backup_id
    assert bus.types() == ["Backup Started", "Backup Completed"]


@pytest.mark.fakeonly
def test_a_backup_missing_a_type_announces_partially_failed(services, bus, kubeconfig_path, test_namespace, fake_kube):
    fake_kube.forbid("secrets")
    try:
        record = services.backup_service().run(_job(kubeconfig_path, [test_namespace])).record
    finally:
        fake_kube.forbid(None)
    assert record.state == "PartiallyFailed"
    detail = bus.one("Backup Partially Failed")["detail"]
    assert detail["backup_id"] == record.backup_id
    assert detail["errors_total"] == 1 and detail["errors"][0]["resource"] == "secrets"
    assert "Backup Completed" not in bus.types()


def test_a_backup_of_an_unreachable_cluster_announces_failed(services, bus, tmp_path):
    kubeconfig = tmp_path / "kubeconfig"
    kubeconfig.write_text(
        "apiVersion: v1\nkind: Config\ncurrent-context: c\n"
        "clusters: [{name: c, cluster: {server: 'https://127.0.0.1:9'}}]\n"
        "users: [{name: u, user: {token: t}}]\ncontexts: [{name: c, context: {cluster: c, user: u}}]\n"
    )
    record = services.backup_service().run(_job(kubeconfig, [])).record
    assert record.state == "Failed"
    detail = bus.one("Backup Failed")["detail"]
    assert detail["backup_id"] == record.backup_id and "127.0.0.1:9" in detail["failure"]
    assert bus.types(record.backup_id) == ["Backup Started", "Backup Failed"]


def test_a_bus_that_refuses_never_fails_the_backup(services, kubeconfig_path, test_namespace, monkeypatch):
    from chalicelib.aws.errors import AwsUnavailable
    from chalicelib.aws.events import LifeboatEvents

    def refuse(self: Any, detail_type: str, detail: dict[str, Any]) -> None:
        raise AwsUnavailable(f"EventBridge refused {detail_type!r}: ThrottlingException", "ThrottlingException")

    monkeypatch.setattr(LifeboatEvents, "publish", refuse)
    record = services.backup_service().run(_job(kubeconfig_path, [test_namespace])).record
    assert record.state == "Completed" and record.manifest_key


def _sharded(services: Services, kubeconfig_path: Any, namespaces: list[str]) -> tuple[Any, Any, BackupJob, str]:
    from chalicelib.backup.worker import handle_message
    from tests.support.sharded import ListQueue, make_job

    queue = ListQueue()
    service = services.backup_service(queue=queue)
    job = make_job(kubeconfig_path, "sharded-events", namespaces, shard=True)
    return service, queue, job, handle_message(service, job.to_dict())["backup_id"]


def test_a_sharded_backup_announces_once_with_every_message_delivered_twice(
    services, bus, kubeconfig_path, test_namespace
):
    from chalicelib.backup.worker import handle_message

    service, queue, job, backup_id = _sharded(services, kubeconfig_path, [test_namespace])
    while queue.messages:
        message = queue.messages.popleft()
        handle_message(service, message)
        handle_message(service, dict(message))
    handle_message(service, job.to_dict())  # and the job itself, once more after the end
    assert services.catalog().get("sharded-events", backup_id).state == "Completed"
    assert bus.types() == ["Backup Started", "Backup Completed"]
    assert bus.one("Backup Completed")["detail"]["backup_id"] == backup_id


def test_a_sharded_backup_whose_commit_is_refused_announces_failed(services, bus, kubeconfig_path, test_namespace):
    from tests.support.sharded import drain

    service, queue, _, backup_id = _sharded(services, kubeconfig_path, [test_namespace])
    drain(service, queue, stop=lambda message: message.get("type") == "commit")
    repo = services.repository()
    repo.store.delete(sorted(repo.store.list("packs/"))[0])  # what a garbage collection in the gap would do
    drain(service, queue)
    assert bus.types(backup_id) == ["Backup Started", "Backup Failed"]
    assert "no longer in the repository" in bus.one("Backup Failed")["detail"]["failure"]


# -- replication ----------------------------------------------------------------------------------------------------


@pytest.fixture
def replication(aws: None, table: str) -> Any:
    from tests.support.replication import make_env

    return make_env()


def test_replication_completed_is_announced_once_by_the_run_that_completed_it(replication):
    from chalicelib.replication.worker import handle_messages
    from tests.support.replication import REPLICA_REGION, objects, write_backup

    bus = EventQueue(replication.services)
    write_backup(replication, "20260101T000000Z-aaaaaa", objects())
    bodies = replication.drain()
    handle_messages(replication.services.replicator(), bodies)
    handle_messages(replication.services.replicator(), bodies)  # every notification delivered again
    done = bus.one("Replication Completed")
    _schema_ok(done)
    detail = done["detail"]
    assert detail["backup_id"] == "20260101T000000Z-aaaaaa" and detail["region"] == REPLICA_REGION
    # The data came with its own notifications first; the run that completes the backup copies its manifest.
    assert detail["copied"] >= 1 and detail["repaired"] == 0 and detail["lag_s"] >= 0
    assert "Replication Failed" not in bus.types()


def test_a_failed_replication_is_announced(replication):
    import orjson

    from chalicelib.replication import BatchFailed
    from chalicelib.replication.worker import handle_messages
    from tests.support.replication import PREFIX, REPLICA_BUCKET, objects, write_backup

    bus = EventQueue(replication.services)
    foreign = {"compression": "zstd", "created_at": "2026-01-01T00:00:00Z", "id": "f" * 32, "version": 1}
    replication.s3_replica.put_object(Bucket=REPLICA_BUCKET, Key=PREFIX + "config.json", Body=orjson.dumps(foreign))
    write_backup(replication, "20260101T000000Z-aaaaaa", objects())
    with pytest.raises(BatchFailed):
        handle_messages(replication.services.replicator(), replication.drain())
    failed = bus.one("Replication Failed")["detail"]
    assert failed["backup_id"] == "20260101T000000Z-aaaaaa" and failed["error"]
    assert "Replication Completed" not in bus.types()


# -- maintenance ----------------------------------------------------------------------------------------------------


def test_a_maintenance_pass_is_announced_with_what_it_did(services, bus, kubeconfig_path, test_namespace):
    from datetime import timedelta

    services.backup_service().run(_job(kubeconfig_path, [test_namespace]))
    maintenance = services.maintenance_service(safety_margin=timedelta(0), wait_s=0, check_blobs=100)
    maintenance.run(dry_run=True)  # deletes nothing, announces nothing
    assert "Maintenance Completed" not in bus.types()
    report = maintenance.run()
    done = bus.one("Maintenance Completed")
    _schema_ok(done)
    detail = done["detail"]
    assert detail["status"] == "done" == report.status
    assert detail["expired"] == 0 and detail["packs_deleted"] == 0
    assert detail["blobs_checked"] == report.check["blobs_checked"] > 0 and detail["damaged_blobs"] == 0


def test_a_maintenance_pass_that_breaks_is_announced_failed_and_still_raises(services, bus, monkeypatch):
    def broken(**_: Any) -> Any:
        raise RuntimeError("S3 said no")

    monkeypatch.setattr(services, "repository", broken)
    with pytest.raises(RuntimeError, match="S3 said no"):
        services.maintenance_service(wait_s=0).run()
    assert "S3 said no" in bus.one("Maintenance Failed")["detail"]["error"]
    assert "Maintenance Completed" not in bus.types()


def test_a_maintenance_pass_that_finds_the_repository_busy_says_so(services, bus, kubeconfig_path, test_namespace):
    services.backup_service().run(_job(kubeconfig_path, [test_namespace]))
    held = services.repository_lock().acquire_exclusive("another-maintenance")
    try:
        assert services.maintenance_service(wait_s=0).run().status == "busy"
    finally:
        held.release()
    detail = bus.one("Maintenance Completed")["detail"]
    assert detail["status"] == "busy" and detail["message"]
