"""Structured logs and EMF metrics (powertools), built lazily so a cold start pays only when they are used."""

from __future__ import annotations

import os
from functools import cache
from typing import Any

SERVICE = "lifeboat"
NAMESPACE = "Lifeboat"


@cache
def logger() -> Any:
    from aws_lambda_powertools import Logger

    return Logger(service=os.environ.get("POWERTOOLS_SERVICE_NAME", SERVICE))


@cache
def metrics() -> Any:
    from aws_lambda_powertools import Metrics

    return Metrics(namespace=os.environ.get("POWERTOOLS_METRICS_NAMESPACE", NAMESPACE),
                   service=os.environ.get("POWERTOOLS_SERVICE_NAME", SERVICE))


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
