"""Cross-region replication of the repository: event-driven verified copies, manifest last; reconciler; reports."""

from __future__ import annotations

from chalicelib.replication.closure import Closure, backup_closure
from chalicelib.replication.errors import (
    ChecksumMismatch,
    ClosureIncomplete,
    InvalidEvent,
    NotConfigured,
    ReplicaConflict,
    ReplicationError,
    ReplicationStorageError,
    SourceMissing,
)
from chalicelib.replication.events import ObjectCreated, parse_message
from chalicelib.replication.reconcile import Reconciler, ReconcileReport
from chalicelib.replication.service import BackupReplicated, BatchFailed, Copied, Replicator
from chalicelib.replication.storage import ReplicaBuckets

__all__ = [
    "BackupReplicated",
    "BatchFailed",
    "ChecksumMismatch",
    "Closure",
    "ClosureIncomplete",
    "Copied",
    "InvalidEvent",
    "NotConfigured",
    "ObjectCreated",
    "ReconcileReport",
    "Reconciler",
    "ReplicaBuckets",
    "ReplicaConflict",
    "ReplicationError",
    "ReplicationStorageError",
    "Replicator",
    "SourceMissing",
    "backup_closure",
    "parse_message",
]
