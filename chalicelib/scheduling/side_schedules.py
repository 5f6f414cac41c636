"""Keeping a policy's side schedules (etcd snapshots, restore verification) in step with its definition."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from chalicelib.core.schedule import Schedule, next_run


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
