"""Restore and verification outcomes read back from moto EventBridge: the common schema on the real bus."""

from __future__ import annotations

from typing import Any

from chalicelib.restore import RestoreService
from chalicelib.restore.worker import RestoreWorker
from tests.integration.test_events import EventQueue
from tests.integration.test_restore_worker import (  # noqa: F401 - fixtures and helpers of the restore worker tests
    BACKUP_ID,
    CLUSTER,
    Recorder,
    backup_of,
    catalog,
    job,
    namespace,
    objects,
)
from tests.integration.test_verification_worker import _worker, backed_up, policy  # noqa: F401 - their fixtures


def test_a_restore_is_announced_completed_once(services, catalog, kube_client, namespace) -> None:  # noqa: F811
    bus = EventQueue(services)
    backup, record, queue = backup_of(objects(namespace)), job(catalog), Recorder()
    publisher = services.restore_events()
    worker = RestoreWorker(catalog, backup.reader, lambda ref: kube_client, RestoreService, publisher, queue)
    assert worker.handle(record.restore_id)["status"] == "Completed"
    assert worker.handle(record.restore_id)["status"] == "duplicate"
    done = bus.one("Restore Completed")
    assert done["source"] == "lifeboat" and done["detail"]["schema_version"] == "1"
    assert done["detail"]["restore_id"] == record.restore_id
    assert done["detail"]["backup"] == {"cluster": CLUSTER, "backup_id": BACKUP_ID}
    assert bus.types() == ["Restore Completed"]


def test_a_restore_of_a_missing_backup_is_announced_failed(services, catalog, kube_client) -> None:  # noqa: F811
    from chalicelib.repository.errors import BackupNotFound

    class Missing:
        def load_manifest(self, cluster: str, backup_id: str) -> Any:
            raise BackupNotFound(f"no manifest for {cluster}/{backup_id}")

    bus = EventQueue(services)
    record = job(catalog)
    worker = RestoreWorker(
        catalog, Missing, lambda ref: kube_client, RestoreService, services.restore_events(), Recorder()
    )
    assert worker.handle(record.restore_id)["status"] == "Failed"
    failed = bus.one("Restore Failed")["detail"]
    assert failed["state"] == "Failed" and f"{CLUSTER}/{BACKUP_ID}" in failed["failure"]


def test_a_verification_is_announced_succeeded(services, kube_client, policy, backed_up) -> None:  # noqa: F811
    from chalicelib.verification.worker import VerifyMessage

    bus = EventQueue(services)
    worker = _worker(services, kube_client, services.events())
    run, _ = worker.start(policy.name, scheduled_for="2026-12-06T04:00:00Z")
    worker.handle_message(VerifyMessage(run.verification_id).to_json())
    worker.handle_message(VerifyMessage(run.verification_id).to_json())  # a duplicate delivery runs nothing
    done = bus.one("Verification Succeeded")["detail"]
    assert done["schema_version"] == "1" and done["verification_id"] == run.verification_id
    assert done["backup_id"] == backed_up.backup_id and done["rto_s"] > 0
    assert done["outcomes"]["resources"].startswith("verified: ")
    assert "Verification Failed" not in bus.types()


def test_a_verification_without_a_backup_is_announced_failed(services, kube_client, policy) -> None:  # noqa: F811
    bus = EventQueue(services)
    worker = _worker(services, kube_client, services.events())
    run, _ = worker.start(policy.name)
    worker.handle(run.verification_id)
    failed = bus.one("Verification Failed")["detail"]
    assert failed["policy"] == policy.name and "no Completed backup" in failed["message"]
