"""Entry points for the Lambda handlers: a batch of queue messages, and one reconciler run. Metrics are published
here, at the Lambda boundary, so the CLI's output stays clean."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from chalicelib.observability import logger
from chalicelib.replication import metrics
from chalicelib.replication.errors import InvalidEvent
from chalicelib.replication.events import ObjectCreated, classify, parse_message
from chalicelib.replication.service import BackupReplicated, BatchFailed


def handle_messages(replicator: Any, bodies: Iterable[str]) -> dict[str, int]:
    """Replicate what a batch of S3 event messages names; raises if any object failed (SQS then redelivers).

    A message that is not an S3 event is dropped with a log line: redelivering it can never help.
    """
    events: list[ObjectCreated] = []
    dropped = 0
    for body in bodies:
        try:
            events.extend(parse_message(body))
        except InvalidEvent as exc:
            dropped += 1
            logger().warning("queue message dropped", extra={"error": str(exc)})
    try:
        results = replicator.handle(events)
    except BatchFailed as exc:
        for key, _ in exc.failures:
            metrics.publish_failure(classify(key).cluster, replicator.region, key)
        raise
    _publish_replicated(results)
    return {"events": len(events), "dropped": dropped, "results": len(results)}


def run_reconciler(reconciler: Any, time_left_ms: Callable[[], int] | None = None) -> dict[str, Any]:
    report = reconciler.run(time_left_ms=time_left_ms)
    metrics.publish_backlog(report.region, backlog=len(report.backlog), oldest_age_s=report.oldest_age_s)
    _publish_replicated(report.outcomes)
    for name in report.failed:
        metrics.publish_failure(name.split("/", 1)[0], report.region, name)
    return dict(report.to_dict())


def _publish_replicated(results: Iterable[Any]) -> None:
    for result in results:
        if isinstance(result, BackupReplicated):
            metrics.publish_replicated(
                result.cluster,
                result.region,
                lag_s=result.lag_s if result.first else None,
                copies=result.count("copied"),
                repairs=result.count("repaired"),
            )
