"""Helpers for the scheduling, lease and maintenance tests."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta
from typing import Any

from chalicelib.catalog import BackupCatalog
from chalicelib.core.canonical import canonical_blob
from chalicelib.core.ids import BackupId, BlobId
from chalicelib.core.manifest import Manifest
from chalicelib.core.models import BackupState
from chalicelib.core.trees import TreeEntry, encode_root, encode_tree
from chalicelib.repository import Repository, RepositoryReader, RepositoryWriter


class SerializedClient:
    """A boto3 client whose calls run one at a time.

    DynamoDB applies each request atomically; moto's in-process backend does not guard against threads, so a race
    test would otherwise test moto. Threads still interleave freely *between* requests, which is where races live.
    """

    _lock = threading.Lock()

    def __init__(self, client: Any) -> None:
        self._client = client

    def __getattr__(self, name: str) -> Any:
        attr = getattr(self._client, name)
        if not callable(attr) or name in ("get_paginator", "get_waiter"):
            return attr

        def call(*args: Any, **kwargs: Any) -> Any:
            with SerializedClient._lock:
                return attr(*args, **kwargs)

        return call


class Clock:
    """A settable clock (timezone-aware UTC)."""

    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **delta: float) -> datetime:
        self.now += timedelta(**delta)
        return self.now


def utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)  # type: ignore[misc]


def objects(prefix: str, count: int, namespace: str = "shop") -> list[tuple[str, TreeEntry, bytes]]:
    """``count`` small ConfigMaps as (scope, tree entry, canonical bytes)."""
    out = []
    for i in range(count):
        obj = {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": {"name": f"{prefix}-{i}", "namespace": namespace},
            "data": {"value": f"{prefix}-{i}" * 8},
        }
        blob, data = canonical_blob(obj)
        out.append((namespace, TreeEntry("", "configmaps", f"{prefix}-{i}", "v1", "ConfigMap", blob, len(data)), data))
    return out


def write_backup(
    repo: Repository,
    cluster: str,
    backup_id: str,
    items: list[tuple[str, TreeEntry, bytes]],
    *,
    commit: bool = True,
    pack_target_bytes: int = 1,
) -> tuple[Manifest | None, set[BlobId]]:
    """A backup of ``items`` written the way the backup worker writes one (packs, index, manifest last).

    ``pack_target_bytes=1`` gives every new blob a pack of its own, so tests can tell exactly which packs die.
    Without ``commit`` it stops before the manifest, like a crashed or still running backup.
    Returns the manifest and every blob id the backup reaches.
    """
    reader = RepositoryReader(repo)
    writer = RepositoryWriter(repo, known=reader.known_blob_ids(), pack_target_bytes=pack_target_bytes)
    scopes: dict[str, list[TreeEntry]] = {}
    reached: set[BlobId] = set()
    for scope, entry, data in items:
        writer.add(entry.blob, data)
        scopes.setdefault(scope, []).append(entry)
        reached.add(entry.blob)
    root: dict[str, BlobId] = {}
    for scope, entries in scopes.items():
        tree, data = encode_tree(entries)
        writer.add(tree, data, type="tree")
        root[scope] = tree
        reached.add(tree)
    root_id, root_data = encode_root(root)
    writer.add(root_id, root_data, type="tree")
    reached.add(root_id)
    index_files = writer.finish()
    if not commit:
        return None, reached
    manifest = Manifest(
        backup_id=BackupId(backup_id),
        cluster=cluster,
        policy=None,
        parent=None,
        started_at="2026-01-01T00:00:00Z",
        finished_at="2026-01-01T00:00:01Z",
        kubernetes_version="v1.31.0",
        scope={},
        root_tree=root_id,
        counts={"objects": len(items)},
        kinds={"ConfigMap": len(items)},
        index_files=index_files,
    )
    writer.write_manifest(manifest)
    return manifest, reached


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
    """A catalog record driven along the legal path to ``state``."""
    catalog.claim_job(job_id or f"job-{backup_id}", cluster, backup_id, policy=policy, now=started)
    if state == BackupState.PENDING:
        return
    catalog.transition(cluster, backup_id, BackupState.RUNNING, now=started, started_at=started)
    if state != BackupState.RUNNING:
        catalog.transition(cluster, backup_id, state, now=started + timedelta(minutes=5))


def backup_id_at(when: datetime, suffix: str = "aaaaaa") -> str:
    return f"{when:%Y%m%dT%H%M%SZ}-{suffix}"
