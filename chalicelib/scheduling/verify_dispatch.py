"""The dispatcher's verification side: start the restore verifications of policies with a ``verify`` block.

Each due schedule (``catalog/side_schedules.py``, kind ``verify``) is decided like a policy's run (``plan_run``: only
the latest missed run, within the deadline) and claimed in one conditional transaction with its run record, so
racing dispatchers start each scheduled verification once; its id follows from the policy and scheduled time
(``verification/worker.py:verification_id``), so even a repeated send names the same run, which runs once.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any

from chalicelib.backup.errors import QueueUnavailable
from chalicelib.catalog.dynamo import iso
from chalicelib.catalog.policy_runs import DISPATCHED, SKIPPED, RunRecord
from chalicelib.catalog.side_schedules import SideScheduleRecord
from chalicelib.core.schedule import plan_run
from chalicelib.observability import logger
from chalicelib.scheduling.side_schedules import dispatch_each, sync_schedule


def sync_verify_schedule(schedules: Any, policy: Any, now: datetime) -> None:
    sync_schedule(schedules, policy, policy.verify.schedule if policy.verify is not None else None, now)


class VerifyDispatcher:
    def __init__(self, schedules: Any, policies: Any, start: Callable[..., tuple[Any, bool]], queue: Any) -> None:
        """``start(policy, scheduled_for=...)`` creates the Pending run (``VerificationWorker.start``)."""
        self._schedules = schedules
        self._policies = policies
        self._start = start
        self._queue = queue

    def dispatch_due(self, now: datetime) -> list[Any]:
        return dispatch_each(self._schedules, now, self._dispatch, "verification run")

    def _dispatch(self, record: SideScheduleRecord, now: datetime) -> Any:
        from chalicelib.scheduling.dispatcher import Outcome
        from chalicelib.verification.worker import verification_id  # the worker's imports: only when one is due

        due_at = datetime.fromisoformat(record.next_run_at)
        if due_at > now:
            return None  # the index lagged behind a claim
        found = self._policies.find(record.cluster, record.policy)
        block = found.policy.verify if found is not None else None
        if found is None or not found.policy.enabled or block is None or block.schedule != record.schedule:
            if found is None:
                self._schedules.remove(record.cluster, record.policy)
            else:
                sync_verify_schedule(self._schedules, found.policy, now)
            return None
        plan = plan_run(record.schedule, due_at, now)
        run_id = verification_id(record.policy, iso(plan.scheduled_for))
        reason = "" if plan.start else f"missed: {plan.late_seconds:.0f} s after its scheduled time"
        run = RunRecord(
            policy=record.policy,
            cluster=record.cluster,
            scheduled_for=iso(plan.scheduled_for),
            outcome=DISPATCHED if plan.start else SKIPPED,
            reason=reason or (f"catch-up run; {plan.missed} earlier run(s) missed" if plan.missed else ""),
            job_id=run_id if plan.start else None,
            missed=plan.missed,
            late_seconds=round(plan.late_seconds, 3),
            at=iso(now),
        )
        result = self._claim_and_send(record, run, plan.next_run_at, now)
        return Outcome(record.policy, record.cluster, run.scheduled_for, result, run.reason, run.job_id, run.missed)

    def _claim_and_send(self, record: SideScheduleRecord, run: RunRecord, next_run_at: datetime, now: datetime) -> str:
        if not self._schedules.claim(record, run, next_run_at=next_run_at, now=now):
            return "lost"
        if run.outcome == SKIPPED:
            return "skipped"
        from chalicelib.verification.worker import VerifyMessage

        try:
            pending, _ = self._start(record.policy, scheduled_for=run.scheduled_for)
            self._queue.send(VerifyMessage(pending.verification_id).to_json())
        except QueueUnavailable as exc:
            released = self._schedules.release_claim(record, run, claimed_next_run_at=next_run_at)
            logger().error(
                "verification not sent", extra={"policy": record.policy, "error": str(exc), "retry": released}
            )
            return "failed"
        return "dispatched"
