"""Replication's EMF metrics. Only the "service" dimension, so the alarms in infra/lifeboat.yaml match them;
cluster and region travel as metadata (searchable in the log, not separate metric streams)."""

from __future__ import annotations

from typing import Any

from chalicelib.observability import metrics

LAG = "ReplicationLag"
COPIES = "ReplicationCopies"
REPAIRS = "ReplicationRepairs"
FAILURES = "ReplicationFailures"
BACKLOG = "ReplicationBacklog"
BACKLOG_AGE = "ReplicationBacklogAge"


def publish_replicated(cluster: str, region: str, *, lag_s: float | None, copies: int, repairs: int) -> None:
    """One backup reached the replica for the first time (duplicates publish no lag: it would be re-measured)."""
    from aws_lambda_powertools.metrics import MetricUnit

    m = _with_metadata(cluster=cluster, region=region)
    if lag_s is not None:
        m.add_metric(name=LAG, unit=MetricUnit.Seconds, value=lag_s)
    m.add_metric(name=COPIES, unit=MetricUnit.Count, value=copies)
    m.add_metric(name=REPAIRS, unit=MetricUnit.Count, value=repairs)
    m.flush_metrics()


def publish_failure(cluster: str | None, region: str, key: str) -> None:
    from aws_lambda_powertools.metrics import MetricUnit

    m = _with_metadata(cluster=cluster or "", region=region, key=key)
    m.add_metric(name=FAILURES, unit=MetricUnit.Count, value=1)
    m.flush_metrics()


def publish_backlog(region: str, *, backlog: int, oldest_age_s: float) -> None:
    """What the reconciler found not yet replicated (zero is published too, so the alarm sees recovery)."""
    from aws_lambda_powertools.metrics import MetricUnit

    m = _with_metadata(region=region)
    m.add_metric(name=BACKLOG, unit=MetricUnit.Count, value=backlog)
    m.add_metric(name=BACKLOG_AGE, unit=MetricUnit.Seconds, value=oldest_age_s)
    m.flush_metrics()


def _with_metadata(**values: str) -> Any:
    m = metrics()
    for key, value in values.items():
        m.add_metadata(key=key, value=value)
    return m
