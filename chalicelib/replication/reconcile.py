"""The reconciler: finds manifests the replica does not have yet (lost events, outages) and replicates them."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from chalicelib.catalog.errors import CatalogError
from chalicelib.core.models import ReplicaState
from chalicelib.observability import logger
from chalicelib.replication.errors import ReplicationError
from chalicelib.replication.events import ObjectKind, classify
from chalicelib.replication.service import BackupReplicated, Replicator
from chalicelib.repository.errors import RepositoryError
from chalicelib.repository.repo import CLUSTERS_DIR, Repository

# Younger manifests are left to their own events, which normally arrive within seconds.
DEFAULT_MIN_AGE = timedelta(minutes=5)
DEFAULT_MAX_BACKUPS = 100
# Stop starting backups this long before the Lambda deadline: one backup's closure may take a while to copy.
DEADLINE_MARGIN_MS = 120_000


@dataclass(frozen=True)
class Unreplicated:
    cluster: str
    backup_id: str
    written: datetime | None  # when the primary manifest was written


@dataclass(frozen=True)
class ReconcileReport:
    region: str
    manifests: int  # in the primary
    backlog: tuple[Unreplicated, ...]  # not Replicated in the region when the run started
    replicated: tuple[str, ...] = ()  # "cluster/backup id" completed by this run
    failed: dict[str, str] = field(default_factory=dict)  # "cluster/backup id" -> error
    deferred: int = 0  # left for later: too young, over the per-run limit, or out of time
    oldest_age_s: float = 0.0
    outcomes: tuple[BackupReplicated, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        return {
            "region": self.region,
            "manifests": self.manifests,
            "backlog": len(self.backlog),
            "replicated": list(self.replicated),
            "failed": dict(self.failed),
            "deferred": self.deferred,
            "oldest_age_s": round(self.oldest_age_s, 3),
        }


class Reconciler:
    """Compares the primary's manifests with the catalog's replica states and replicates what is missing."""

    def __init__(
        self,
        replicator: Replicator,
        catalog: Any,
        *,
        clock: Callable[[], datetime],
        min_age: timedelta = DEFAULT_MIN_AGE,
        max_backups: int = DEFAULT_MAX_BACKUPS,
    ) -> None:
        self._replicator = replicator
        self._catalog = catalog
        self._clock = clock
        self._min_age = min_age
        self._max_backups = max_backups

    @property
    def region(self) -> str:
        return self._replicator.region

    def backlog(self) -> tuple[int, list[Unreplicated]]:
        """(manifests in the primary, those not Replicated in this region), oldest first."""
        manifests: dict[str, dict[str, datetime | None]] = {}
        for key, written in self._replicator.buckets.list_source(CLUSTERS_DIR):
            obj = classify(key)
            if obj.kind == ObjectKind.MANIFEST and obj.cluster and obj.backup_id:
                manifests.setdefault(obj.cluster, {})[obj.backup_id] = written
        out: list[Unreplicated] = []
        for cluster, backups in sorted(manifests.items()):
            states = self._replica_states(cluster)
            for backup_id, written in sorted(backups.items()):
                state = states.get(backup_id, _NO_RECORD)
                if state == ReplicaState.REPLICATED:
                    continue
                if state is _NO_RECORD and self._in_replica(cluster, backup_id):
                    continue  # no record to mark (another catalog's backup): the replica having it must do
                out.append(Unreplicated(cluster, backup_id, written))
        out.sort(key=lambda u: (u.written is None, u.written or self._clock(), u.cluster, u.backup_id))
        return sum(len(b) for b in manifests.values()), out

    def run(self, *, time_left_ms: Callable[[], int] | None = None) -> ReconcileReport:
        total, backlog = self.backlog()
        now = self._clock()
        ages = [(now - u.written).total_seconds() for u in backlog if u.written is not None]
        oldest = max(ages, default=0.0)
        outcomes: list[BackupReplicated] = []
        replicated: list[str] = []
        failed: dict[str, str] = {}
        deferred = 0
        for item in backlog:
            name = f"{item.cluster}/{item.backup_id}"
            too_young = item.written is not None and now - item.written < self._min_age
            out_of_time = time_left_ms is not None and time_left_ms() < DEADLINE_MARGIN_MS
            if too_young or out_of_time or len(replicated) + len(failed) >= self._max_backups:
                deferred += 1
                continue
            try:
                outcome = self._replicator.replicate_backup(item.cluster, item.backup_id)
                if outcome is not None:
                    replicated.append(name)
                    outcomes.append(outcome)
            except (ReplicationError, RepositoryError, CatalogError) as exc:
                failed[name] = str(exc)
        report = ReconcileReport(
            self.region, total, tuple(backlog), tuple(replicated), failed, deferred, oldest, tuple(outcomes)
        )
        logger().info("replication reconciled", extra=report.to_dict())
        return report

    def _replica_states(self, cluster: str) -> dict[str, Any]:
        states: dict[str, Any] = {}
        token: str | None = None
        while True:
            records, token = self._catalog.list(cluster, limit=500, next_token=token)
            for record in records:
                states[record.backup_id] = (record.replicas or {}).get(self.region, {}).get("state")
            if token is None:
                return states

    def _in_replica(self, cluster: str, backup_id: str) -> bool:
        return self._replicator.buckets.replica_head(Repository.manifest_key(cluster, backup_id)) is not None


_NO_RECORD = object()
