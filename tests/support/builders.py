"""Test repositories built the way a backup builds one: ItemCollector, RepositoryWriter and the commit stage."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from chalicelib.backup.commit import build_manifest, commit_manifest
from chalicelib.backup.items import ItemCollector
from chalicelib.backup.listing import Page
from chalicelib.catalog import BackupCatalog
from chalicelib.core.canonical import blob_id, canonical_json
from chalicelib.core.ids import BlobId
from chalicelib.core.manifest import Manifest
from chalicelib.core.models import BackupRecord, BackupState
from chalicelib.core.resources import Resource
from chalicelib.core.sanitize import sanitize
from chalicelib.core.scope import BackupScope
from chalicelib.repository import MemoryObjectStore, Repository, RepositoryReader, RepositoryWriter
from tests.support.resources import resource_of

STARTED_AT = "2026-01-01T00:00:00Z"
FINISHED_AT = datetime(2026, 1, 1, 0, 1, tzinfo=UTC)
KUBERNETES_VERSION = "v1.31.0"

Item = dict[str, Any] | tuple[Resource, dict[str, Any]]


@dataclass(frozen=True)
class Written:
    """What ``write_backup`` wrote: the manifest (None when not committed) and what the backup holds."""

    manifest: Manifest | None
    blobs: dict[str, BlobId]  # "<scope>/<kind>/<name>" -> blob id; the cluster scope is ""
    objects: dict[BlobId, dict[str, Any]]  # blob id -> the sanitized object stored under it
    reached: set[BlobId]  # every blob the backup reaches: objects, scope trees and the root
    index_files: list[str]


def blob_of(obj: dict[str, Any], resource: Resource | None = None) -> BlobId:
    """The blob id a backup stores ``obj`` under (sanitized and canonical, as ItemCollector stores it)."""
    res = resource or resource_of(obj)
    return blob_id(canonical_json(sanitize(obj, res.kind, res.api_version)))


def _pages(items: Iterable[Item]) -> list[Page]:
    """One page per resource type, in the order the types first appear."""
    pages: dict[Resource, Page] = {}
    for item in items:
        res, obj = item if isinstance(item, tuple) else (resource_of(item), item)
        pages.setdefault(res, Page(res, [])).items.append(obj)
    return list(pages.values())


def write_backup(
    repo: Repository,
    items: Iterable[Item],
    *,
    cluster: str = "test-cluster",
    backup_id: str = "20260101T000000Z-abcdef",
    policy: str | None = None,
    parent: str | None = None,
    commit: bool = True,
    writer: RepositoryWriter | None = None,
    catalog: BackupCatalog | None = None,
    started_at: str = STARTED_AT,
    finished_at: datetime = FINISHED_AT,
    kubernetes_version: str = KUBERNETES_VERSION,
    manifest_fields: dict[str, Any] | None = None,
    clock: Callable[[], datetime] | None = None,
    before_manifest: Callable[[], None] | None = None,
    **writer_options: Any,
) -> Written:
    """A backup of ``items`` (objects, or (Resource, object) pairs) written by the production write stage.

    Objects pass ItemCollector (sanitized, hashed, packed), the scope trees and root follow, then the index, and the
    manifest last, built by ``build_manifest``. Without ``commit`` it stops before the manifest, like a crashed or
    still running backup. With ``catalog`` the backup is claimed, run and committed there by ``commit_manifest``;
    without it only the manifest is written; ``clock`` gives the catalog's times (default: ``started_at``, then
    ``finished_at``). ``writer`` (else one deduplicating against the repository, built with
    ``writer_options``) lets a test look at its stats. ``manifest_fields`` sets what a plain backup does not write
    (volume snapshots, an etcd snapshot); ``before_manifest`` runs once the index is written (to upload artifacts the
    manifest names, as the backup worker does).
    """
    pages = _pages(items)
    if writer is None:
        writer = RepositoryWriter(repo, known=RepositoryReader(repo).known_blob_ids(), **writer_options)
    elif writer_options:
        raise TypeError("pass writer options or a writer, not both")
    namespaced = [obj for page in pages if page.resource.namespaced for obj in page.items]
    namespaces = {(obj.get("metadata") or {}).get("namespace", "") for obj in namespaced}
    collector = ItemCollector(BackupScope(), namespaces, writer)
    for page in pages:
        collector.handle_page(page, None)
    trees = collector.write_trees()
    root = collector.write_root(trees)
    index_files = writer.finish()
    scopes = collector.scope_entries()
    blobs = {f"{scope}/{e.kind}/{e.name}": e.blob for scope, entries in scopes.items() for e in entries}
    stored = {
        blob_of(obj, page.resource): sanitize(obj, page.resource.kind, page.resource.api_version)
        for page in pages
        for obj in page.items
    }
    reached = {*blobs.values(), *trees.values(), root}
    if not commit:
        return Written(None, blobs, stored, reached, index_files)
    if before_manifest is not None:
        before_manifest()

    now = clock() if clock is not None else datetime.fromisoformat(started_at.replace("Z", "+00:00"))
    if catalog is not None:
        catalog.claim_job(f"job-{backup_id}", cluster, backup_id, policy=policy, parent=parent, now=now)
        record = catalog.transition(cluster, backup_id, BackupState.RUNNING, now=now, started_at=now)
    else:
        record = BackupRecord(cluster, backup_id, BackupState.RUNNING, f"job-{backup_id}", policy=policy, parent=parent)
    manifest = build_manifest(
        record,
        policy=policy,
        started_at=started_at,
        finished_at=finished_at,
        kubernetes_version=kubernetes_version,
        scope=BackupScope().to_dict(),
        root_tree=root,
        trees=len(trees),
        objects=collector.objects,
        namespaces=len({scope for scope in trees if scope}),
        kinds=collector.kinds(),
        index_files=index_files,
        stats=dict(writer.stats),
        errors=collector.errors,
    )
    if manifest_fields:
        manifest = dataclasses.replace(manifest, **manifest_fields)
    if catalog is not None:
        commit_manifest(catalog, repo, writer, manifest, clock=clock or _fixed(finished_at), finished_at=finished_at)
    else:
        writer.write_manifest(manifest)
    return Written(manifest, blobs, stored, reached, index_files)


def _fixed(when: datetime) -> Callable[[], datetime]:
    return lambda: when


@dataclass(frozen=True)
class BuiltBackup:
    """A committed backup alone in an in-memory repository, so a restore test chooses exactly what it holds."""

    store: MemoryObjectStore
    repo: Repository
    manifest: Manifest
    blobs: dict[str, BlobId]  # "<namespace>/<kind>/<name>" -> blob id

    def reader(self) -> RepositoryReader:
        return RepositoryReader(self.repo)

    def corrupt(self, key: str) -> None:
        """Flip bytes inside one object's stored frame, as bit rot or tampering would."""
        entry = self.reader().load_index()[self.blobs[key]]
        pack_key = self.repo.pack_key(entry.pack)
        data = bytearray(self.store.objects[pack_key])
        mid = entry.frame_offset + entry.frame_length // 2
        for i in range(mid, mid + 4):
            data[i] ^= 0xFF
        self.store.objects[pack_key] = bytes(data)


def make_backup(
    objects: list[Item],
    *,
    cluster: str = "test-cluster",
    backup_id: str = "20260101T000000Z-abcdef",
) -> BuiltBackup:
    """A committed backup of ``objects`` in a new in-memory repository."""
    store = MemoryObjectStore()
    repo = Repository.open(store, create=True)
    # One blob per frame: damage hits exactly one object.
    written = write_backup(repo, objects, cluster=cluster, backup_id=backup_id, frame_target_bytes=1)
    assert written.manifest is not None
    return BuiltBackup(store, repo, written.manifest, written.blobs)


def record_backup(
    catalog: BackupCatalog,
    cluster: str,
    backup_id: str,
    *,
    policy: str | None,
    started: datetime,
    state: BackupState = BackupState.COMPLETED,
    job_id: str | None = None,
) -> None:
    """A catalog record (no repository content) driven along the legal path to ``state``."""
    catalog.claim_job(job_id or f"job-{backup_id}", cluster, backup_id, policy=policy, now=started)
    if state == BackupState.PENDING:
        return
    catalog.transition(cluster, backup_id, BackupState.RUNNING, now=started, started_at=started)
    if state != BackupState.RUNNING:
        catalog.transition(cluster, backup_id, state, now=started + timedelta(minutes=5))


def backup_id_at(when: datetime, suffix: str = "aaaaaa") -> str:
    return f"{when:%Y%m%dT%H%M%SZ}-{suffix}"


def backup_reaching(
    repo: Repository,
    cluster: str,
    backup_id: str,
    items: Iterable[Item],
    *,
    commit: bool = True,
    pack_target_bytes: int = 1,
) -> tuple[Manifest | None, set[BlobId]]:
    """``write_backup`` for garbage collection and reach tests: the manifest (None without ``commit``) and every blob
    the backup reaches. ``pack_target_bytes=1`` gives every new blob a pack of its own, so tests can tell exactly
    which packs die."""
    written = write_backup(
        repo, items, cluster=cluster, backup_id=backup_id, commit=commit, pack_target_bytes=pack_target_bytes
    )
    return written.manifest, written.reached
