"""Policy run records (one per scheduled time of a policy) and reading a policy's backups.

``CLUSTER#<cluster>`` / ``RUN#<policy>#<scheduled for>``: what the dispatcher did about that run (dispatched or
skipped, and why). ``PolicyCatalog.claim`` puts it with ``attribute_not_exists`` in the same transaction that advances
the policy, so each scheduled run is claimed exactly once; it expires through the table's TTL after 90 days.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any

from chalicelib.catalog.keys import cluster_pk

RUN_PREFIX = "RUN#"
RUN_RECORD_TTL_S = 90 * 86400
DISPATCHED = "dispatched"
SKIPPED = "skipped"


@dataclass(frozen=True)
class RunRecord:
    """What the dispatcher did about one scheduled time of one policy."""

    policy: str
    cluster: str
    scheduled_for: str
    outcome: str  # dispatched | skipped
    reason: str = ""
    job_id: str | None = None
    missed: int = 0  # earlier scheduled times given up for this one
    late_seconds: float = 0.0
    at: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {k: v for k, v in self.__dict__.items() if v is not None}


def run_key(cluster: str, name: str, scheduled_for: str) -> dict[str, dict[str, str]]:
    return {"pk": {"S": cluster_pk(cluster)}, "sk": {"S": f"{RUN_PREFIX}{name}#{scheduled_for}"}}


def to_run(item: dict[str, Any]) -> RunRecord:
    return RunRecord(
        policy=str(item.get("policy", "")),
        cluster=str(item.get("cluster", "")),
        scheduled_for=str(item.get("scheduled_for", "")),
        outcome=str(item.get("outcome", "")),
        reason=str(item.get("reason", "")),
        job_id=item.get("job_id"),
        missed=int(item.get("missed", 0)),
        late_seconds=float(item.get("late_seconds", 0.0)),
        at=str(item.get("at", "")),
    )


def backups_of_policy(
    backups: Any, cluster: str, policy: str, *, states: Iterable[Any] | None = None, max_pages: int | None = None
) -> Iterator[Any]:
    """A policy's backup records (``BackupRecord``), newest first; reads at most ``max_pages`` pages of 100."""
    token: str | None = None
    pages = 0
    wanted = list(states) if states is not None else None
    while max_pages is None or pages < max_pages:
        records, token = backups.list(cluster, limit=100, next_token=token, states=wanted)
        pages += 1
        yield from (r for r in records if r.policy == policy)
        if token is None:
            return
