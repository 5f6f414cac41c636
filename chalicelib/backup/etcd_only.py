"""Etcd-only backups: the etcd snapshot of a policy whose etcd block has its own schedule, with no resources.

The manifest says ``kind: "etcd"`` and names an empty root tree, so the reachability walk, replication, retention, GC
and ``repo check`` treat it like any backup; the Kubernetes API is never called (a broken control plane is what the
snapshot is for). The empty root tree is one blob, stored once per repository: every later etcd-only backup writes
only its snapshot and its manifest.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import replace
from datetime import datetime
from typing import Any

from chalicelib.backup.commit import EtcdSnapshotFn, build_manifest, commit_manifest, iso, take_etcd_snapshot
from chalicelib.backup.errors import BackupError
from chalicelib.catalog.errors import RecordNotFound
from chalicelib.core.jobs import BackupJob
from chalicelib.core.manifest import KIND_ETCD
from chalicelib.core.models import BackupRecord
from chalicelib.core.trees import encode_root


def resource_parent(
    catalog: Any, cluster: str, *, guess: Callable[[str | None], None] | None = None
) -> BackupRecord | None:
    """The newest restorable resource backup of ``cluster``: the parent of its next backup.

    An etcd-only backup holds no objects, so it never is one; it records as its own parent the resource backup that
    was newest when it ran, which is the answer when it is now the newest backup. ``guess`` is told the parent's id
    as the catalog's state index names it, before it is confirmed (``BackupCatalog.latest``'s ``indexed``).
    """
    indexed = None
    if guess is not None:
        indexed = lambda record: guess(record.parent if record.etcd_only else record.backup_id)  # noqa: E731
    latest: BackupRecord | None = catalog.latest(cluster, indexed=indexed)
    if latest is None or not latest.etcd_only:
        return latest
    if not latest.parent:
        return None
    try:
        parent: BackupRecord = catalog.get(cluster, latest.parent)
    except RecordNotFound:
        return None  # gone since: the next backup is a full one, which is always correct
    return parent


def run_etcd_only(
    job: BackupJob,
    record: BackupRecord,
    *,
    open_repository: Callable[[], Any],
    take: EtcdSnapshotFn | None,
    catalog: Any,
    clock: Callable[[], datetime],
    worker: str | None,
) -> BackupRecord:
    """Take the snapshot and commit it; a snapshot that fails fails the backup (there is nothing else to keep)."""
    from chalicelib.repository import RepositoryReader, RepositoryWriter

    started, started_at = time.monotonic(), clock()
    repo = open_repository()
    writer = RepositoryWriter(repo, known=RepositoryReader(repo).load_index().__contains__)
    root_id, data = encode_root({})
    writer.add(root_id, data, type="tree")
    index_files = writer.finish()
    errors: list[dict[str, str]] = []
    etcd = take_etcd_snapshot(take, job.cluster, record.backup_id, repo.store, errors)
    if etcd is None:
        cause = errors[0]["error"] if errors else "the job names no etcd"
        raise BackupError(f"etcd-only backup {record.backup_id} of {job.cluster.name}: {cause}; nothing was committed")
    stats = {**writer.stats, "duration_ms": int((time.monotonic() - started) * 1000)}
    manifest = build_manifest(
        record,
        policy=job.policy,
        started_at=iso(started_at),
        finished_at=clock(),
        kubernetes_version="",
        scope={},
        root_tree=root_id,
        trees=0,
        objects=0,
        namespaces=0,
        kinds={},
        index_files=index_files,
        stats=stats,
        errors=[],
        etcd_snapshot=etcd,
    )
    manifest = replace(manifest, kind=KIND_ETCD)
    return commit_manifest(catalog, repo, writer, manifest, clock=clock, worker=worker).record
