"""The daily check repairs a damaged blob from its cluster's unchanged object, or marks the backups damaged."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

from chalicelib.backup.service import BackupService
from chalicelib.core.jobs import BackupJob, ClusterRef
from chalicelib.core.scope import BackupScope
from chalicelib.repository import RepositoryReader, check_repository
from chalicelib.services import Services
from tests.support.sharded import CM

CLUSTER = "repair-cluster"


def _backup(services: Services, kubeconfig_path: Any, namespaces: list[str]) -> Any:
    auth = {"type": "kubeconfig", "kubeconfig": kubeconfig_path.read_text()}
    services.cluster_catalog().register(CLUSTER, auth, kubernetes_version=None, now=datetime.now(UTC))
    job = BackupJob(f"t-{uuid.uuid4()}", ClusterRef(CLUSTER, auth), BackupScope(include_namespaces=tuple(namespaces)))
    # One blob per frame, so damaging a frame damages exactly one blob.
    service = BackupService(
        services.catalog(),
        lambda: services.repository(create=True),
        services.connect,
        writer_options={"frame_target_bytes": 1},
    )
    record = service.run(job).record
    assert record.state == "Completed", record.failure
    return record


def _damage_a_configmap(services: Services, backup_id: str) -> tuple[str, Any]:
    repo = services.repository()
    reader = RepositoryReader(repo)
    manifest = reader.load_manifest(CLUSTER, backup_id)
    scope, entry = next((s, e) for s, e in reader.walk(manifest) if e.resource == "configmaps" and s)
    where = reader.load_index()[entry.blob]
    key = repo.pack_key(where.pack)
    body = bytearray(repo.store.get(key))
    body[where.frame_offset] ^= 0x55
    repo.store.put(key, bytes(body), create_only=False)
    return scope, entry


def _maintenance(services: Services) -> Any:
    return services.maintenance_service(safety_margin=timedelta(days=3650), wait_s=0, check_blobs=100_000).run()


def test_a_damaged_blob_whose_object_is_unchanged_is_repaired_and_the_backup_restores(
    services: Services, kubeconfig_path: Any, app_ns: Any
) -> None:
    record = _backup(services, kubeconfig_path, app_ns.namespaces)
    packs_before = {k: services.repository().store.get(k) for k in services.repository().store.list("packs/")}
    _scope, entry = _damage_a_configmap(services, record.backup_id)
    assert not check_repository(RepositoryReader(services.repository()), read_data=True).ok

    report = _maintenance(services)

    assert report.check is not None and report.check["damaged_blobs"] == 1
    assert report.check["repaired_blobs"] == 1 and str(entry.blob) in report.check["repaired"]
    assert entry.name in report.check["repaired"][str(entry.blob)]
    assert report.check["damaged_backups"] == []
    after = services.catalog().get(CLUSTER, record.backup_id)
    assert after.damaged is None and after.extra["repaired"]["count"] == 1
    assert after.extra["repaired"]["blobs"] == [str(entry.blob)]
    # Every object of the backup reads again; the damaged pack was not rewritten (a new pack holds the copy).
    repo = services.repository()
    reader = RepositoryReader(repo)
    manifest = reader.load_manifest(CLUSTER, record.backup_id)
    objects = [e.blob for _, e in reader.walk(manifest)]
    assert len(list(reader.read_blobs(objects))) == len(objects)
    assert check_repository(reader, read_data=True).ok
    packs_after = set(repo.store.list("packs/"))
    assert set(packs_before) < packs_after
    holder = repo.pack_key(reader.load_index()[entry.blob].pack)
    assert holder not in packs_before, "the repaired blob resolves to the new pack"


def test_a_damaged_blob_whose_object_changed_is_not_repaired_and_the_backup_is_marked(
    services: Services, kubeconfig_path: Any, app_ns: Any, kube_client: Any
) -> None:
    record = _backup(services, kubeconfig_path, app_ns.namespaces)
    scope, entry = _damage_a_configmap(services, record.backup_id)
    kube_client.patch(CM, entry.name, {"data": {"changed": uuid.uuid4().hex}}, namespace=scope)

    report = _maintenance(services)

    assert report.check is not None and report.check["repaired_blobs"] == 0
    assert "changed since the backup" in report.check["not_repaired"][str(entry.blob)]
    marked = {(d["cluster"], d["backup_id"]) for d in report.check["damaged_backups"]}
    assert marked == {(CLUSTER, record.backup_id)}
    after = services.catalog().get(CLUSTER, record.backup_id)
    assert after.damaged is not None and after.damaged["blobs"] == [str(entry.blob)]
    assert "repaired" not in after.extra
