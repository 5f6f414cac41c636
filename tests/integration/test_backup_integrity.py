"""Corruption does not spread: a backup that deduplicates against a damaged pack does not commit a manifest."""

from __future__ import annotations

import uuid
from typing import Any

from chalicelib.backup.service import BackupService
from chalicelib.core.jobs import BackupJob, ClusterRef
from chalicelib.core.models import BackupState
from chalicelib.core.scope import BackupScope
from chalicelib.repository import RepositoryReader
from chalicelib.services import Services


def _backup(services: Services, kubeconfig_path: Any, namespaces: list[str]) -> Any:
    auth = {"type": "kubeconfig", "kubeconfig": kubeconfig_path.read_text()}
    job = BackupJob(
        job_id=f"t-{uuid.uuid4()}",
        cluster=ClusterRef("integrity-cluster", auth),
        scope=BackupScope(include_namespaces=tuple(namespaces)),
        shard=False,
    )
    service = BackupService(services.catalog(), lambda: services.repository(create=True), services.connect)
    return service.run(job).record


def _damage_a_reused_frame(services: Services, backup_id: str) -> str:
    repo = services.repository()
    reader = RepositoryReader(repo)
    manifest = reader.load_manifest("integrity-cluster", backup_id)
    tree_blobs = set(reader.root(manifest).values())
    entry = next(e for _, e in reader.walk(manifest) if e.blob not in tree_blobs)
    where = reader.load_index()[entry.blob]
    key = repo.pack_key(where.pack)
    body = bytearray(repo.store.get(key))
    body[where.frame_offset] ^= 0x55  # the frame's zstd magic: every blob of the frame no longer reads
    repo.store.put(key, bytes(body), create_only=False)
    return str(entry.blob)


def test_a_backup_that_would_reuse_a_damaged_blob_commits_no_manifest(
    services: Services, kubeconfig_path: Any, app_ns: Any
) -> None:
    first = _backup(services, kubeconfig_path, app_ns.namespaces)
    assert first.state == BackupState.COMPLETED
    _damage_a_reused_frame(services, first.backup_id)

    second = _backup(services, kubeconfig_path, app_ns.namespaces)

    assert second.parent == first.backup_id
    assert second.state == BackupState.FAILED, "a backup reaching a damaged blob would be unrestorable"
    assert "damaged" in (second.failure or "") and "nothing was committed" in (second.failure or "")
    assert second.manifest_key is None
    assert ("integrity-cluster", second.backup_id) not in set(RepositoryReader(services.repository()).list_backups())


def test_a_damaged_parent_tree_is_not_reused_or_deduplicated_against(
    services: Services, kubeconfig_path: Any, app_ns: Any
) -> None:
    first = _backup(services, kubeconfig_path, app_ns.namespaces)
    repo = services.repository()
    reader = RepositoryReader(repo)
    manifest = reader.load_manifest("integrity-cluster", first.backup_id)
    tree = sorted(reader.root(manifest).values())[0]
    where = reader.load_index()[tree]
    body = bytearray(repo.store.get(repo.pack_key(where.pack)))
    body[where.frame_offset] ^= 0x55
    repo.store.put(repo.pack_key(where.pack), bytes(body), create_only=False)

    second = _backup(services, kubeconfig_path, app_ns.namespaces)

    # The parent's trees are hash-checked when loaded for reuse; the unchanged scope's tree hashes to the damaged
    # one's id, so the new backup would reach it: it must not commit.
    assert second.state == BackupState.FAILED and "damaged" in (second.failure or "")
    assert second.manifest_key is None


def test_an_unchanged_backup_has_read_its_sample_of_the_parent_before_it_writes_its_trees(
    services: Services, kubeconfig_path: Any, app_ns: Any, monkeypatch: Any
) -> None:
    from chalicelib.backup import opening

    first = _backup(services, kubeconfig_path, app_ns.namespaces)
    seen: list[tuple[list[str], list[str], dict[str, Any]]] = []
    original = opening.damaged

    def spy(reader: Any, index: Any, sample: Any, **kwargs: Any) -> Any:
        shared = [tree for tree in kwargs.get("always") or () if tree in index]  # held before this backup
        seen.append((list(sample), shared, dict(kwargs.get("checked") or {})))
        return original(reader, index, sample, **kwargs)

    monkeypatch.setattr(opening, "damaged", spy)
    second = _backup(services, kubeconfig_path, app_ns.namespaces)

    assert second.state == BackupState.COMPLETED and second.parent == first.backup_id
    [(sample, trees, checked)] = seen
    # Every blob of the sample was read while the backup listed, and read well, and the trees it shares with its
    # parent (on the test server all of them, the root too) were hash-checked as the parent's were loaded: none is
    # read again.
    assert sample and set(sample) <= set(checked)
    assert trees and set(trees) <= set(checked)
    assert all(error is None for error in checked.values())
