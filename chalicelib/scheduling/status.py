"""Per policy: last success, RPO against its target, next run, retention counts; and the RPO metrics.

RPO here is the age of the newest Completed backup of the policy (when it started capturing, the conservative
end): now minus that. A policy that never completed counts from its creation, so a new policy whose backups keep
failing still breaches its target. PartiallyFailed backups are restorable but incomplete: they do not reset the RPO.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass, replace
from datetime import UTC, datetime
from typing import Any

from chalicelib.catalog.policies import PolicyRecord
from chalicelib.core.models import BackupRecord, BackupState
from chalicelib.core.schedule import next_run
from chalicelib.maintenance.retention import RESTORABLE, taken_at


def _utcnow() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True)
class PolicyStatus:
    name: str
    cluster: str
    enabled: bool
    schedule: str
    next_run_at: str | None
    last_success_at: str | None
    last_success_id: str | None
    last_backup_id: str | None
    last_backup_state: str | None
    rpo_minutes: float
    rpo_target_minutes: int | None
    rpo_exceeded: bool
    retained: int  # restorable backups of the policy right now
    retention: str  # the rules in words
    last_run: dict[str, Any] | None
    verification: VerificationStatus | None = None  # for a policy with a verify block

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class VerificationStatus:
    """A policy's restore verification: the newest passed run, its RTO against the target, and whether it is overdue."""

    verified_at: str | None  # when the newest passed verification ran
    verified_backup_id: str | None
    rto_s: float | None
    rto_target_minutes: int | None
    rto_exceeded: bool
    last_state: str | None  # the newest ended run's state (it may have failed since the last pass)
    last_id: str | None
    overdue: bool  # no pass within two of the verify schedule's periods
    next_at: str | None


class StatusService:
    def __init__(
        self,
        policies: Any,
        backups: Any,
        *,
        clock: Callable[[], datetime] = _utcnow,
        verifications: Any | None = None,
        verify_schedules: Any | None = None,
    ) -> None:
        """``verifications`` (``catalog.verifications.VerificationCatalog``) and ``verify_schedules`` add each
        verified policy's last verification, its RTO and whether it is overdue."""
        self._policies = policies
        self._backups = backups
        self._clock = clock
        self._verifications = verifications
        self._verify_schedules = verify_schedules

    def statuses(self) -> list[PolicyStatus]:
        now = self._clock()
        records: list[PolicyRecord] = list(self._policies.list())
        history: dict[str, list[BackupRecord]] = {}
        for cluster in sorted({r.policy.cluster for r in records}):
            history[cluster] = self._history(cluster)
        statuses = [self._status(r, history[r.policy.cluster], now) for r in records]
        if self._verifications is None:
            return statuses
        return [
            replace(status, verification=self._verification(record, now))
            for status, record in zip(statuses, records, strict=True)
        ]

    def _verification(self, record: PolicyRecord, now: datetime) -> VerificationStatus | None:
        block = record.policy.verify
        if block is None or self._verifications is None:
            return None
        passed = self._verifications.latest(record.policy.name, passed_only=True)
        last = self._verifications.latest(record.policy.name)
        since = datetime.fromisoformat((passed.created_at if passed else record.created_at).replace("Z", "+00:00"))
        first = next_run(block.schedule, now)
        allowed = 2 * (next_run(block.schedule, first) - first)
        scheduled = (
            self._verify_schedules.get(record.policy.cluster, record.policy.name) if self._verify_schedules else None
        )
        return VerificationStatus(
            verified_at=passed.created_at if passed else None,
            verified_backup_id=passed.backup_id if passed else None,
            rto_s=passed.rto_s if passed else None,
            rto_target_minutes=block.rto_target_minutes,
            rto_exceeded=bool(passed and passed.rto_exceeded),
            last_state=last.state if last else None,
            last_id=last.verification_id if last else None,
            overdue=bool(record.policy.enabled and now - since > allowed),
            next_at=scheduled.next_run_at if scheduled else None,
        )

    def publish_rpo_metrics(self) -> list[PolicyStatus]:
        """One EMF document per enabled policy (dimensions cluster, policy) and a total the alarm watches.

        Each policy's document holds one metric, PolicyRpoMinutes: every metric with its own dimension values is a
        custom metric billed monthly, so the target and the exceeded flag are properties of the same log record
        (searchable in Logs Insights) and the alarm watches the deployment-wide PoliciesOverRpoTarget."""
        from aws_lambda_powertools.metrics import MetricUnit

        from chalicelib.observability import metrics

        statuses = [s for s in self.statuses() if s.enabled]
        m = metrics()
        for status in statuses:
            m.add_dimension(name="cluster", value=status.cluster)
            m.add_dimension(name="policy", value=status.name)
            m.add_metric(name="PolicyRpoMinutes", unit=MetricUnit.Count, value=round(status.rpo_minutes, 2))
            m.add_metadata(key="rpo_target_minutes", value=status.rpo_target_minutes)
            m.add_metadata(key="rpo_exceeded", value=status.rpo_exceeded)
            m.flush_metrics()
        overdue = sum(1 for s in statuses if s.verification is not None and s.verification.overdue)
        if self._verifications is not None:
            m.add_metric(name="PoliciesVerificationOverdue", unit=MetricUnit.Count, value=overdue)
        # Only the service dimension, so one alarm in infra/lifeboat.yaml covers every policy, present or future.
        m.add_metric(name="PoliciesOverRpoTarget", unit=MetricUnit.Count, value=sum(s.rpo_exceeded for s in statuses))
        m.add_metric(name="PoliciesMonitored", unit=MetricUnit.Count, value=len(statuses))
        m.flush_metrics()
        return statuses

    def _history(self, cluster: str) -> list[BackupRecord]:
        """Every restorable backup of a cluster plus the newest records in any state, newest first."""
        out: dict[str, BackupRecord] = {}
        recent, _ = self._backups.list(cluster, limit=100)
        out.update((r.backup_id, r) for r in recent)
        token: str | None = None
        while True:
            records, token = self._backups.list(cluster, limit=100, next_token=token, states=RESTORABLE)
            out.update((r.backup_id, r) for r in records)
            if token is None:
                break
        return sorted(out.values(), key=lambda r: r.backup_id, reverse=True)

    @staticmethod
    def _status(record: PolicyRecord, history: list[BackupRecord], now: datetime) -> PolicyStatus:
        policy = record.policy
        # Etcd-only backups hold no resources: their age is the etcd status's (etcd_status.py), not this RPO.
        mine = [b for b in history if b.policy == policy.name and not b.etcd_only]
        success = next((b for b in mine if b.state == BackupState.COMPLETED), None)
        since = taken_at(success) if success is not None else datetime.fromisoformat(record.created_at)
        rpo = max(0.0, (now - since).total_seconds() / 60)
        target = policy.rpo_target_minutes
        latest = mine[0] if mine else None
        schedule = policy.schedule
        return PolicyStatus(
            name=policy.name,
            cluster=policy.cluster,
            enabled=policy.enabled,
            schedule=f"{schedule.cron} ({schedule.timezone})",
            next_run_at=record.next_run_at,
            last_success_at=success.finished_at if success else None,
            last_success_id=success.backup_id if success else None,
            last_backup_id=latest.backup_id if latest else None,
            last_backup_state=str(latest.state) if latest else None,
            rpo_minutes=rpo,
            rpo_target_minutes=target,
            rpo_exceeded=bool(policy.enabled and target is not None and rpo > target),
            retained=sum(1 for b in mine if b.state in RESTORABLE),
            retention=policy.retention.summary(),
            last_run=record.last_run,
        )
