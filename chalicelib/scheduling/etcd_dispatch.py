"""The dispatcher's etcd side: start the etcd-only backups of policies whose etcd block has its own schedule.

Each due schedule (``catalog/side_schedules.py``) is decided like a policy's (``plan_run``: only the latest missed
run, within ``starting_deadline_seconds``; skipped while the previous etcd-only backup is still active) and claimed in
one conditional transaction with its run record, so racing dispatchers send each scheduled etcd run once. The job id
``etcd:<policy>:<time>`` is derived from the scheduled time, so even a duplicate send is absorbed by the worker.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from chalicelib.catalog.dynamo import iso
from chalicelib.catalog.errors import RecordNotFound
from chalicelib.catalog.policy_runs import DISPATCHED, SKIPPED, RunRecord, backups_of_policy
from chalicelib.catalog.side_schedules import SideScheduleRecord
from chalicelib.core.etcd import MANAGED_AUTH_TYPES, EtcdTarget, policy_etcd_target
from chalicelib.core.jobs import BackupJob, ClusterRef
from chalicelib.core.models import BackupState
from chalicelib.core.schedule import plan_run
from chalicelib.observability import logger
from chalicelib.scheduling.errors import QueueUnavailable
from chalicelib.scheduling.side_schedules import dispatch_each, sync_schedule

ACTIVE = (BackupState.PENDING, BackupState.RUNNING)
STALE_BACKUP_S = 3600  # as for policy runs: a Pending/Running backup without a heartbeat this long no longer blocks


def etcd_job_id(policy: str, scheduled_for: datetime) -> str:
    """One id per (policy, scheduled etcd time), apart from the policy's own runs (``schedule:...``)."""
    return f"etcd:{policy}:{scheduled_for.astimezone(UTC):%Y%m%dT%H%M%SZ}"


def sync_etcd_schedule(schedules: Any, policy: Any, now: datetime) -> None:
    """Keep a policy's etcd schedule item as its definition says: there while enabled with a schedule of its own
    (its next run kept while the schedule is unchanged), gone otherwise."""
    sync_schedule(schedules, policy, policy.etcd.schedule if policy.etcd.separate else None, now)


class EtcdDispatcher:
    def __init__(self, schedules: Any, policies: Any, backups: Any, clusters: Any, queue: Any) -> None:
        self._schedules = schedules
        self._policies = policies
        self._backups = backups
        self._clusters = clusters
        self._queue = queue

    def dispatch_due(self, now: datetime) -> list[Any]:
        """The outcome (``dispatcher.Outcome``) of every due etcd schedule."""
        return dispatch_each(self._schedules, now, self._dispatch, "etcd run")

    def _dispatch(self, record: SideScheduleRecord, now: datetime) -> Any:
        from chalicelib.scheduling.dispatcher import Outcome

        due_at = datetime.fromisoformat(record.next_run_at)
        if due_at > now:
            return None  # the index lagged behind a claim
        found = self._policies.find(record.cluster, record.policy)
        if found is None or not found.policy.enabled or found.policy.etcd.schedule != record.schedule:
            # The policy went, was disabled or changed its etcd schedule and the apply did not get to this item.
            if found is None:
                self._schedules.remove(record.cluster, record.policy)
            else:
                sync_etcd_schedule(self._schedules, found.policy, now)
            return None
        policy = found.policy
        plan = plan_run(record.schedule, due_at, now)
        job_id = etcd_job_id(policy.name, plan.scheduled_for)
        target, reason, auth = None, "", None
        if not plan.start:
            reason = (
                f"missed: {plan.late_seconds:.0f} s after its scheduled time, past starting_deadline_seconds "
                f"({record.schedule.starting_deadline_seconds})"
            )
        else:
            reason = self._still_active(policy, now)
        if not reason:
            target, reason, auth = self._target(policy)
        run = RunRecord(
            policy=policy.name,
            cluster=policy.cluster,
            scheduled_for=iso(plan.scheduled_for),
            outcome=DISPATCHED if target is not None else SKIPPED,
            reason=reason or (f"catch-up run; {plan.missed} earlier run(s) missed" if plan.missed else ""),
            job_id=job_id if target is not None else None,
            missed=plan.missed,
            late_seconds=round(plan.late_seconds, 3),
            at=iso(now),
        )
        result = self._claim_and_send(record, run, plan.next_run_at, now, target, auth)
        return Outcome(policy.name, policy.cluster, run.scheduled_for, result, run.reason, run.job_id, run.missed)

    def _target(self, policy: Any) -> tuple[EtcdTarget | None, str, dict[str, Any] | None]:
        try:
            cluster = self._clusters.get(policy.cluster)
        except RecordNotFound:
            return None, f"cluster {policy.cluster!r} is not registered (lifeboat clusters add)", None
        managed = (cluster.auth or {}).get("type") in MANAGED_AUTH_TYPES
        target, why = policy_etcd_target(policy.etcd, cluster.etcd, managed=managed)
        return target, why, cluster.auth

    def _still_active(self, policy: Any, now: datetime) -> str:
        """Why the policy's previous etcd-only backup still counts as active (concurrency Forbid), or ""."""
        for backup in backups_of_policy(self._backups, policy.cluster, policy.name, max_pages=1):
            if not backup.etcd_only:
                continue
            beat = backup.heartbeat_at or backup.started_at or backup.created_at
            if (
                backup.state in ACTIVE
                and beat
                and (now - datetime.fromisoformat(beat)).total_seconds() < STALE_BACKUP_S
            ):
                return (
                    f"previous etcd-only backup {backup.backup_id} is still {backup.state} (concurrency policy Forbid)"
                )
            return ""
        return ""

    def _claim_and_send(
        self,
        record: SideScheduleRecord,
        run: RunRecord,
        next_run_at: datetime,
        now: datetime,
        target: EtcdTarget | None,
        auth: dict[str, Any] | None,
    ) -> str:
        if not self._schedules.claim(record, run, next_run_at=next_run_at, now=now):
            return "lost"
        if target is None or auth is None:
            return "skipped"
        job = BackupJob(
            job_id=str(run.job_id),
            cluster=ClusterRef(record.cluster, auth, etcd=target),
            policy=record.policy,
            etcd_only=True,
        )
        try:
            self._queue.send(job.to_dict())
        except QueueUnavailable as exc:
            released = self._schedules.release_claim(record, run, claimed_next_run_at=next_run_at)
            logger().error("etcd job not sent", extra={"job_id": job.job_id, "error": str(exc), "retry": released})
            return "failed"
        return "dispatched"
