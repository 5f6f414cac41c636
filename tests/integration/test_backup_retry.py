"""A one-shot backup that meets a transient failure is sent again with a delay, and fails only when attempts run out."""

from __future__ import annotations

import uuid
from collections import deque
from typing import Any

from chalicelib.backup import service as service_module
from chalicelib.backup.worker import handle_message
from chalicelib.catalog.errors import Throttled
from chalicelib.core.jobs import BackupJob, ClusterRef
from chalicelib.core.scope import BackupScope
from chalicelib.retry import MAX_ATTEMPTS
from chalicelib.services import Services


class ListQueue:
    """The backup-jobs queue as a list of (message, delay)."""

    def __init__(self) -> None:
        self.messages: deque[tuple[dict[str, Any], int]] = deque()

    def send(self, message: dict[str, Any], *, delay_s: int = 0) -> None:
        self.messages.append((message, delay_s))

    def send_many(self, messages: Any) -> int:
        sent = [self.send(message) for message in messages]
        return len(sent)


def _job(kubeconfig_path: Any, namespaces: list[str]) -> BackupJob:
    auth = {"type": "kubeconfig", "kubeconfig": kubeconfig_path.read_text()}
    return BackupJob(
        job_id=f"t-{uuid.uuid4()}",
        cluster=ClusterRef("retry-cluster", auth),
        scope=BackupScope(include_namespaces=tuple(namespaces)),
        shard=False,
    )


def _throttle_heartbeats(services: Services, monkeypatch: Any, times: int) -> list[int]:
    """DynamoDB throttles the first ``times`` heartbeats of the backup (one after every page)."""
    catalog = services.catalog()
    real = catalog.heartbeat
    throttled: list[int] = []

    def heartbeat(*args: Any, **kwargs: Any) -> Any:
        if len(throttled) < times:
            throttled.append(1)
            raise Throttled("ProvisionedThroughputExceededException: rate of requests exceeds the allowed throughput")
        return real(*args, **kwargs)

    monkeypatch.setattr(catalog, "heartbeat", heartbeat)
    monkeypatch.setattr(service_module, "HEARTBEAT_EVERY_S", 0)
    return throttled


def test_a_throttle_mid_backup_is_retried_by_a_delayed_message_and_then_completes(
    services: Services, kubeconfig_path: Any, app_ns: Any, monkeypatch: Any
) -> None:
    throttled = _throttle_heartbeats(services, monkeypatch, times=1)
    queue = ListQueue()
    service = services.backup_service(queue=queue)
    job = _job(kubeconfig_path, app_ns.namespaces)

    first = handle_message(service, job.to_dict())

    assert throttled and first["status"] == "retrying"
    record = services.catalog().get("retry-cluster", first["backup_id"])
    assert record.state == "Running" and record.extra["retry"]["attempt"] == 1
    assert "Throttled" in record.extra["retry"]["error"]
    [(message, delay)] = queue.messages
    queue.messages.clear()
    assert message == {**job.to_dict(), "attempt": 1}
    assert delay == 10, "the retry is delayed, not left to the queue's visibility timeout"

    second = handle_message(service, message)

    assert second["status"] == "Completed" and second["backup_id"] == first["backup_id"]
    assert second["duplicate"] is True, "the retry runs the backup claimed by the first attempt"
    final = services.catalog().get("retry-cluster", first["backup_id"])
    assert final.state == "Completed" and final.manifest_key
    assert final.extra["retry"] == {**record.extra["retry"], "pending": False}
    assert not queue.messages
    # A late duplicate of the retry message finds the finished backup and does nothing.
    assert handle_message(service, message)["status"] == "Completed"
    assert not queue.messages


def test_a_backup_that_stays_throttled_fails_with_the_cause_once_the_attempts_run_out(
    services: Services, kubeconfig_path: Any, app_ns: Any, monkeypatch: Any
) -> None:
    _throttle_heartbeats(services, monkeypatch, times=1000)
    queue = ListQueue()
    service = services.backup_service(queue=queue)
    result = handle_message(service, _job(kubeconfig_path, app_ns.namespaces).to_dict())
    delays = []
    while queue.messages:
        message, delay = queue.messages.popleft()
        delays.append(delay)
        result = handle_message(service, message)

    assert delays == [10, 20] and len(delays) == MAX_ATTEMPTS - 1
    assert result["status"] == "Failed"
    assert result["failure"].startswith(f"failed after {MAX_ATTEMPTS} attempts: Throttled: ")
    assert "ProvisionedThroughputExceededException" in result["failure"]
    assert services.catalog().get("retry-cluster", result["backup_id"]).state == "Failed"


def test_a_permanent_failure_is_not_retried(services: Services) -> None:
    queue = ListQueue()
    service = services.backup_service(queue=queue)
    auth = {"type": "kubeconfig", "kubeconfig": "apiVersion: v1\nkind: Config\n"}
    job = BackupJob(job_id=f"t-{uuid.uuid4()}", cluster=ClusterRef("retry-cluster", auth), shard=False)
    result = handle_message(service, job.to_dict())
    assert result["status"] == "Failed" and "cannot build credentials" in result["failure"]
    assert not queue.messages
