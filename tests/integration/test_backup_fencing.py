"""Takeover fencing of one-shot backups: a worker whose job was taken over stops without writing the record."""

from __future__ import annotations

import threading
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from chalicelib.backup import service as service_module
from chalicelib.backup.service import BackupService
from chalicelib.catalog.backups import BackupCatalog
from chalicelib.catalog.errors import WorkerSuperseded
from chalicelib.core.jobs import BackupJob, ClusterRef
from chalicelib.core.models import BackupState
from chalicelib.repository import RepositoryReader
from chalicelib.services import Services
from tests.conftest import TEST_TABLE

NOW = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


def _job(kubeconfig_path: Any, namespaces: list[str]) -> BackupJob:
    from chalicelib.core.scope import BackupScope

    auth = {"type": "kubeconfig", "kubeconfig": kubeconfig_path.read_text()}
    return BackupJob(
        job_id=f"t-{uuid.uuid4()}",
        cluster=ClusterRef("fence-cluster", auth),
        scope=BackupScope(include_namespaces=tuple(namespaces)),
        shard=False,
    )


def _worker(services: Services, catalog: BackupCatalog, clock: Any) -> BackupService:
    return BackupService(catalog, lambda: services.repository(create=True), services.connect, clock=clock)


def test_a_stalled_worker_that_wakes_after_a_takeover_never_fails_the_backup(
    services: Services, kubeconfig_path: Any, app_ns: Any, monkeypatch: Any
) -> None:
    monkeypatch.setattr(service_module, "HEARTBEAT_EVERY_S", 0)
    dynamodb = services.client("dynamodb")
    catalog_a, catalog_b = BackupCatalog(dynamodb, TEST_TABLE), BackupCatalog(dynamodb, TEST_TABLE)
    stalled, b_committing = threading.Event(), threading.Event()
    job = _job(kubeconfig_path, app_ns.namespaces)
    outcome_a: list[Any] = []

    def a_heartbeat(*args: Any, **kwargs: Any) -> Any:
        # A stalls at its first heartbeat (past the stale limit), then wakes and fails.
        stalled.set()
        assert b_committing.wait(60)
        raise RuntimeError("worker A lost its connection to the cluster")

    monkeypatch.setattr(catalog_a, "heartbeat", a_heartbeat)
    real_transition = catalog_b.transition

    def b_transition(cluster: str, backup_id: str, target: Any, **kwargs: Any) -> Any:
        if target in (BackupState.COMPLETED, BackupState.PARTIALLY_FAILED):
            b_committing.set()
            thread_a.join(60)
        return real_transition(cluster, backup_id, target, **kwargs)

    monkeypatch.setattr(catalog_b, "transition", b_transition)
    worker_a = _worker(services, catalog_a, lambda: NOW)
    worker_b = _worker(services, catalog_b, lambda: NOW + timedelta(minutes=10))
    thread_a = threading.Thread(target=lambda: outcome_a.append(worker_a.run(job)))
    thread_a.start()
    assert stalled.wait(60)

    outcome_b = worker_b.run(job)
    thread_a.join(60)

    record = services.catalog().get("fence-cluster", outcome_b.record.backup_id)
    assert outcome_b.record.state == BackupState.COMPLETED
    assert record.state == BackupState.COMPLETED and record.manifest_key
    assert outcome_a and outcome_a[0].record.state != BackupState.FAILED
    manifest = RepositoryReader(services.repository()).load_manifest("fence-cluster", record.backup_id)
    assert manifest.backup_id == record.backup_id


def test_a_superseded_worker_cannot_heartbeat_or_transition(services: Services) -> None:
    catalog = services.catalog()
    record, _ = catalog.claim_job(f"j-{uuid.uuid4()}", "fence-cluster", "20260301-120000-aaaaaa", now=NOW)
    catalog.transition("fence-cluster", record.backup_id, BackupState.RUNNING, now=NOW, claim="token-a")
    taken = catalog.transition(
        "fence-cluster", record.backup_id, BackupState.RUNNING, now=NOW, worker="token-a", claim="token-b"
    )
    assert taken.worker == "token-b"

    with pytest.raises(WorkerSuperseded):
        catalog.heartbeat("fence-cluster", record.backup_id, NOW, worker="token-a")
    with pytest.raises(WorkerSuperseded):
        catalog.transition("fence-cluster", record.backup_id, BackupState.FAILED, now=NOW, worker="token-a")
    with pytest.raises(WorkerSuperseded):
        catalog.transition(
            "fence-cluster", record.backup_id, BackupState.RUNNING, now=NOW, worker="token-a", claim="token-c"
        )
    assert catalog.heartbeat("fence-cluster", record.backup_id, NOW, worker="token-b").worker == "token-b"
    assert catalog.get("fence-cluster", record.backup_id).state == BackupState.RUNNING
