"""The restore worker: one SQS message is one restore job, run to the end or checkpointed for a later invocation."""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable, Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

from chalicelib.catalog.errors import CatalogError, RecordNotFound
from chalicelib.catalog.restore_records import MAX_PLAN_ITEMS, RestoreRecord, RestoreStateConflict
from chalicelib.core.events import restore_event
from chalicelib.core.restore_jobs import TERMINAL, RestoreState, job_outcome
from chalicelib.observability import logger
from chalicelib.restore.checkpointer import Checkpointer, Heartbeat
from chalicelib.restore.errors import LeaseLost, RetryLater
from chalicelib.retry import describe, is_transient, retry_delay_s

# A Running job whose heartbeat is older than this lost its worker (crash, timeout): a redelivery takes it over.
HEARTBEAT_STALE = timedelta(minutes=5)
HEARTBEAT_EVERY_S = 30.0
# Transient failures (throttling, an unreachable API server) are retried by redelivery this many times; the queue's
# maxReceiveCount (5) must be larger, or the message reaches the DLQ while the job still says Running.
MAX_RETRIES = 2
# Stop taking new objects this long before the Lambda's deadline, checkpoint, and continue in a new invocation.
DEADLINE_MARGIN_MS = 60_000
MAX_WARNINGS = 20


def _utcnow() -> datetime:
    return datetime.now(UTC)


class RestoreWorker:
    """Claims a restore job, runs (or plans) it against the target cluster, records the outcome, announces it."""

    def __init__(
        self,
        catalog: Any,
        open_reader: Callable[[], Any],
        connect: Callable[[str], Any],  # a registered cluster's name -> a Kubernetes client
        make_engine: Callable[[Any, Any], Any],
        events: Any,
        queue: Any,
        *,
        clock: Callable[[], datetime] = _utcnow,
        remaining_ms: Callable[[], int] | None = None,
        heartbeat_every_s: float = HEARTBEAT_EVERY_S,
        open_replica_reader: Callable[[], Any] | None = None,
    ) -> None:
        """``open_replica_reader``: the replica region's repository, read when the primary's cannot be (its bucket
        or the backup's manifest is gone): a restore is what a lost primary region calls for."""
        self._catalog = catalog
        self._open_replica_reader = open_replica_reader
        self._source_note: str | None = None
        self._open_reader = open_reader
        self._connect = connect
        self._make_engine = make_engine
        self._events = events
        self._queue = queue
        self._clock = clock
        self._remaining_ms = remaining_ms
        self._heartbeat_every = heartbeat_every_s
        self._worker = uuid.uuid4().hex
        self._margin_ms: int | None = None

    def handle_message(self, body: str | bytes | Mapping[str, Any]) -> dict[str, Any]:
        """Run the restore job one queue message names; a malformed message is logged and dropped.

        A job released after a transient failure is sent again with a delay, and this message is acknowledged: the
        retry does not wait for the queue's visibility timeout. If that send fails, the error returns the message.
        """
        try:
            data = body if isinstance(body, Mapping) else json.loads(body)
            restore_id = data["restore_id"]
            if not isinstance(restore_id, str) or not restore_id:
                raise ValueError("restore_id must be a non-empty string")
        except (ValueError, KeyError, TypeError) as exc:
            logger().error("rejected malformed restore message", extra={"error": str(exc)})
            return {"status": "rejected", "error": str(exc)}
        try:
            return self.handle(restore_id)
        except RetryLater as exc:
            if exc.delay_s is None:
                raise
            self._queue.send(restore_id, delay_s=exc.delay_s)
            logger().warning("restore attempt failed; retrying", extra={"error": str(exc), "delay_s": exc.delay_s})
            return {"status": "retrying", "restore_id": restore_id, "delay_s": exc.delay_s}
        except (RecordNotFound, ValueError) as exc:
            logger().error("restore message names no restore job", extra={"restore_id": restore_id})
            return {"status": "rejected", "error": str(exc)}

    def handle(self, restore_id: str) -> dict[str, Any]:
        log = logger()
        log.set_correlation_id(restore_id)
        log.append_keys(restore_id=restore_id)
        try:
            return self._handle(restore_id)
        finally:
            # A warm Lambda handles the next message with the same logger: this job's key must not leak into it.
            log.remove_keys(["restore_id"])

    def _handle(self, restore_id: str) -> dict[str, Any]:
        log = logger()
        record, claimed = self._catalog.claim(restore_id, self._worker, self._clock(), stale_after=HEARTBEAT_STALE)
        if not claimed:
            if record.state in TERMINAL and record.event_sent_at is None:
                self._announce(record)  # the previous worker finished but died before announcing it
            log.info("restore already handled", extra={"restore_id": restore_id, "state": str(record.state)})
            return {"status": "duplicate", "restore_id": restore_id, "state": str(record.state)}
        log.info("restore started", extra={"restore_id": restore_id, "attempt": record.attempts})
        heartbeat = Heartbeat(
            lambda: self._catalog.heartbeat(restore_id, self._worker, self._clock()), self._heartbeat_every
        )
        heartbeat.start()
        try:
            return self._execute(record, heartbeat)
        finally:
            heartbeat.stop()

    # -- the job --------------------------------------------------------------------------------------------------

    def _execute(self, record: RestoreRecord, heartbeat: Heartbeat) -> dict[str, Any]:
        try:
            from chalicelib.core.restore_options import RestoreOptions

            options = RestoreOptions.from_dict(record.options)
            reader, manifest = self._open_backup(record)
            # The job names its target by registration only; ``connect`` resolves the registered credentials now, so
            # neither a request nor an old job record can point the worker at other credentials.
            engine = self._make_engine(reader, self._connect(str(record.target_cluster["name"])))
            if record.dry_run:
                plan = plan_view(engine.plan(manifest, options))
                return self._finish(record, RestoreState.COMPLETED, plan=plan)
            return self._run(record, engine, manifest, options, heartbeat)
        except (LeaseLost, RestoreStateConflict) as exc:
            logger().warning("restore taken over by another worker", extra={"error": str(exc)})
            return {"status": "lease-lost", "restore_id": record.restore_id}
        except RetryLater:
            raise
        except Exception as exc:
            if is_transient(exc) and record.retries < MAX_RETRIES:
                # Let SQS redeliver; the next worker may claim at once and resumes from the done markers.
                self._release(record, failed_attempt=True)
                raise RetryLater(
                    f"restore {record.restore_id}: attempt {record.attempts} failed: {exc}",
                    delay_s=retry_delay_s(record.retries + 1),
                ) from exc
            logger().exception("restore failed", extra={"restore_id": record.restore_id})
            return self._finish(record, RestoreState.FAILED, failure=describe(exc))

    def _run(
        self, record: RestoreRecord, engine: Any, manifest: Any, options: Any, heartbeat: Heartbeat
    ) -> dict[str, Any]:
        markers = self._catalog.done_markers(record.restore_id)
        checkpoint = Checkpointer(
            self._catalog, record, self._worker, done=markers.keys, next_seq=markers.next_seq, clock=self._clock
        )
        result = engine.run(
            manifest,
            options,
            progress=checkpoint.on_progress,
            on_result=checkpoint.on_result,
            completed=set(markers.keys),
            stop=lambda: heartbeat.lost or self._out_of_time(),
        )
        checkpoint.flush()
        if heartbeat.lost:
            raise LeaseLost(f"restore {record.restore_id} was taken over by another worker")
        if result.state == RestoreState.INTERRUPTED:
            self._release(record)
            self._queue.send(record.restore_id)
            logger().info("restore checkpointed before the deadline; continuing in a new invocation")
            return {"status": "continued", "restore_id": record.restore_id}
        if result.state == RestoreState.FAILED and not result.results and record.retries < MAX_RETRIES:
            # Nothing was attempted (the cluster did not answer discovery): worth another try later.
            self._release(record, failed_attempt=True)
            delay = retry_delay_s(record.retries + 1)
            raise RetryLater(f"restore {record.restore_id}: {result.message}", delay_s=delay)
        counts = self._catalog.get(record.restore_id).counts
        applied = counts.get("created", 0) + counts.get("updated", 0)
        state = job_outcome(result.state, applied=applied, failed=counts.get("failed", 0))
        return self._finish(
            record, state, failure=result.message or None, warnings=list(result.warnings)[:MAX_WARNINGS]
        )

    # -- helpers --------------------------------------------------------------------------------------------------

    def _open_backup(self, record: RestoreRecord) -> tuple[Any, Any]:
        """The reader and manifest of the job's backup: the primary repository's, else the replica's."""
        from chalicelib.repository.errors import BackupNotFound, BucketNotFound, ObjectNotFound, RepositoryNotFound

        try:
            reader = self._open_reader()
            return reader, reader.load_manifest(record.backup_cluster, record.backup_id)
        except (BucketNotFound, RepositoryNotFound, BackupNotFound, ObjectNotFound) as exc:
            if self._open_replica_reader is None:
                raise
            reader = self._open_replica_reader()
            manifest = reader.load_manifest(record.backup_cluster, record.backup_id)
            self._source_note = f"read from the replica repository: the primary one could not be read ({exc})"
            logger().warning("restore reads the replica repository", extra={"error": str(exc)})
            return reader, manifest

    def _finish(self, record: RestoreRecord, state: RestoreState, **fields: Any) -> dict[str, Any]:
        if self._source_note:
            fields["warnings"] = [self._source_note, *(fields.get("warnings") or [])][:MAX_WARNINGS]
        final = self._catalog.finish(record.restore_id, self._worker, state, self._clock(), **fields)
        self._announce(final)
        logger().info("restore finished", extra={"state": str(final.state), "counts": final.counts})
        return {"status": str(final.state), **event_detail(final)}

    def _announce(self, record: RestoreRecord) -> None:
        # Unlike the other events, a restore's is retried until it is put: a redelivery announces a finished
        # restore whose event was not sent (``event_sent_at``), so the caller waiting on it is never left waiting.
        event = restore_event(completed=record.state == RestoreState.COMPLETED, detail=event_detail(record))
        self._events.publish(event.detail_type, event.detail)
        self._catalog.mark_event_sent(record.restore_id, self._clock())

    def _release(self, record: RestoreRecord, *, failed_attempt: bool = False) -> None:
        try:
            self._catalog.release(record.restore_id, self._worker, self._clock(), failed_attempt=failed_attempt)
        except CatalogError:
            logger().warning("could not release the restore claim; it frees itself when the heartbeat goes stale")

    def _out_of_time(self) -> bool:
        if self._remaining_ms is None:
            return False
        if self._margin_ms is None:
            # A short timeout (chalice local, a test) gets a proportionate margin, so every invocation makes progress.
            self._margin_ms = min(DEADLINE_MARGIN_MS, int(self._remaining_ms()) // 5)
        return self._remaining_ms() < self._margin_ms


# -- views ------------------------------------------------------------------------------------------------------------


def plan_view(plan: Any) -> dict[str, Any]:
    """A dry run's plan for the record: the summary and the first MAX_PLAN_ITEMS items (a record has 400 KB)."""
    items = [item.to_dict() for item in plan.items]
    return {
        "counts": plan.counts(),
        "skipped": plan.skipped_by_reason(),
        "total": len(items),
        "items": items[:MAX_PLAN_ITEMS],
        "truncated": len(items) > MAX_PLAN_ITEMS,
    }


def event_detail(record: RestoreRecord) -> dict[str, Any]:
    return {
        "restore_id": record.restore_id,
        "state": str(record.state),
        "dry_run": record.dry_run,
        "backup": {"cluster": record.backup_cluster, "backup_id": record.backup_id},
        "target_cluster": record.target_cluster.get("name"),
        "progress": {"done": record.done, "total": record.total},
        "counts": dict(record.counts),
        "failures_total": record.failures_total,
        "failures": record.failures[:20],  # the event stays small; the record keeps up to MAX_FAILURES
        "failure": record.failure,
        "started_at": record.started_at,
        "finished_at": record.finished_at,
    }
