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
    rpo_target_minutes: int | None  # the tightest target among those policies (their etcd block's, else theirs)
    rpo_exceeded: bool
    schedules: tuple[str, ...] = ()  # per policy: "with every backup" or its etcd schedule (cron, timezone)
    # The newest verification attempt, whatever its result: "verified", "failed: ..." or "unverified: ..." (e.g. the
    # deployment has no etcd binaries), so a snapshot nobody could check does not pass for a verified one.
    latest_result: str | None = None
    latest_backup_id: str | None = None

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
            targets = [t for p in policies if (t := p.etcd.rpo_target_minutes or p.rpo_target_minutes)]
            target = min(targets) if targets else None
            newest = self._verifications.latest(cluster, ok_only=True)
            attempt = self._verifications.latest(cluster, ok_only=False)
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
                    schedules=tuple(_schedule(p) for p in sorted(policies, key=lambda p: p.name)),
                    latest_result=_result(attempt) if attempt else None,
                    latest_backup_id=attempt.backup_id if attempt else None,
                )
            )
        return out


def _schedule(policy: Any) -> str:
    schedule = policy.etcd.schedule
    where = "with every backup" if schedule is None else f"{schedule.cron} ({schedule.timezone})"
    return f"{policy.name}: {where}"


def _result(attempt: Any) -> str:
    if attempt.ok:
        return "verified"
    return f"{'unverified' if attempt.unverified else 'failed'}: {attempt.error}"
