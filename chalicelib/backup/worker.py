"""Entry points for backup-jobs messages (jobs, shards, commits, volume waits): parse, run, log, publish metrics."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol

import orjson

from chalicelib.backup.service import BackupOutcome
from chalicelib.core.jobs import BackupJob, CommitMessage, InvalidJob, ShardMessage, VolumesMessage, parse_message
from chalicelib.core.models import BackupRecord
from chalicelib.observability import logger, publish_backup_metrics


class BackupService(Protocol):
    """What the entry points need of ``backup.service.BackupService`` (or of the lease-holding wrapper around it)."""

    def run(self, job: BackupJob, /) -> BackupOutcome: ...

    def run_shard(self, msg: ShardMessage, /, *, remaining_ms: Callable[[], int] | None = None) -> dict[str, Any]: ...

    def commit(self, msg: CommitMessage, /) -> tuple[BackupRecord | None, str]: ...

    def resume_volumes(self, msg: VolumesMessage, /) -> tuple[BackupRecord | None, str]: ...

    def record(self, cluster: str, backup_id: str, /) -> BackupRecord: ...


def handle_message(
    service: BackupService,
    payload: str | bytes | dict[str, Any],
    *,
    remaining_ms: Callable[[], int] | None = None,
) -> dict[str, Any]:
    """Handle one message of the backup-jobs queue, whatever its type; ``remaining_ms`` is the invocation's time.

    A malformed message is logged and dropped. ``RetryLater`` (a shard owned by a live worker) and unexpected
    errors propagate, so the queue delivers the message again; every step is idempotent.
    """
    try:
        return _handle(service, payload, remaining_ms)
    finally:
        # A warm Lambda handles the next message with the same logger: this one's keys must not leak into it.
        logger().remove_keys(list(_KEYS))


_KEYS = ("job_id", "cluster", "backup_id")


def _handle(
    service: BackupService, payload: str | bytes | dict[str, Any], remaining_ms: Callable[[], int] | None
) -> dict[str, Any]:
    log = logger()
    try:
        message = parse_message(payload if isinstance(payload, dict) else orjson.loads(payload))
    except (InvalidJob, orjson.JSONDecodeError) as exc:
        log.error("rejected malformed backup message", extra={"error": str(exc)})
        return {"status": "rejected", "error": str(exc)}
    if isinstance(message, BackupJob):
        return _run_job(service, message)
    log.append_keys(cluster=message.cluster.name, backup_id=message.backup_id)
    log.set_correlation_id(message.backup_id)
    if isinstance(message, ShardMessage):
        result = service.run_shard(message, remaining_ms=remaining_ms)
        log.info("backup shard handled", extra=result)
        if result.get("status") == "Failed":
            publish_backup_metrics(service.record(message.cluster.name, message.backup_id))
        return result
    if isinstance(message, VolumesMessage):
        return _finish(message.backup_id, *service.resume_volumes(message))
    return _commit(service, message)


def _commit(service: BackupService, message: CommitMessage) -> dict[str, Any]:
    return _finish(message.backup_id, *service.commit(message))


def _finish(backup_id: str, record: Any, what: str) -> dict[str, Any]:
    if what != "committed" or record is None:
        logger().info("backup commit skipped", extra={"backup_id": backup_id, "reason": what})
        if record is not None and what == "rejected" and record.state == "Failed":
            publish_backup_metrics(record)  # the commit itself failed the backup: that alarms like any failure
        return {"status": what, "backup_id": backup_id}
    _log_finished(record)
    publish_backup_metrics(record)
    return {"status": str(record.state), "backup_id": record.backup_id, "counts": record.counts, "stats": record.stats}


def _log_finished(record: Any) -> None:
    logger().info(
        "backup finished",
        extra={
            "backup_id": record.backup_id,
            "state": str(record.state),
            "counts": record.counts,
            "stats": record.stats,
            "errors": record.errors,
            "failure": record.failure,
        },
    )


def handle_job(service: BackupService, payload: str | bytes | dict[str, Any]) -> dict[str, Any]:
    """Run the job in ``payload``; a malformed job is logged and dropped (retrying it cannot help).

    Any other exception propagates so the queue redelivers the message; the catalog makes that redelivery
    harmless (the job id is claimed once, a live worker is never doubled).
    """
    log = logger()
    try:
        data = payload if isinstance(payload, dict) else orjson.loads(payload)
        job = BackupJob.from_dict(data)
    except (InvalidJob, orjson.JSONDecodeError) as exc:
        log.error("rejected malformed backup job", extra={"error": str(exc)})
        return {"status": "rejected", "error": str(exc)}
    try:
        return _run_job(service, job)
    finally:
        log.remove_keys(list(_KEYS))


def _run_job(service: BackupService, job: BackupJob) -> dict[str, Any]:
    log = logger()
    log.append_keys(job_id=job.job_id, cluster=job.cluster.name)
    outcome = service.run(job)
    record = outcome.record
    log.append_keys(backup_id=record.backup_id)
    log.set_correlation_id(record.backup_id)
    if not outcome.created and record.state in ("Completed", "PartiallyFailed", "Failed"):
        log.info("duplicate delivery of a finished job", extra={"backup_id": record.backup_id, "state": record.state})
    elif record.state == "Running" and (record.extra.get("retry") or {}).get("pending"):
        retry = record.extra["retry"]
        log.warning("backup attempt failed; retrying", extra={"backup_id": record.backup_id, **retry})
        return {"status": "retrying", "backup_id": record.backup_id, "attempt": retry["attempt"]}
    elif record.state == "Running":
        what = "backup sharded; shards continue in other invocations" if outcome.created else "backup still running"
        log.info(what, extra={"backup_id": record.backup_id})
    else:
        _log_finished(record)
        publish_backup_metrics(record)
    return {
        "status": str(record.state),
        "backup_id": record.backup_id,
        "duplicate": not outcome.created,
        "counts": record.counts,
        "stats": record.stats,
        "errors": record.errors,
        "failure": record.failure,
    }
