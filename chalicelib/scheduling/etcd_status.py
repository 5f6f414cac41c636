"""Per cluster whose policies take etcd snapshots: the age of the newest verified snapshot against their RPO target.

Only a snapshot that a verification restored and read back counts: an unverified one is not known to restore. A
cluster that never had one is reported with no age and counts as past any target it has.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from typing import Any


def _utcnow() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True)
class EtcdSnapshotStatus:
    cluster: str
    policies: tuple[str, ...]  # enabled policies of the cluster with an etcd block
    backup_id: str | None  # the newest verified snapshot's backup
    snapshot_at: str | None
    verified_at: str | None
    age_minutes: float | None
    rpo_target_minutes: int | None  # the tightest target among those policies
    rpo_exceeded: bool

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


class EtcdStatusService:
    def __init__(self, policies: Any, verifications: Any, *, clock: Callable[[], datetime] = _utcnow) -> None:
        self._policies = policies
        self._verifications = verifications
        self._clock = clock

    def statuses(self) -> list[EtcdSnapshotStatus]:
        now = self._clock()
        by_cluster: dict[str, list[Any]] = {}
        for record in self._policies.list():
            policy = record.policy
            if policy.enabled and policy.etcd.enabled:
                by_cluster.setdefault(policy.cluster, []).append(policy)
        out = []
        for cluster, policies in sorted(by_cluster.items()):
            targets = [p.rpo_target_minutes for p in policies if p.rpo_target_minutes]
            target = min(targets) if targets else None
            newest = self._verifications.latest(cluster, ok_only=True)
            age = None
            if newest is not None:
                taken = datetime.strptime(newest.snapshot_at, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC)
                age = max(0.0, (now - taken).total_seconds() / 60)
            out.append(
                EtcdSnapshotStatus(
                    cluster=cluster,
                    policies=tuple(sorted(p.name for p in policies)),
                    backup_id=newest.backup_id if newest else None,
                    snapshot_at=newest.snapshot_at if newest else None,
                    verified_at=newest.verified_at if newest else None,
                    age_minutes=age,
                    rpo_target_minutes=target,
                    rpo_exceeded=target is not None and (age is None or age > target),
                )
            )
        return out
