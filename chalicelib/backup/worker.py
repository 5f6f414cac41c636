"""Entry point for one backup job message: parse, run, log and publish metrics."""

from __future__ import annotations

from typing import Any

import orjson

from chalicelib.backup.service import BackupService
from chalicelib.core.jobs import BackupJob, InvalidJob
from chalicelib.observability import logger, publish_backup_metrics


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
    log.append_keys(job_id=job.job_id, cluster=job.cluster.name)
    outcome = service.run(job)
    record = outcome.record
    log.set_correlation_id(record.backup_id)
    if not outcome.created and record.state in ("Completed", "PartiallyFailed", "Failed"):
        log.info("duplicate delivery of a finished job", extra={"backup_id": record.backup_id, "state": record.state})
    else:
        log.info(
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
