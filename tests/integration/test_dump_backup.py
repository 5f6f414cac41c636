"""Backups whose policy lists database dumps: the Jobs created, waited for across invocations (the test playing the
Job controller), recorded in the manifest, deleted; a failed dump makes the backup PartiallyFailed naming it."""

from __future__ import annotations

import base64
import hashlib
import json
import uuid
from datetime import UTC, datetime
from typing import Any

import pytest
import requests

from chalicelib.backup.worker import handle_message
from chalicelib.core.dumps import dumps_from_list
from chalicelib.core.jobs import BackupJob, ClusterRef
from chalicelib.core.scope import BackupScope
from chalicelib.services import Services
from chalicelib.snapshots.dump_jobs import JOBS, SECRETS
from tests.support.clocks import Clock
from tests.support.sharded import ListQueue

pytestmark = pytest.mark.fakeonly
MERGE = "application/merge-patch+json"


@pytest.fixture
def clock() -> Clock:
    return Clock(datetime.now(UTC).replace(microsecond=0))


def _job(kubeconfig_path: Any, namespace: str, *names: str) -> BackupJob:
    auth = {"type": "kubeconfig", "kubeconfig": kubeconfig_path.read_text()}
    entries = [
        {
            "name": n,
            "engine": "mysql",
            "namespace": namespace,
            "target": "db",
            "timeout": 120,
            "credentials": {"secret": "db", "password_key": "password"},
        }
        for n in names
    ]
    return BackupJob(
        job_id=f"t-{uuid.uuid4()}",
        cluster=ClusterRef("dump-cluster", auth),
        scope=BackupScope(include_namespaces=(namespace,)),
        shard=False,
        dumps=dumps_from_list(entries),
    )


def _jobs_of(kube_client: Any, namespace: str, backup_id: str) -> list[dict[str, Any]]:
    path = JOBS.collection_path(namespace)
    return list(kube_client.get(path, {"labelSelector": f"lifeboat.io/backup-id={backup_id}"})["items"])


def _run_the_job(kube_client: Any, job: dict[str, Any], body: bytes | None) -> None:
    """The Job controller and the Job: upload ``body`` through the Secret's URLs and succeed, or fail (None)."""
    name, namespace = job["metadata"]["name"], job["metadata"]["namespace"]
    if body is None:
        status = {
            "failed": 1,
            "conditions": [
                {
                    "type": "Failed",
                    "status": "True",
                    "reason": "BackoffLimitExceeded",
                    "message": "mysqldump: Got error: 1045: Access denied",
                }
            ],
        }
    else:
        secret = kube_client.get_object(SECRETS, name, namespace)
        urls = {k: base64.b64decode(v).decode() for k, v in secret["data"].items()}
        assert requests.put(urls["parts"].splitlines()[0], data=body, timeout=30).status_code == 200
        report = {
            "sha256": hashlib.sha256(body).hexdigest(),
            "size": len(body),
            "parts": 1,
            "tool_version": "mysqldump  Ver 10.19",
            "duration_s": 2,
        }
        headers = {"Content-Type": "application/json"}
        put = requests.put(urls["report"].strip(), data=json.dumps(report), headers=headers, timeout=30)
        assert put.status_code == 200
        status = {"succeeded": 1}
    kube_client.request(
        "PATCH", JOBS.object_path(name, namespace) + "/status", body={"status": status}, content_type=MERGE
    )


def test_a_policy_takes_its_dumps_with_every_backup(
    services: Services, kubeconfig_path: Any, kube_client: Any, test_namespace: str, clock: Clock
) -> None:
    queue = ListQueue()
    service = services.backup_service(queue=queue, clock=clock)
    first = handle_message(service, _job(kubeconfig_path, test_namespace, "orders", "users").to_dict())
    assert first["status"] == "Running", first
    backup_id = first["backup_id"]
    jobs = {j["metadata"]["labels"]["lifeboat.io/dump"]: j for j in _jobs_of(kube_client, test_namespace, backup_id)}
    assert set(jobs) == {"orders", "users"}
    assert [m["type"] for m, _ in queue.sent] == ["volumes"], "the dumps wait like volume snapshots"

    # One look while both run: still waiting. Then one succeeds: its record is kept while the other runs.
    clock.advance(seconds=30)
    assert handle_message(service, queue.messages.popleft())["status"] == "waiting"
    _run_the_job(kube_client, jobs["orders"], b"-- MySQL dump\nCREATE TABLE t (id int);\n")
    clock.advance(seconds=30)
    assert handle_message(service, queue.messages.popleft())["status"] == "waiting"
    assert kube_client.get_object(JOBS, jobs["orders"]["metadata"]["name"], test_namespace) is None
    _run_the_job(kube_client, jobs["users"], None)
    clock.advance(seconds=30)
    last = handle_message(service, queue.messages.popleft())

    assert last["status"] == "PartiallyFailed", last
    record = services.catalog().get("dump-cluster", backup_id)
    assert record.errors == [
        {
            "resource": "dumps",
            "error": f"dump {test_namespace}/users: the Job {jobs['users']['metadata']['name']} "
            "failed: mysqldump: Got error: 1045: Access denied",
        }
    ]
    from chalicelib.repository import RepositoryReader

    manifest = RepositoryReader(services.repository()).load_manifest("dump-cluster", backup_id)
    by_name = {d["name"]: d for d in manifest.dumps}
    assert by_name["orders"]["state"] == "completed" and by_name["orders"]["version"] == "mysqldump  Ver 10.19"
    assert by_name["users"]["state"] == "failed"
    key = f"clusters/dump-cluster/backups/{backup_id}/dumps/{test_namespace}/orders.sql.gz"
    stored = services.repository().store.get(key)
    assert hashlib.sha256(stored).hexdigest() == by_name["orders"]["sha256"]
    assert not _jobs_of(kube_client, test_namespace, backup_id), "every dump Job is deleted"
    assert not services.repository().store.exists(key.replace("orders", "users"))


class _Published:
    """Stands in for the event bus: remembers every event published."""

    def __init__(self) -> None:
        self.events: list[tuple[str, dict[str, Any]]] = []

    def publish(self, detail_type: str, detail: dict[str, Any]) -> None:
        self.events.append((detail_type, detail))


def test_each_dump_is_announced_once_when_its_backup_is_recorded(
    services: Services,
    kubeconfig_path: Any,
    kube_client: Any,
    test_namespace: str,
    clock: Clock,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    published = _Published()
    monkeypatch.setattr(services, "events", lambda: published)
    queue = ListQueue()
    service = services.backup_service(queue=queue, clock=clock)
    backup_id = handle_message(service, _job(kubeconfig_path, test_namespace, "orders", "users").to_dict())["backup_id"]
    jobs = {j["metadata"]["labels"]["lifeboat.io/dump"]: j for j in _jobs_of(kube_client, test_namespace, backup_id)}
    body = b"-- MySQL dump\nCREATE TABLE t (id int);\n"
    _run_the_job(kube_client, jobs["orders"], body)
    clock.advance(seconds=30)
    assert handle_message(service, queue.messages.popleft())["status"] == "waiting"
    dump_types = ("Dump Completed", "Dump Failed")
    assert not [e for e in published.events if e[0] in dump_types], "a settled dump waits for the commit"
    _run_the_job(kube_client, jobs["users"], None)
    clock.advance(seconds=30)
    look = queue.messages.popleft()
    assert handle_message(service, look)["status"] == "PartiallyFailed"
    assert handle_message(service, look)["status"] == "duplicate", "a redelivered look"

    dumps = {d["name"]: (t, d) for t, d in published.events if t in dump_types}
    assert len([e for e in published.events if e[0] in dump_types]) == 2, published.events
    completed_type, completed = dumps["orders"]
    assert completed_type == "Dump Completed"
    assert completed["backup_id"] == backup_id and completed["cluster"] == "dump-cluster"
    assert completed["engine"] == "mysql" and completed["namespace"] == test_namespace
    assert completed["size"] == len(body) and completed["sha256"] == hashlib.sha256(body).hexdigest()
    assert completed["key"] == f"clusters/dump-cluster/backups/{backup_id}/dumps/{test_namespace}/orders.sql.gz"
    assert completed["engine_version"] == "mysqldump  Ver 10.19"
    failed_type, failed = dumps["users"]
    assert failed_type == "Dump Failed" and "Access denied" in failed["error"]
    assert "sha256" not in failed or failed["sha256"] is None
