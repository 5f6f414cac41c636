"""The events Lifeboat publishes on EventBridge: their detail-types and pure builders of each event's detail."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from chalicelib.core.models import BackupRecord, BackupState

SOURCE = "lifeboat"
# Additive changes (a new field, a new event) keep the version; removing a field or changing its meaning bumps it
# (docs/events.md). Rules and consumers can then match on it.
SCHEMA_VERSION = "1"

BACKUP_STARTED = "Backup Started"
BACKUP_COMPLETED = "Backup Completed"
BACKUP_PARTIALLY_FAILED = "Backup Partially Failed"
BACKUP_FAILED = "Backup Failed"
REPLICATION_COMPLETED = "Replication Completed"
REPLICATION_FAILED = "Replication Failed"
SNAPSHOT_COPY_COMPLETED = "Snapshot Copy Completed"
SNAPSHOT_COPY_FAILED = "Snapshot Copy Failed"
MAINTENANCE_COMPLETED = "Maintenance Completed"
MAINTENANCE_FAILED = "Maintenance Failed"
VERIFICATION_SUCCEEDED = "Verification Succeeded"
VERIFICATION_FAILED = "Verification Failed"
RESTORE_COMPLETED = "Restore Completed"
RESTORE_FAILED = "Restore Failed"
HOOK_FAILED = "Hook Failed"
DUMP_COMPLETED = "Dump Completed"
DUMP_FAILED = "Dump Failed"

# What an operator is paged for: the example rule in infra/lifeboat.yaml sends exactly these to SNS.
FAILURE_TYPES = (
    BACKUP_PARTIALLY_FAILED,
    BACKUP_FAILED,
    REPLICATION_FAILED,
    SNAPSHOT_COPY_FAILED,
    MAINTENANCE_FAILED,
    VERIFICATION_FAILED,
    RESTORE_FAILED,
    HOOK_FAILED,
    DUMP_FAILED,
)
DETAIL_TYPES = (
    BACKUP_STARTED,
    BACKUP_COMPLETED,
    BACKUP_PARTIALLY_FAILED,
    BACKUP_FAILED,
    REPLICATION_COMPLETED,
    REPLICATION_FAILED,
    SNAPSHOT_COPY_COMPLETED,
    SNAPSHOT_COPY_FAILED,
    MAINTENANCE_COMPLETED,
    MAINTENANCE_FAILED,
    VERIFICATION_SUCCEEDED,
    VERIFICATION_FAILED,
    RESTORE_COMPLETED,
    RESTORE_FAILED,
    HOOK_FAILED,
    DUMP_COMPLETED,
    DUMP_FAILED,
)

# An EventBridge entry holds 256 KB; lists are cut to their first few and their totals said beside them.
MAX_LISTED = 20
MAX_TEXT = 2048

_BACKUP_OUTCOMES = {
    BackupState.COMPLETED: BACKUP_COMPLETED,
    BackupState.PARTIALLY_FAILED: BACKUP_PARTIALLY_FAILED,
    BackupState.FAILED: BACKUP_FAILED,
}


@dataclass(frozen=True)
class Event:
    """One event: its detail-type and its detail (which always carries ``schema_version``)."""

    detail_type: str
    detail: dict[str, Any] = field(default_factory=dict)


def _event(detail_type: str, **fields: Any) -> Event:
    if detail_type not in DETAIL_TYPES:
        raise ValueError(f"unknown event detail-type {detail_type!r}")
    return Event(detail_type, {"schema_version": SCHEMA_VERSION, **fields})


def _text(value: str | None) -> str | None:
    return None if value is None else value[:MAX_TEXT]


def backup_event(record: BackupRecord, *, started: bool = False) -> Event | None:
    """The event of a backup record a transition just wrote: Started (``started``: the first claim), one of the
    three outcomes for a terminal state, None for any other (a heartbeat, a retry, an expiry)."""
    if started and record.state == BackupState.RUNNING:
        return _event(BACKUP_STARTED, **_backup_fields(record))
    detail_type = _BACKUP_OUTCOMES.get(BackupState(record.state))
    if detail_type is None:
        return None
    errors = list(record.errors or [])
    return _event(
        detail_type,
        **_backup_fields(record),
        finished_at=record.finished_at,
        manifest_key=record.manifest_key,
        counts=dict(record.counts or {}),
        bytes_uploaded=int((record.stats or {}).get("bytes_uploaded", 0)),
        duration_ms=(record.stats or {}).get("duration_ms"),
        errors_total=len(errors) + int((record.extra or {}).get("errors_omitted", 0)),
        errors=errors[:MAX_LISTED],
        failure=_text(record.failure),
    )


def _backup_fields(record: BackupRecord) -> dict[str, Any]:
    return {
        "cluster": record.cluster,
        "backup_id": record.backup_id,
        "policy": record.policy,
        "job_id": record.job_id,
        "kind": "etcd" if record.etcd_only else "resources",
        "parent": record.parent,
        "state": str(record.state),
        "started_at": record.started_at,
    }


def replication_completed(
    cluster: str, backup_id: str, region: str, *, lag_s: float | None, copied: int, repaired: int = 0
) -> Event:
    """A backup is complete and verified in the replica ``region`` (sent by the run that completed it): ``lag_s``
    from its manifest's write in the primary, ``copied``/``repaired`` objects this run wrote."""
    return _event(
        REPLICATION_COMPLETED,
        cluster=cluster,
        backup_id=backup_id,
        region=region,
        lag_s=lag_s,
        copied=copied,
        repaired=repaired,
    )


def replication_failed(cluster: str, backup_id: str, region: str, *, error: str) -> Event:
    """An attempt to replicate a backup failed (the next event or reconciler pass retries it)."""
    return _event(REPLICATION_FAILED, cluster=cluster, backup_id=backup_id, region=region, error=_text(error))


def snapshot_copy_event(
    cluster: str,
    backup_id: str,
    *,
    snapshot_id: str,
    region: str,
    source_snapshot_id: str,
    source_region: str,
    namespace: str,
    pvc: str,
    failed: bool,
    error: str = "",
) -> Event:
    """A backup's EBS snapshot copy settled in the replica region: completed, or failed with EC2's reason."""
    return _event(
        SNAPSHOT_COPY_FAILED if failed else SNAPSHOT_COPY_COMPLETED,
        cluster=cluster,
        backup_id=backup_id,
        snapshot_id=snapshot_id,
        region=region,
        source_snapshot_id=source_snapshot_id,
        source_region=source_region,
        namespace=namespace,
        pvc=pvc,
        error=_text(error) or None,
    )


def maintenance_completed(
    *,
    status: str,
    message: str = "",
    expired: int = 0,
    packs_deleted: int = 0,
    bytes_freed: int = 0,
    snapshots_deleted: int = 0,
    blobs_checked: int | None = None,
    damaged_blobs: int | None = None,
) -> Event:
    """A maintenance pass ended: ``status`` done, or busy (the repository lease was not free; nothing was done)."""
    return _event(
        MAINTENANCE_COMPLETED,
        status=status,
        message=_text(message),
        expired=expired,
        packs_deleted=packs_deleted,
        bytes_freed=bytes_freed,
        snapshots_deleted=snapshots_deleted,
        blobs_checked=blobs_checked,
        damaged_blobs=damaged_blobs,
    )


def maintenance_failed(error: str) -> Event:
    """A maintenance pass stopped on an error (it is retried by the next schedule)."""
    return _event(MAINTENANCE_FAILED, error=_text(error))


def verification_event(
    *,
    passed: bool,
    verification_id: str,
    policy: str,
    cluster: str,
    target_cluster: str,
    backup_id: str | None,
    state: str,
    rto_s: float | None,
    rto_target_minutes: int | None,
    rto_exceeded: bool,
    problems: int,
    message: str,
    outcomes: Mapping[str, str] | None = None,
) -> Event:
    """A verification run ended: Succeeded when it passed, Failed otherwise (problems, RTO exceeded, an error)."""
    return _event(
        VERIFICATION_SUCCEEDED if passed else VERIFICATION_FAILED,
        verification_id=verification_id,
        policy=policy,
        cluster=cluster,
        target_cluster=target_cluster,
        backup_id=backup_id,
        state=state,
        rto_s=rto_s,
        rto_target_minutes=rto_target_minutes,
        rto_exceeded=rto_exceeded,
        problems=problems,
        message=_text(message),
        outcomes=dict(outcomes or {}),
    )


def restore_event(*, completed: bool, detail: Mapping[str, Any]) -> Event:
    """A restore ended: Completed, or Failed (which includes PartiallyFailed: ``state`` says which)."""
    return _event(RESTORE_COMPLETED if completed else RESTORE_FAILED, **dict(detail))


def hook_failed(
    *,
    cluster: str,
    backup_id: str,
    policy: str | None,
    phase: str,
    hook: str,
    hook_type: str,
    on_error: str,
    error: str,
    target: str | None = None,
) -> Event:
    """A backup hook failed: ``phase`` pre or post, ``hook`` its name, ``hook_type`` webhook|lambda|exec,
    ``on_error`` fail (the backup fails) or continue, ``target`` what it ran against (pod/container, URL, function)."""
    return _event(
        HOOK_FAILED,
        cluster=cluster,
        backup_id=backup_id,
        policy=policy,
        phase=phase,
        hook=hook,
        hook_type=hook_type,
        on_error=on_error,
        target=target,
        error=_text(error),
    )


def dump_event(
    *,
    cluster: str,
    backup_id: str,
    policy: str | None,
    name: str,
    engine: str,
    namespace: str,
    failed: bool,
    key: str | None = None,
    size: int | None = None,
    sha256: str | None = None,
    duration_s: float | None = None,
    engine_version: str | None = None,
    error: str | None = None,
) -> Event:
    """A database dump of a backup ended: Completed with its artifact (key, size, checksum), or Failed with why."""
    return _event(
        DUMP_FAILED if failed else DUMP_COMPLETED,
        cluster=cluster,
        backup_id=backup_id,
        policy=policy,
        name=name,
        engine=engine,
        engine_version=engine_version,
        namespace=namespace,
        key=key,
        size=size,
        sha256=sha256,
        duration_s=duration_s,
        error=_text(error),
    )


def listed(items: Sequence[Any]) -> list[Any]:
    """The first ``MAX_LISTED`` of ``items``: what an event carries of a long list (its total goes beside it)."""
    return list(items[:MAX_LISTED])
