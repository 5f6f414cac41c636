"""Structured logs and EMF metrics (powertools), built lazily so a cold start pays only when they are used."""

from __future__ import annotations

import contextlib
import logging
from functools import cache
from typing import Any

from chalicelib.settings import powertools_names


@cache
def logger() -> Any:
    from aws_lambda_powertools import Logger

    service, _ = powertools_names()
    return Logger(service=service)


class _Stderr:
    """Whatever ``sys.stderr`` is when a record is written (tests and embedding programs replace it)."""

    def write(self, text: str) -> int:
        import sys

        return sys.stderr.write(text)

    def flush(self) -> None:
        import sys

        sys.stderr.flush()


def log_to_stderr() -> None:
    """Send the structured logs to stderr: a command's stdout is its output (``--output json`` must parse)."""
    handler = logger().registered_handler
    if isinstance(handler, logging.StreamHandler):
        # Not setStream: it flushes the old stream, which an embedding program (a test) may have closed.
        with handler.lock or contextlib.nullcontext():
            handler.stream = _Stderr()


@cache
def metrics() -> Any:
    from aws_lambda_powertools import Metrics

    service, namespace = powertools_names()
    return Metrics(namespace=namespace, service=service)


def publish_backup_metrics(record: Any) -> None:
    """One EMF document per finished backup: objects, new blobs, bytes uploaded/deduplicated, duration, errors."""
    from aws_lambda_powertools.metrics import MetricUnit

    m = metrics()
    # Only the default "service" dimension: the alarms in infra/ match on exactly that dimension set.
    m.add_metadata(key="cluster", value=record.cluster)
    counts, stats = record.counts or {}, record.stats or {}
    m.add_metric(name="BackupObjects", unit=MetricUnit.Count, value=counts.get("objects", 0))
    m.add_metric(name="BackupNewBlobs", unit=MetricUnit.Count, value=counts.get("blobs_new", 0))
    m.add_metric(name="BackupBytesUploaded", unit=MetricUnit.Bytes, value=stats.get("bytes_uploaded", 0))
    m.add_metric(name="BackupBytesDeduplicated", unit=MetricUnit.Bytes, value=stats.get("bytes_deduplicated", 0))
    m.add_metric(name="BackupDuration", unit=MetricUnit.Milliseconds, value=stats.get("duration_ms", 0))
    m.add_metric(name="BackupErrors", unit=MetricUnit.Count, value=len(record.errors or []))
    m.add_metric(name="BackupsFailed", unit=MetricUnit.Count, value=1 if str(record.state) == "Failed" else 0)
    m.flush_metrics()


def publish_verification_metrics(record: Any) -> None:
    """One EMF document per ended verification run: failed or not, its RTO, and whether the RTO beat its target."""
    from aws_lambda_powertools.metrics import MetricUnit

    m = metrics()
    m.add_metadata(key="policy", value=record.policy)
    m.add_metadata(key="verification_id", value=record.verification_id)
    m.add_metric(name="VerificationsFailed", unit=MetricUnit.Count, value=0 if record.passed else 1)
    m.add_metric(name="VerificationRtoOverTarget", unit=MetricUnit.Count, value=1 if record.rto_exceeded else 0)
    if record.rto_s is not None:
        m.add_metric(name="VerificationRto", unit=MetricUnit.Seconds, value=record.rto_s)
    m.flush_metrics()
