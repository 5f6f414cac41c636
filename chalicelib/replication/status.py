"""Replication status per cluster and region, from the catalog: lag, backlog, failures."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import UTC, datetime
from typing import Any

from chalicelib.core.models import BackupRecord, BackupState, ReplicaState

# Backups with a manifest: the ones a replica is expected to hold.
COMMITTED = (BackupState.COMPLETED, BackupState.PARTIALLY_FAILED)


def committed_records(catalog: Any, cluster: str) -> list[BackupRecord]:
    """Every committed backup of a cluster, newest first."""
    records: list[BackupRecord] = []
    token: str | None = None
    while True:
        page, token = catalog.list(cluster, limit=500, next_token=token, states=COMMITTED)
        records.extend(page)
        if token is None:
            return records


def replica_state(record: BackupRecord, region: str) -> str | None:
    state = (record.replicas or {}).get(region, {}).get("state")
    return str(state) if state is not None else None


def replication_status(
    catalog: Any, *, regions: Sequence[str], now: datetime, clusters: Iterable[str] | None = None
) -> list[dict[str, Any]]:
    """One row per (cluster, region): backups, replicated, pending, failed, not started, backlog, lag, backlog age.

    Regions are the configured ones plus any a record mentions (a replica region that was changed keeps showing).
    """
    rows: list[dict[str, Any]] = []
    for cluster in clusters if clusters is not None else catalog.list_clusters():
        records = committed_records(catalog, cluster)
        seen = {r for record in records for r in (record.replicas or {})}
        for region in sorted(set(regions) | seen):
            rows.append(_row(cluster, region, records, now))
    return rows


def _row(cluster: str, region: str, records: list[BackupRecord], now: datetime) -> dict[str, Any]:
    by_state: dict[str | None, list[BackupRecord]] = {}
    for record in records:
        by_state.setdefault(replica_state(record, region), []).append(record)
    replicated = by_state.get(ReplicaState.REPLICATED, [])
    backlog = [r for r in records if replica_state(r, region) != ReplicaState.REPLICATED]
    lags = [float(r.replicas[region]["lag_s"]) for r in replicated if "lag_s" in r.replicas[region]]
    ages = [(now - _parse(r.finished_at or r.created_at)).total_seconds() for r in backlog]
    failed = by_state.get(ReplicaState.FAILED, [])
    return {
        "cluster": cluster,
        "region": region,
        "backups": len(records),
        "replicated": len(replicated),
        "pending": len(by_state.get(ReplicaState.PENDING, [])),
        "failed": len(failed),
        "not_started": len(by_state.get(None, [])),
        "backlog": len(backlog),
        "last_replicated": replicated[0].backup_id if replicated else None,
        "last_lag_s": float(replicated[0].replicas[region].get("lag_s", 0.0)) if replicated else None,
        "max_lag_s": max(lags) if lags else None,
        "oldest_backlog_age_s": round(max(ages), 3) if ages else None,
        "last_error": failed[0].replicas[region].get("error") if failed else None,
    }


def _parse(stamp: str) -> datetime:
    return datetime.fromisoformat(stamp.replace("Z", "+00:00")).astimezone(UTC)
