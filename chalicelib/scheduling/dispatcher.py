"""The dispatcher: every minute, start the backups of due policies, each scheduled run exactly once.

For each due policy (the sparse due-time index), decide like a Kubernetes CronJob: only the latest missed run
starts, and only within ``starting_deadline_seconds``; with ``concurrencyPolicy: Forbid`` a run is skipped while the
policy's previous backup is still Pending/Running (or its job still waits in the queue). The decision is claimed with
one conditional transaction that advances the next run time and writes the run's record; of dispatchers racing on a
policy exactly one wins, and only the winner sends the job. The job id is derived from (policy, scheduled time), so
even a duplicate send would be absorbed by the backup worker's job claim.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from chalicelib.catalog.dynamo import iso
from chalicelib.catalog.errors import RecordNotFound
from chalicelib.catalog.policies import PolicyRecord
from chalicelib.catalog.policy_runs import DISPATCHED, SKIPPED, RunRecord, backups_of_policy
from chalicelib.core.etcd import MANAGED_AUTH_TYPES, EtcdTarget, policy_etcd_target
from chalicelib.core.jobs import BackupJob, ClusterRef
from chalicelib.core.models import BackupState
from chalicelib.core.schedule import plan_run
from chalicelib.observability import logger
from chalicelib.scheduling.errors import QueueUnavailable

# A Pending/Running backup whose heartbeat (every 30 s) is older than this has no live worker: it no longer blocks.
STALE_BACKUP_S = 3600
# A dispatched job nobody has claimed within this is assumed lost (DLQ), not queued: it no longer blocks.
QUEUED_GRACE_S = 3600
ACTIVE = (BackupState.PENDING, BackupState.RUNNING)


def _utcnow() -> datetime:
    return datetime.now(UTC)


def job_id_for(policy: str, scheduled_for: datetime) -> str:
    """One id per (policy, scheduled time): ':' cannot occur in a policy name, so ids never collide."""
    return f"schedule:{policy}:{scheduled_for.astimezone(UTC):%Y%m%dT%H%M%SZ}"


@dataclass(frozen=True)
class Outcome:
    policy: str
    cluster: str
    scheduled_for: str
    result: str  # dispatched | skipped | lost (another dispatcher won) | failed (queue; retried next minute)
    reason: str = ""
    job_id: str | None = None
    missed: int = 0


@dataclass(frozen=True)
class DispatchReport:
    at: str
    outcomes: list[Outcome] = field(default_factory=list)
    deferred: str | None = None  # why nothing was dispatched this time

    def counts(self) -> dict[str, int]:
        return dict(Counter(o.result for o in self.outcomes))

    def summary(self) -> dict[str, Any]:
        return {"at": self.at, "deferred": self.deferred, "counts": self.counts()}


class Dispatcher:
    def __init__(
        self,
        policies: Any,
        backups: Any,
        clusters: Any,
        queue: Any,
        *,
        lock: Any | None = None,
        clock: Callable[[], datetime] = _utcnow,
        etcd: Any | None = None,
        verify: Any | None = None,
    ) -> None:
        """``etcd`` (a ``scheduling.etcd_dispatch.EtcdDispatcher``) starts the etcd-only runs of etcd schedules;
        ``verify`` (a ``scheduling.verify_dispatch.VerifyDispatcher``) the verifications of verify schedules."""
        self._policies = policies
        self._backups = backups
        self._clusters = clusters
        self._queue = queue
        self._lock = lock
        self._clock = clock
        self._etcd = etcd
        self._verify = verify

    def dispatch_due(self) -> DispatchReport:
        now = self._clock()
        if self._lock is not None:
            holder = self._lock.leases.exclusive(self._lock.scope, now=now)
            if holder is not None:
                # A collection is running and backups could not start anyway: leave the policies due until it ends.
                return DispatchReport(iso(now), deferred=f"repository locked by {holder.holder}")
        outcomes = []
        for record in self._policies.due(now):
            try:
                outcome = self._dispatch(record, now)
            except Exception as exc:  # noqa: BLE001 -- one broken policy or a throttled call must not hold up the others
                logger().exception("policy not dispatched", extra={"policy": record.policy.name})
                outcome = Outcome(
                    record.policy.name,
                    record.policy.cluster,
                    str(record.next_run_at),
                    "failed",
                    f"{type(exc).__name__}: {exc}",
                )
            if outcome is not None:
                outcomes.append(outcome)
                logger().info("policy run", extra=outcome.__dict__)
        for side in (self._etcd, self._verify):
            if side is not None:
                outcomes.extend(side.dispatch_due(now))
        return DispatchReport(iso(now), outcomes)

    def _dispatch(self, record: PolicyRecord, now: datetime) -> Outcome | None:
        policy = record.policy
        if record.next_run_at is None:
            return None
        due_at = datetime.fromisoformat(record.next_run_at)
        if due_at > now:
            return None  # the index lagged behind a claim or an update
        plan = plan_run(policy.schedule, due_at, now)
        job_id = job_id_for(policy.name, plan.scheduled_for)
        cluster_auth: dict[str, Any] | None = None
        etcd: EtcdTarget | None = None
        if not plan.start:
            reason = (
                f"missed: {plan.late_seconds:.0f} s after its scheduled time, past starting_deadline_seconds "
                f"({policy.schedule.starting_deadline_seconds})"
            )
        else:
            reason = self._still_active(record, now)
            if not reason:
                try:
                    cluster = self._clusters.get(policy.cluster)
                    cluster_auth = cluster.auth
                    # Refused when the policy was applied; a cluster re-registered since then just goes without.
                    managed = (cluster.auth or {}).get("type") in MANAGED_AUTH_TYPES
                    # A separate etcd schedule takes the snapshots (etcd_dispatch.py); these backups take none.
                    if not policy.etcd.separate:
                        etcd, _ = policy_etcd_target(policy.etcd, cluster.etcd, managed=managed)
                except RecordNotFound:
                    reason = f"cluster {policy.cluster!r} is not registered (lifeboat clusters add)"
        run = RunRecord(
            policy=policy.name,
            cluster=policy.cluster,
            scheduled_for=iso(plan.scheduled_for),
            outcome=DISPATCHED if cluster_auth is not None else SKIPPED,
            reason=reason or (f"catch-up run; {plan.missed} earlier run(s) missed" if plan.missed else ""),
            job_id=job_id if cluster_auth is not None else None,
            missed=plan.missed,
            late_seconds=round(plan.late_seconds, 3),
            at=iso(now),
        )
        result = self._claim_and_send(record, run, plan.next_run_at, policy, cluster_auth, now, etcd=etcd)
        return Outcome(policy.name, policy.cluster, run.scheduled_for, result, run.reason, run.job_id, run.missed)

    def _claim_and_send(
        self,
        record: PolicyRecord,
        run: RunRecord,
        next_run_at: datetime,
        policy: Any,
        cluster_auth: dict[str, Any] | None,
        now: datetime,
        *,
        etcd: EtcdTarget | None = None,
    ) -> str:
        if not self._policies.claim(record, run, next_run_at=next_run_at, now=now):
            return "lost"
        if cluster_auth is None:
            return "skipped"
        job = BackupJob(
            job_id=str(run.job_id),
            cluster=ClusterRef(policy.cluster, cluster_auth, etcd=etcd),
            scope=policy.scope,
            policy=policy.name,
            volumes=policy.volumes,
            hooks=policy.hooks,
            dumps=policy.dumps,
        )
        try:
            self._queue.send(job.to_dict())
        except QueueUnavailable as exc:
            released = self._policies.release_claim(record, run, claimed_next_run_at=next_run_at)
            logger().error("backup job not sent", extra={"job_id": job.job_id, "error": str(exc), "retry": released})
            return "failed"
        return "dispatched"

    def _still_active(self, record: PolicyRecord, now: datetime) -> str:
        """Why the previous run still counts as active (concurrencyPolicy: Forbid), or "" when it does not."""
        policy = record.policy
        latest = next(backups_of_policy(self._backups, policy.cluster, policy.name, max_pages=1), None)
        if latest is not None and latest.state in ACTIVE:
            beat = latest.heartbeat_at or latest.started_at or latest.created_at
            if beat and (now - datetime.fromisoformat(beat)).total_seconds() < STALE_BACKUP_S:
                return f"previous backup {latest.backup_id} is still {latest.state} (concurrency policy Forbid)"
        last = record.last_run or {}
        job_id, sent_at = last.get("job_id"), last.get("at")
        if last.get("outcome") == DISPATCHED and job_id and sent_at:
            waiting = (now - datetime.fromisoformat(sent_at)).total_seconds()
            if waiting < QUEUED_GRACE_S and not self._policies.job_claimed(job_id):
                return f"previous job {job_id} is still queued (concurrency policy Forbid)"
        return ""
