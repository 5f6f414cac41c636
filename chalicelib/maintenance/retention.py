"""Retention per policy: which of its backups to keep (core/retention.py), and expiring the others.

Candidates are the policy's Completed and PartiallyFailed backups (the restorable ones; Failed backups have no
manifest, running ones are never touched). Backups without a policy, or of a deleted policy, are never expired.
Expiring deletes the manifest first and then marks the record Expired (DESIGN §3): a crash in between leaves a
Completed record without a manifest, which the next run expires again; the reverse order could leave a manifest no
retention run would ever look at again.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from chalicelib.catalog.errors import RecordNotFound, StaleState
from chalicelib.catalog.policies import PolicyRecord
from chalicelib.catalog.policy_runs import backups_of_policy
from chalicelib.core.models import BackupRecord, BackupState
from chalicelib.core.retention import Candidate, Decision, apply_retention
from chalicelib.core.schedule import zone
from chalicelib.repository.errors import AccessDenied
from chalicelib.repository.repo import Repository

RESTORABLE = (BackupState.COMPLETED, BackupState.PARTIALLY_FAILED)


def _utcnow() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True)
class RetentionPlan:
    policy: str
    cluster: str
    summary: str  # the retention rules in words
    decisions: list[Decision]  # newest first
    # Etcd-only backups of a policy are kept by the same rules among themselves: an hourly etcd schedule must not push
    # the policy's nightly backups out of their daily buckets.
    etcd_only: bool = False

    @property
    def kept(self) -> list[Decision]:
        return [d for d in self.decisions if d.keep]

    @property
    def dropped(self) -> list[Decision]:
        return [d for d in self.decisions if not d.keep]


@dataclass(frozen=True)
class Expired:
    policy: str
    cluster: str
    backup_id: str
    outcome: str  # expired | manifest_locked | changed (the record moved on meanwhile)


def taken_at(record: BackupRecord) -> datetime:
    """When a backup captured the cluster (its start), for bucketing and RPO."""
    stamp = record.started_at or record.created_at or record.finished_at
    if not stamp:
        raise ValueError(f"backup {record.cluster}/{record.backup_id} has no timestamps")
    return datetime.fromisoformat(stamp)


class RetentionService:
    def __init__(self, policies: Any, backups: Any, *, clock: Callable[[], datetime] = _utcnow) -> None:
        self._policies = policies
        self._backups = backups
        self._clock = clock

    def plan(self, name: str) -> RetentionPlan:
        """What retention would keep and drop for one policy now, and why."""
        return self.plan_for(self._policies.get(name))

    def plan_for(self, record: PolicyRecord, *, etcd_only: bool = False) -> RetentionPlan:
        policy = record.policy
        backups = backups_of_policy(self._backups, policy.cluster, policy.name, states=RESTORABLE)
        candidates = [Candidate(r.backup_id, taken_at(r)) for r in backups if r.etcd_only == etcd_only]
        decisions = apply_retention(candidates, policy.retention, zone(policy.schedule.timezone))
        return RetentionPlan(policy.name, policy.cluster, policy.retention.summary(), decisions, etcd_only=etcd_only)

    def plans(self) -> list[RetentionPlan]:
        out = []
        for record in self._policies.list():
            out.append(self.plan_for(record))
            etcd = self.plan_for(record, etcd_only=True)  # also after its etcd schedule was removed
            if etcd.decisions:
                out.append(etcd)
        return out

    def expire(
        self, repo: Repository, plans: Iterable[RetentionPlan], *, check_lease: Callable[[], None] | None = None
    ) -> list[Expired]:
        """Delete the dropped backups' manifests, then mark their records Expired."""
        check = check_lease or (lambda: None)
        out: list[Expired] = []
        for plan in plans:
            for decision in plan.dropped:
                check()
                out.append(self._expire_one(repo, plan, decision.backup_id))
        return out

    def _expire_one(self, repo: Repository, plan: RetentionPlan, backup_id: str) -> Expired:
        outcome = expire(
            repo,
            self._backups,
            plan.cluster,
            backup_id,
            now=self._clock(),
            extra={"expired_by": "retention", "expired_policy": plan.policy},
        )
        return Expired(plan.policy, plan.cluster, backup_id, outcome)


def expire(
    repo: Repository, backups: Any, cluster: str, backup_id: str, *, now: datetime, extra: dict[str, Any]
) -> str:
    """Delete one backup's manifest, then mark its record Expired: ``expired``, ``manifest_locked`` or ``changed``.

    Its blobs stay until garbage collection finds them unreachable from every other manifest.
    """
    try:
        repo.store.delete(Repository.manifest_key(cluster, backup_id))
    except AccessDenied:
        # Object Lock: the manifest must stay until its retention date; try again on a later run.
        return "manifest_locked"
    try:
        backups.transition(cluster, backup_id, BackupState.EXPIRED, now=now, extra=extra)
    except (StaleState, RecordNotFound):
        return "changed"
    return "expired"


def expire_backup(repo: Repository, backups: Any, record: BackupRecord, *, by: str) -> str:
    """``backup delete``: expire one restorable backup now, as retention would (``expired_by`` says who)."""
    if record.state not in RESTORABLE:
        return f"it is {record.state}; only Completed and PartiallyFailed backups are deleted"
    return expire(repo, backups, record.cluster, record.backup_id, now=_utcnow(), extra={"expired_by": by})
