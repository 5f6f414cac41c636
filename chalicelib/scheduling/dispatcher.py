"""The dispatcher: every minute, start the backups of due policies, each scheduled run exactly once.

For each due policy (the sparse due-time index), decide like a Kubernetes CronJob: only the latest missed run
starts, and only within ``starting_deadline_seconds``; with ``concurrencyPolicy: Forbid`` a run is skipped while the
policy's previous backup is still Pending/Running (or its job still waits in the queue). The decision is claimed with
one conditional transaction that advances the next run time and writes the run's record; of dispatchers racing on a
policy exactly one wins, and only the winner sends the job. The job id is derived from (policy, scheduled time), so
even a duplicate send would be absorbed by the backup worker's job claim.

A tick decides and claims its due runs on a small thread pool and sends their jobs ten per SendMessageBatch as
soon as ten are claimed (not after the last claim: a Lambda killed mid-tick leaves at most a few claimed runs
unsent, not all of them); a job SQS refuses gives its claim back for the next tick. Once the Lambda's remaining time
drops below a reserve, the tick claims no more: the rest stay due for the next minute, and the claimed ones are sent.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
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
# Due runs decided and claimed at once; the product's botocore clients keep 32 connections (services.py).
CLAIM_THREADS = 16
SEND_BATCH = 10  # SendMessageBatch's limit
# Batches sent at once while the claims go on: one SendMessageBatch takes about as long as one claim's round trips,
# and ten claims finish in the time of one on 16 threads, so a few senders keep up.
SEND_THREADS = 4
# Time a tick keeps for the claims under way, the jobs not yet sent, and the etcd and verify schedules.
DEADLINE_RESERVE_S = 15.0


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
    # dispatched | skipped | lost (another dispatcher won) | failed (retried next minute) | left (tick out of time)
    result: str
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


@dataclass(frozen=True)
class _Claimed:
    """A run claimed for dispatch whose job is still to be sent."""

    record: PolicyRecord
    run: RunRecord
    next_run_at: datetime
    job: dict[str, Any]
    outcome: Outcome


class Dispatcher:
    def __init__(
        self,
        policies: Any,
        backups: Any,
        clusters: Any,
        queue: Any,
        *,
        lock: Any | None = None,
        clock: Callable[[], datetime] | None = None,
        etcd: Any | None = None,
        verify: Any | None = None,
        remaining_ms: Callable[[], int] | None = None,
        threads: int = CLAIM_THREADS,
        reserve_s: float = DEADLINE_RESERVE_S,
    ) -> None:
        """``etcd`` (a ``scheduling.etcd_dispatch.EtcdDispatcher``) starts the etcd-only runs of etcd schedules;
        ``verify`` (a ``scheduling.verify_dispatch.VerifyDispatcher``) the verifications of verify schedules.
        ``remaining_ms`` (the Lambda context's ``get_remaining_time_in_millis``): once fewer than ``reserve_s``
        seconds are left, the tick claims no more runs and sends the jobs of those it claimed."""
        self._policies = policies
        self._backups = backups
        self._clusters = clusters
        self._queue = queue
        self._lock = lock
        self._clock = clock or _utcnow
        self._etcd = etcd
        self._verify = verify
        self._remaining_ms = remaining_ms
        self._threads = threads
        self._reserve_s = reserve_s

    def dispatch_due(self) -> DispatchReport:
        now = self._clock()
        if self._lock is not None:
            holder = self._lock.leases.exclusive(self._lock.scope, now=now)
            if holder is not None:
                # A collection is running and backups could not start anyway: leave the policies due until it ends.
                return DispatchReport(iso(now), deferred=f"repository locked by {holder.holder}")
        outcomes: list[Outcome] = []
        claimed: list[_Claimed] = []
        # Each run's reads and claim are a few sequential round trips: in parallel, a tick of 1,000 due runs takes
        # a fraction of the dispatcher's timeout instead of all of it. The claims race per policy exactly as
        # concurrent dispatchers do, so running them side by side changes nothing about exactly once.
        with (
            ThreadPoolExecutor(max_workers=self._threads, thread_name_prefix="dispatch") as claims,
            ThreadPoolExecutor(max_workers=SEND_THREADS, thread_name_prefix="send") as senders,
        ):
            due = list(self._policies.due(now))
            known = self._registered(due)
            decided = [claims.submit(self._guarded, record, now, known) for record in due]
            sends = []
            for future in decided:
                outcome, ready = future.result()
                if ready is not None:
                    claimed.append(ready)
                    if len(claimed) == SEND_BATCH:
                        sends.append(senders.submit(self._send_batch, claimed))
                        claimed = []
                elif outcome is not None:
                    outcomes.append(outcome)
            if claimed:
                sends.append(senders.submit(self._send_batch, claimed))
            for sent in sends:
                outcomes.extend(sent.result())
        for outcome in outcomes:
            logger().info("policy run", extra=outcome.__dict__)
        for side in (self._etcd, self._verify):
            if side is not None:
                outcomes.extend(side.dispatch_due(now))
        return DispatchReport(iso(now), outcomes)

    def _registered(self, due: list[PolicyRecord]) -> dict[str, Any]:
        """The due policies' clusters read in batches (100 a request) rather than one GetItem a run; empty when the
        catalog cannot batch or the batch read fails, and then each run reads its own cluster as before."""
        get_many = getattr(self._clusters, "get_many", None)
        if get_many is None or not due:
            return {}
        try:
            return dict(get_many(record.policy.cluster for record in due))
        except Exception:  # noqa: BLE001 -- an optimisation only: the runs read their clusters one by one instead
            logger().exception("clusters not read in batches; each run reads its own")
            return {}

    def _near_deadline(self) -> bool:
        return self._remaining_ms is not None and self._remaining_ms() < self._reserve_s * 1000

    def _guarded(
        self, record: PolicyRecord, now: datetime, known: dict[str, Any] | None = None
    ) -> tuple[Outcome | None, _Claimed | None]:
        """One due policy decided and claimed; its failure is its own outcome, not the tick's."""
        if self._near_deadline():
            # Unclaimed, the run stays due: the next minute's tick claims it (late, not lost).
            return self._outcome(record, "left", "the tick neared its deadline; the next tick claims it"), None
        try:
            return self._dispatch(record, now, known or {})
        except Exception as exc:  # noqa: BLE001 -- one broken policy or a throttled call must not hold up the others
            logger().exception("policy not dispatched", extra={"policy": record.policy.name})
            return self._outcome(record, "failed", f"{type(exc).__name__}: {exc}"), None

    @staticmethod
    def _outcome(record: PolicyRecord, result: str, reason: str) -> Outcome:
        return Outcome(record.policy.name, record.policy.cluster, str(record.next_run_at), result, reason)

    def _dispatch(
        self, record: PolicyRecord, now: datetime, known: dict[str, Any]
    ) -> tuple[Outcome | None, _Claimed | None]:
        policy = record.policy
        if record.next_run_at is None:
            return None, None
        due_at = datetime.fromisoformat(record.next_run_at)
        if due_at > now:
            return None, None  # the index lagged behind a claim or an update
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
                    # Read in the tick's batch; a cluster it did not return is read on its own (consistently).
                    cluster = known.get(policy.cluster) or self._clusters.get(policy.cluster)
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
        outcome = Outcome(policy.name, policy.cluster, run.scheduled_for, "", run.reason, run.job_id, run.missed)
        if not self._policies.claim(record, run, next_run_at=plan.next_run_at, now=now):
            return replace(outcome, result="lost"), None
        if cluster_auth is None:
            return replace(outcome, result="skipped"), None
        job = BackupJob(
            job_id=job_id,
            cluster=ClusterRef(policy.cluster, cluster_auth, etcd=etcd),
            scope=policy.scope,
            policy=policy.name,
            volumes=policy.volumes,
            hooks=policy.hooks,
            dumps=policy.dumps,
        )
        return None, _Claimed(record, run, plan.next_run_at, job.to_dict(), outcome)

    def _send_batch(self, batch: list[_Claimed]) -> list[Outcome]:
        """Send claimed runs' jobs in one request; a job not sent gives its claim back, so the next tick retries."""
        try:
            refused = self._queue.send_batch([c.job for c in batch])
        except QueueUnavailable as exc:
            refused = dict.fromkeys(range(len(batch)), str(exc))
        outcomes = []
        for i, claimed in enumerate(batch):
            if i not in refused:
                outcomes.append(replace(claimed.outcome, result="dispatched"))
                continue
            try:
                released = self._policies.release_claim(
                    claimed.record, claimed.run, claimed_next_run_at=claimed.next_run_at
                )
            except Exception as exc:  # noqa: BLE001 -- the run stays claimed and unsent: lost, as a crash would lose it
                logger().exception("claim not released", extra={"job_id": claimed.outcome.job_id})
                released = False
                refused[i] += f"; claim not released: {type(exc).__name__}: {exc}"
            logger().error(
                "backup job not sent", extra={"job_id": claimed.outcome.job_id, "error": refused[i], "retry": released}
            )
            outcomes.append(replace(claimed.outcome, result="failed", reason=refused[i]))
        return outcomes

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
