"""Keeping a policy's side schedules (etcd snapshots, restore verification) in step with its definition."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any

from chalicelib.core.schedule import Schedule, next_run
from chalicelib.observability import logger


def sync_schedule(schedules: Any, policy: Any, wanted: Schedule | None, now: datetime) -> None:
    """The schedule item there while the policy is enabled and ``wanted`` is set (its next run kept while the
    schedule is unchanged), gone otherwise."""
    found = schedules.get(policy.cluster, policy.name)
    if not policy.enabled or wanted is None:
        if found is not None:
            schedules.remove(policy.cluster, policy.name)
        return
    if found is None or found.schedule != wanted:
        schedules.put(policy.cluster, policy.name, wanted, next_run_at=next_run(wanted, now))


def dispatch_each(schedules: Any, now: datetime, dispatch: Callable[[Any, datetime], Any], what: str) -> list[Any]:
    """The outcome (``dispatcher.Outcome``) of every due schedule; one that raises is a "failed" outcome, logged,
    and never holds up the others."""
    from chalicelib.scheduling.dispatcher import Outcome

    outcomes = []
    for record in schedules.due(now):
        try:
            outcome = dispatch(record, now)
        except Exception as exc:  # noqa: BLE001 -- one broken schedule must not hold up the others
            logger().exception(f"{what} not dispatched", extra={"policy": record.policy})
            outcome = Outcome(
                record.policy, record.cluster, record.next_run_at, "failed", f"{type(exc).__name__}: {exc}"
            )
        if outcome is not None:
            outcomes.append(outcome)
            logger().info(what, extra=outcome.__dict__)
    return outcomes
