"""Backup records and their state machine."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from chalicelib.core.errors import InvalidStateTransition


class BackupState(StrEnum):
    PENDING = "Pending"
    RUNNING = "Running"
    COMPLETED = "Completed"
    PARTIALLY_FAILED = "PartiallyFailed"
    FAILED = "Failed"
    EXPIRED = "Expired"  # retention removed the manifest; the record stays for audit


TERMINAL = frozenset({BackupState.COMPLETED, BackupState.PARTIALLY_FAILED, BackupState.FAILED, BackupState.EXPIRED})

_ALLOWED: dict[BackupState, frozenset[BackupState]] = {
    BackupState.PENDING: frozenset({BackupState.RUNNING, BackupState.FAILED}),
    BackupState.RUNNING: frozenset(
        {BackupState.RUNNING, BackupState.COMPLETED, BackupState.PARTIALLY_FAILED, BackupState.FAILED}
    ),
    BackupState.COMPLETED: frozenset({BackupState.EXPIRED}),
    BackupState.PARTIALLY_FAILED: frozenset({BackupState.EXPIRED}),
    BackupState.FAILED: frozenset(),
    BackupState.EXPIRED: frozenset(),
}


class ReplicaState(StrEnum):
    """A backup's copy in one replica region; independent of the backup's own state machine."""

    PENDING = "Pending"
    REPLICATED = "Replicated"  # the whole closure, manifest last, is in the replica and verified
    FAILED = "Failed"


# Replicated is final: a later duplicate event or reconciler run can never make a restorable replica look unfinished.
REPLICA_SOURCES: dict[ReplicaState, frozenset[ReplicaState]] = {
    ReplicaState.PENDING: frozenset({ReplicaState.PENDING, ReplicaState.FAILED}),
    ReplicaState.REPLICATED: frozenset({ReplicaState.PENDING, ReplicaState.FAILED}),
    ReplicaState.FAILED: frozenset({ReplicaState.PENDING, ReplicaState.FAILED}),
}


def allowed_sources(target: BackupState) -> frozenset[BackupState]:
    """States a record may move to ``target`` from (used as a DynamoDB condition)."""
    return frozenset(s for s, targets in _ALLOWED.items() if target in targets)


def check_transition(current: BackupState, target: BackupState) -> None:
    if target not in _ALLOWED[current]:
        raise InvalidStateTransition(f"a backup cannot move from {current} to {target}")


@dataclass(frozen=True)
class BackupRecord:
    """The catalog's view of one backup (mutable status lives here, never in S3)."""

    cluster: str
    backup_id: str
    state: BackupState
    job_id: str
    policy: str | None = None
    parent: str | None = None
    created_at: str = ""
    started_at: str | None = None
    finished_at: str | None = None
    heartbeat_at: str | None = None  # refreshed by a live worker; a stale one lets a redelivered job take over
    worker: str | None = None  # the token of the worker that owns a Running backup (set at claim and takeover)
    manifest_key: str | None = None
    counts: dict[str, int] = field(default_factory=dict)
    stats: dict[str, int] = field(default_factory=dict)  # bytes_uploaded, bytes_deduplicated, duration_ms, ...
    errors: list[dict[str, str]] = field(default_factory=list)  # [{"resource": ..., "error": ...}]
    failure: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)
    # region -> {"state": ReplicaState, "updated_at", "lag_s" (when Replicated), "error" (when Failed)}
    replicas: dict[str, dict[str, Any]] = field(default_factory=dict)
    # Set by the daily check when the backup reaches a damaged or missing blob: {"found_at", "checked_at",
    # "blobs" (the first few ids), "count"}; such a backup would not restore (the restore refuses before writing).
    damaged: dict[str, Any] | None = None

    @property
    def etcd_only(self) -> bool:
        """An etcd-only backup (``extra.kind``): its own retention and RPO, never the parent of a resource backup."""
        return self.extra.get("kind") == "etcd"
