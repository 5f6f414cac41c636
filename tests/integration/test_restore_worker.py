"""The restore worker: catalog in moto, backups in memory, restores applied to the Kubernetes API test server."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from chalicelib.catalog.restore_records import RestoreRecord
from chalicelib.catalog.restores import RestoreCatalog
from chalicelib.core.restore_jobs import RestoreState
from chalicelib.core.restore_options import RestoreOptions
from chalicelib.kube import KubeClient
from chalicelib.restore import RestoreService
from chalicelib.restore import checkpointer as checkpointer_module
from chalicelib.restore import worker as worker_module
from chalicelib.restore.errors import RetryLater
from chalicelib.restore.worker import RestoreWorker
from tests.support.builders import BuiltBackup, make_backup
from tests.support.resources import resource_of

CLUSTER = "prod"
BACKUP_ID = "20261122T090000Z-abcdef"


class Recorder:
    """Stands in for the queue and the event bus: remembers what was sent."""

    def __init__(self) -> None:
        self.sent: list[Any] = []

    def send(self, restore_id: str) -> str:
        self.sent.append(restore_id)
        return "m"

    def publish(self, detail_type: str, detail: dict[str, Any]) -> None:
        self.sent.append((detail_type, detail))


@pytest.fixture
def catalog(dynamodb: Any, table: str) -> RestoreCatalog:
    return RestoreCatalog(dynamodb, table)


@pytest.fixture
def namespace(kube_client: KubeClient) -> Iterator[str]:
    name = f"lbw-{uuid.uuid4().hex[:8]}"
    yield name
    kube_client.delete_namespace(name)


def objects(namespace: str, count: int = 3) -> list[dict[str, Any]]:
    ns = {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": namespace}}
    cms = [
        {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": {"name": f"cm-{i}", "namespace": namespace},
            "data": {"i": str(i)},
        }
        for i in range(count)
    ]
    return [ns, *cms]


def job(catalog: RestoreCatalog, *, dry_run: bool = False, **options: Any) -> RestoreRecord:
    restore_id = f"r-20261122T100000Z-{uuid.uuid4().hex[:8]}"
    record = RestoreRecord(
        restore_id=restore_id,
        state=RestoreState.PENDING,
        backup_cluster=CLUSTER,
        backup_id=BACKUP_ID,
        target_cluster={"name": "dr", "auth": {"type": "kubeconfig_secret", "secret_id": "lifeboat/dr"}},
        options=RestoreOptions.from_dict({**options, "restore_id": restore_id, "dry_run": dry_run}).to_dict(),
        dry_run=dry_run,
        created_at="2026-11-22T10:00:00.000Z",
    )
    return catalog.create(record, idem_key=restore_id, request_hash="h", now=datetime.now(UTC))[0]


def backup_of(objs: list[Any]) -> BuiltBackup:
    return make_backup(objs, cluster=CLUSTER, backup_id=BACKUP_ID)


def make_worker(
    catalog: RestoreCatalog, backup: BuiltBackup, kube_client: KubeClient, recorder: Recorder, **kwargs: Any
) -> RestoreWorker:
    return RestoreWorker(catalog, backup.reader, lambda ref: kube_client, RestoreService, recorder, recorder, **kwargs)


def events(recorder: Recorder) -> list[tuple[str, dict[str, Any]]]:
    return [s for s in recorder.sent if isinstance(s, tuple)]


def test_a_job_is_restored_recorded_and_announced(
    catalog: RestoreCatalog, kube_client: KubeClient, namespace: str
) -> None:
    backup = backup_of(objects(namespace))
    record, recorder = job(catalog), Recorder()
    outcome = make_worker(catalog, backup, kube_client, recorder).handle(record.restore_id)
    assert outcome["status"] == "Completed", outcome
    for obj in objects(namespace):
        meta = obj["metadata"]
        restored = kube_client.get_object(resource_of(obj), meta["name"], meta.get("namespace"))
        assert restored is not None and restored["metadata"]["labels"]["lifeboat.io/restore-id"] == record.restore_id
    final = catalog.get(record.restore_id)
    assert final.state == RestoreState.COMPLETED and final.counts == {"created": 4}
    assert final.done == final.total == 4 and final.finished_at and final.event_sent_at
    assert catalog.done_markers(record.restore_id).keys == {
        f"namespaces/{namespace}",
        *(f"configmaps/{namespace}/cm-{i}" for i in range(3)),
    }
    [(detail_type, detail)] = events(recorder)
    assert detail_type == "Restore Completed" and detail["restore_id"] == record.restore_id
    assert detail["counts"] == {"created": 4} and detail["backup"] == {"cluster": CLUSTER, "backup_id": BACKUP_ID}


def test_duplicate_deliveries_do_nothing(catalog: RestoreCatalog, kube_client: KubeClient, namespace: str) -> None:
    backup = backup_of(objects(namespace))
    record, recorder = job(catalog), Recorder()
    make_worker(catalog, backup, kube_client, recorder).handle(record.restore_id)
    again = make_worker(catalog, backup, kube_client, recorder).handle(record.restore_id)
    assert again["status"] == "duplicate" and again["state"] == "Completed"
    assert len(events(recorder)) == 1
    assert catalog.get(record.restore_id).counts == {"created": 4}


def test_a_live_running_job_is_left_to_its_worker(
    catalog: RestoreCatalog, kube_client: KubeClient, namespace: str
) -> None:
    backup = backup_of(objects(namespace))
    record = job(catalog)
    catalog.claim(record.restore_id, "other-worker", datetime.now(UTC), stale_after=timedelta(minutes=5))
    outcome = make_worker(catalog, backup, kube_client, Recorder()).handle(record.restore_id)
    assert outcome["status"] == "duplicate" and outcome["state"] == "Running"
    assert kube_client.get_object(resource_of(objects(namespace)[0]), namespace, None) is None


def test_a_crashed_worker_is_taken_over_and_done_objects_are_skipped(
    catalog: RestoreCatalog, kube_client: KubeClient, namespace: str
) -> None:
    backup = backup_of(objects(namespace))
    record = job(catalog)
    crashed_at = datetime.now(UTC) - timedelta(minutes=10)
    catalog.claim(record.restore_id, "crashed", crashed_at, stale_after=timedelta(minutes=5))
    # It had checkpointed cm-0 (say, created it) before dying; the new worker must not touch it again.
    done_key = f"configmaps/{namespace}/cm-0"
    catalog.record_results(
        record.restore_id,
        "crashed",
        seq=0,
        keys=[done_key],
        outcomes={"created": 1},
        failures=[],
        stored_failures=0,
        now=crashed_at,
    )
    outcome = make_worker(catalog, backup, kube_client, Recorder()).handle(record.restore_id)
    assert outcome["status"] == "Completed"
    final = catalog.get(record.restore_id)
    assert final.attempts == 2 and final.counts == {"created": 4} and final.done == 4
    assert kube_client.get_object(resource_of(objects(namespace)[1]), "cm-0", namespace) is None  # skipped
    assert kube_client.get_object(resource_of(objects(namespace)[2]), "cm-1", namespace) is not None


def test_near_the_deadline_the_job_checkpoints_and_continues(
    catalog: RestoreCatalog, kube_client: KubeClient, namespace: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(checkpointer_module, "FLUSH_EVERY", 1)
    backup = backup_of(objects(namespace, count=6))
    record, recorder = job(catalog), Recorder()
    budget = iter([600_000] * 3)  # a few objects' worth of time, then the deadline is near

    first = make_worker(catalog, backup, kube_client, recorder, remaining_ms=lambda: next(budget, 1000))
    assert first.handle(record.restore_id)["status"] == "continued"
    assert recorder.sent == [record.restore_id]  # it re-enqueued itself
    midway = catalog.get(record.restore_id)
    assert midway.state == RestoreState.RUNNING and 0 < midway.done < 7
    second = make_worker(catalog, backup, kube_client, recorder).handle(record.restore_id)
    assert second["status"] == "Completed"
    final = catalog.get(record.restore_id)
    assert final.counts == {"created": 7} and final.done == 7 and final.attempts == 2


def test_dry_run_stores_the_plan_and_writes_nothing(
    catalog: RestoreCatalog, kube_client: KubeClient, fake_kube: Any, namespace: str
) -> None:
    backup = backup_of(objects(namespace))
    record, recorder = job(catalog, dry_run=True), Recorder()
    fake_kube.clear_requests()
    outcome = make_worker(catalog, backup, kube_client, recorder).handle(record.restore_id)
    assert outcome["status"] == "Completed"
    assert list(fake_kube.write_requests()) == []
    plan = catalog.get(record.restore_id).plan
    assert plan is not None and plan["counts"] == {"create": 4, "update": 0, "skip": 0} and plan["total"] == 4
    assert {i["key"] for i in plan["items"]} >= {f"namespaces/{namespace}", f"configmaps/{namespace}/cm-0"}
    assert events(recorder)[0][0] == "Restore Completed"


def test_failed_objects_are_named_and_the_job_is_partially_failed(
    catalog: RestoreCatalog, kube_client: KubeClient, namespace: str
) -> None:
    unknown = {
        "apiVersion": "nowhere.lifeboat.test/v1",
        "kind": "Widget",
        "metadata": {"name": "w1", "namespace": namespace},
    }
    backup = backup_of([*objects(namespace, count=1), (resource_of(unknown, "widgets", True), unknown)])
    record, recorder = job(catalog), Recorder()
    outcome = make_worker(catalog, backup, kube_client, recorder).handle(record.restore_id)
    assert outcome["status"] == "PartiallyFailed"
    final = catalog.get(record.restore_id)
    assert final.counts == {"created": 2, "failed": 1}
    [failure] = final.failures
    assert failure["key"] == f"widgets.nowhere.lifeboat.test/{namespace}/w1"
    assert failure["reason"] == "type-not-served" and "not served" in failure["message"]
    assert events(recorder)[0][0] == "Restore Failed"


def test_a_missing_backup_fails_the_job_with_the_reason(catalog: RestoreCatalog, kube_client: KubeClient) -> None:
    from chalicelib.repository.errors import BackupNotFound

    def missing() -> Any:
        class Reader:
            def load_manifest(self, cluster: str, backup_id: str) -> Any:
                raise BackupNotFound(f"no manifest for {cluster}/{backup_id}")

        return Reader()

    record, recorder = job(catalog), Recorder()
    worker = RestoreWorker(catalog, missing, lambda ref: kube_client, RestoreService, recorder, recorder)
    assert worker.handle(record.restore_id)["status"] == "Failed"
    final = catalog.get(record.restore_id)
    assert final.state == RestoreState.FAILED and f"{CLUSTER}/{BACKUP_ID}" in (final.failure or "")
    assert events(recorder)[0][0] == "Restore Failed"


def test_a_transient_failure_releases_the_job_for_a_retry(catalog: RestoreCatalog, kube_client: KubeClient) -> None:
    from chalicelib.kube.errors import Unreachable

    def unreachable(ref: Any) -> Any:
        raise Unreachable("connection refused")

    backup = backup_of(objects("x"))
    record, recorder = job(catalog), Recorder()
    worker = RestoreWorker(catalog, backup.reader, unreachable, RestoreService, recorder, recorder)
    with pytest.raises(RetryLater):
        worker.handle(record.restore_id)
    released = catalog.get(record.restore_id)
    assert released.state == RestoreState.RUNNING and released.heartbeat_at == ""
    # Redeliveries try again until the attempts run out, then the job fails for good.
    for _ in range(worker_module.MAX_RETRIES - 1):
        with pytest.raises(RetryLater):
            RestoreWorker(catalog, backup.reader, unreachable, RestoreService, recorder, recorder).handle(
                record.restore_id
            )
    last = RestoreWorker(catalog, backup.reader, unreachable, RestoreService, recorder, recorder)
    assert last.handle(record.restore_id)["status"] == "Failed"
    final = catalog.get(record.restore_id)
    assert "connection refused" in (final.failure or "") and final.retries == worker_module.MAX_RETRIES


def test_a_cluster_that_does_not_answer_discovery_is_retried(catalog: RestoreCatalog) -> None:
    kubeconfig = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": "c", "cluster": {"server": "https://127.0.0.1:9", "insecure-skip-tls-verify": True}}],
        "users": [{"name": "u", "user": {"token": "t"}}],
        "contexts": [{"name": "c", "context": {"cluster": "c", "user": "u"}}],
        "current-context": "c",
    }
    backup = backup_of(objects("x"))
    record, recorder = job(catalog), Recorder()
    with (
        KubeClient.from_kubeconfig(kubeconfig, max_retries=0, timeout=2) as down,
        pytest.raises(RetryLater, match="discovery"),
    ):
        make_worker(catalog, backup, down, recorder).handle(record.restore_id)
    assert catalog.get(record.restore_id).state == RestoreState.RUNNING and events(recorder) == []


@pytest.mark.parametrize("body", ["not json", "{}", '{"restore_id": 5}', '{"restore_id": "r-x#y"}'])
def test_malformed_messages_are_dropped(catalog: RestoreCatalog, body: str) -> None:
    def not_reached(*_: Any) -> Any:
        raise AssertionError("not reached")

    worker = RestoreWorker(catalog, not_reached, not_reached, RestoreService, Recorder(), Recorder())
    assert worker.handle_message(body)["status"] == "rejected"


def test_the_worker_connects_to_the_target_by_its_registered_name_only(
    catalog: RestoreCatalog, kube_client: KubeClient, namespace: str
) -> None:
    # A record carrying an auth block (as jobs did before) cannot choose the credentials: the worker passes the
    # name, and the API's worker resolves it in the cluster registry (Services.connect_registered).
    backup = backup_of(objects(namespace))
    record, recorder = job(catalog, dry_run=True), Recorder()
    seen: list[Any] = []

    def connect(target: Any) -> KubeClient:
        seen.append(target)
        return kube_client

    worker = RestoreWorker(catalog, backup.reader, connect, RestoreService, recorder, recorder)
    assert worker.handle(record.restore_id)["status"] == "Completed"
    assert seen == ["dr"]


def test_a_target_unregistered_since_the_request_fails_the_job_saying_so(
    catalog: RestoreCatalog, namespace: str
) -> None:
    from chalicelib.catalog.errors import RecordNotFound

    backup = backup_of(objects(namespace))
    record, recorder = job(catalog), Recorder()

    def connect(target: str) -> Any:
        raise RecordNotFound(f"cluster {target!r} is not registered (lifeboat clusters add {target} ...)")

    outcome = RestoreWorker(catalog, backup.reader, connect, RestoreService, recorder, recorder).handle(
        record.restore_id
    )
    final = catalog.get(record.restore_id)
    assert outcome["status"] == "Failed" and final.state == RestoreState.FAILED
    assert "'dr' is not registered" in (final.failure or "")


def test_a_released_job_is_sent_again_with_a_delay(catalog: RestoreCatalog) -> None:
    from chalicelib.kube.errors import Unreachable

    backup = backup_of(objects("x"))
    record = job(catalog)

    class DelayedQueue(Recorder):
        def send(self, restore_id: str, *, delay_s: int = 0) -> str:
            self.sent.append((restore_id, delay_s))
            return "m"

    queue = DelayedQueue()

    def down(name: str) -> Any:
        raise Unreachable("connection refused")

    worker = RestoreWorker(catalog, backup.reader, down, RestoreService, Recorder(), queue)
    body = json.dumps({"restore_id": record.restore_id})
    assert worker.handle_message(body)["status"] == "retrying"
    assert worker.handle_message(body)["status"] == "retrying"
    assert queue.sent == [(record.restore_id, 10), (record.restore_id, 20)]
    assert worker.handle_message(body)["status"] == "Failed"
    assert len(queue.sent) == 2
