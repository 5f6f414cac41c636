"""The commit stage of every backup: build the manifest, check what it reaches, write it create-only, record it."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from chalicelib.core.etcd import EtcdTarget
from chalicelib.core.ids import BackupId, BlobId
from chalicelib.core.jobs import ClusterRef
from chalicelib.core.manifest import Manifest
from chalicelib.core.models import BackupRecord, BackupState

COMMITTED = "committed"
REJECTED = "rejected"


@dataclass(frozen=True)
class Commit:
    """What the commit stage did: the backup's record, and ``COMMITTED`` or ``REJECTED`` (nothing was written)."""

    record: BackupRecord
    outcome: str


def iso(ts: datetime) -> str:
    """A UTC time as manifests and plans write it."""
    return ts.strftime("%Y-%m-%dT%H:%M:%SZ")


def build_manifest(
    record: BackupRecord,
    *,
    policy: str | None,
    started_at: str,
    finished_at: datetime,
    kubernetes_version: str,
    scope: dict[str, Any],
    root_tree: BlobId,
    trees: int,
    objects: int,
    namespaces: int,
    kinds: Mapping[str, int],
    index_files: Sequence[str],
    stats: dict[str, int],
    errors: list[dict[str, str]],
    etcd_snapshot: dict[str, Any] | None = None,
) -> Manifest:
    """The manifest of ``record``'s backup: ``trees`` scope trees under ``root_tree``, counts derived from the rest."""
    counts = {
        "objects": objects,
        "blobs_new": int(stats.get("blobs_new", 0)),
        "trees": trees + 1,  # and the root tree
        "namespaces": namespaces,
        "errors": len(errors),
    }
    return Manifest(
        backup_id=BackupId(record.backup_id),
        cluster=record.cluster,
        policy=policy,
        parent=BackupId(record.parent) if record.parent else None,
        started_at=started_at,
        finished_at=iso(finished_at),
        kubernetes_version=kubernetes_version,
        scope=scope,
        root_tree=root_tree,
        counts=counts,
        kinds=dict(sorted(kinds.items())),
        index_files=list(index_files),
        stats=stats,
        errors=errors,
        etcd_snapshot=etcd_snapshot,
    )


# (etcd target, cluster, backup id, object store) -> the manifest's ``etcd_snapshot`` entry (services.py builds it).
EtcdSnapshotFn = Callable[[EtcdTarget, str, str, Any], dict[str, Any]]


def take_etcd_snapshot(
    take: EtcdSnapshotFn | None, ref: ClusterRef, backup_id: str, store: Any, errors: list[dict[str, str]]
) -> dict[str, Any] | None:
    """The manifest's ``etcd_snapshot`` when the job asks for one, taken before the commit.

    A snapshot that fails (etcd unreachable, stream cut short, checksum mismatch) is never committed: the entry is
    None and the failure is one of the backup's errors, so the objects are kept and the backup is PartiallyFailed.
    """
    if ref.etcd is None:
        return None
    if take is None:
        errors.append({"resource": "etcd", "error": "etcd snapshot: not configured in this deployment"})
        return None
    try:
        return take(ref.etcd, ref.name, backup_id, store)
    except Exception as exc:  # noqa: BLE001 -- a failed etcd snapshot is recorded; the objects still commit
        errors.append({"resource": "etcd", "error": f"etcd snapshot failed: {type(exc).__name__}: {exc}"})
        return None


def commit_manifest(
    catalog: Any,
    repo: Any,
    writer: Any,
    manifest: Manifest,
    *,
    clock: Callable[[], datetime],
    finished_at: datetime | None = None,
    check_reach: bool = False,
    worker: str | None = None,
    on_recorded: Callable[[BackupRecord, Manifest], None] | None = None,
) -> Commit:
    """Write ``manifest`` (the commit point) and record the backup Completed, or PartiallyFailed with errors.

    With ``check_reach`` the blobs the manifest reaches must all still be in the repository, or the backup fails
    and nothing is written. A manifest already stored (a previous attempt died before recording it) is the backup:
    it is read back and recorded. The record's stats include the manifest's own PUT. Raises ``StaleState`` when the
    record moved on meanwhile, ``WorkerSuperseded`` when ``worker`` no longer holds the backup (another recorded it).
    ``on_recorded(record, manifest)`` is called once the catalog has recorded the commit, which happens once per
    backup: a redelivery that finds the record already Completed or PartiallyFailed does not call it again.
    """
    from chalicelib.catalog.errors import WorkerSuperseded
    from chalicelib.repository.errors import ManifestExists

    cluster, backup_id = manifest.cluster, manifest.backup_id
    if check_reach:
        vanished = missing_from_repository(repo, manifest)
        if vanished:
            # Sharded backups hand the repository lease over between invocations; if garbage collection ran in a
            # gap and removed a blob a shard deduplicated against, committing would publish a broken backup.
            failure = f"blobs this backup reaches are no longer in the repository ({vanished}); nothing was committed"
            failed = catalog.transition(
                cluster, backup_id, BackupState.FAILED, now=clock(), failure=failure, worker=worker
            )
            return Commit(failed, REJECTED)
    key = repo.manifest_key(cluster, backup_id)
    try:
        key = writer.write_manifest(manifest)
        stats = dict(manifest.stats)
        stats["puts"] = stats.get("puts", 0) + 1
        stats["bytes_uploaded"] = stats.get("bytes_uploaded", 0) + len(manifest.to_json())
    except ManifestExists as exists:
        from chalicelib.repository import RepositoryReader

        # Another attempt (or the worker that took this one over) committed first: if the record already says so,
        # that is the outcome; writing it again would only race that worker.
        current = catalog.get(cluster, backup_id)
        if current.state in (BackupState.COMPLETED, BackupState.PARTIALLY_FAILED) and current.manifest_key == key:
            if worker is not None and current.worker != worker:
                # The worker that took this backup over recorded the commit: this one committed nothing.
                raise WorkerSuperseded(cluster, backup_id, current.state, current.state) from exists
            return Commit(current, COMMITTED)
        manifest = RepositoryReader(repo).load_manifest(cluster, backup_id)
        stats = dict(manifest.stats)
    committed = record_commit(catalog, manifest, key, now=clock(), finished_at=finished_at, stats=stats, worker=worker)
    if on_recorded is not None:
        on_recorded(committed, manifest)
    return Commit(committed, COMMITTED)


def record_commit(
    catalog: Any,
    manifest: Manifest,
    key: str,
    *,
    now: datetime,
    finished_at: datetime | None = None,
    stats: dict[str, int] | None = None,
    worker: str | None = None,
) -> BackupRecord:
    """The catalog side of a commit: Completed, or PartiallyFailed when some types could not be listed."""
    state = BackupState.PARTIALLY_FAILED if manifest.errors else BackupState.COMPLETED
    return catalog.transition(  # type: ignore[no-any-return]
        manifest.cluster,
        manifest.backup_id,
        state,
        now=now,
        finished_at=now if finished_at is None else finished_at,
        manifest_key=key,
        counts=manifest.counts,
        stats=manifest.stats if stats is None else stats,
        errors=manifest.errors,
        worker=worker,
    )


def missing_from_repository(repo: Any, manifest: Manifest) -> str:
    """A description of the blobs ``manifest`` reaches that the repository no longer holds ("" when none).

    Reads the index afresh, every scope tree in one batch, and the pack listing once (``repository/reach.py``): a
    blob reached must be indexed and its pack must exist.
    """
    from chalicelib.repository import RepositoryReader
    from chalicelib.repository.reach import list_packs, reachable

    reach = reachable(RepositoryReader(repo), [manifest], stored_packs=list_packs(repo.store))
    if reach.unreadable:
        return f"a tree cannot be read: {reach.unreadable[0].error}"
    unindexed = reach.unindexed
    gone = sorted(set(reach.missing_packs.values()))
    parts = []
    if unindexed:
        parts.append(f"{len(unindexed)} unindexed, first {unindexed[0]}")
    if gone:
        parts.append(f"packs missing: {', '.join(gone[:3])}")
    return "; ".join(parts)
