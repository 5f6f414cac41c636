"""Restore states: the restore job record's state machine, and how a run of the restore engine ends."""

from __future__ import annotations

from enum import StrEnum

from chalicelib.core.errors import InvalidStateTransition


class RestoreState(StrEnum):
    """One enum for both: a job record is Pending, Running or terminal; an engine run ends terminal or Interrupted."""

    PENDING = "Pending"  # a job record, not yet claimed by a worker
    RUNNING = "Running"  # a job record a worker owns (its heartbeat says it is alive)
    COMPLETED = "Completed"  # every object is where the plan put it (created, updated or skipped on purpose)
    PARTIALLY_FAILED = "PartiallyFailed"  # some objects failed; ``failures`` names each one and why
    FAILED = "Failed"  # nothing could be restored (cluster unreachable, every write refused)
    # An engine run stopped on request before the end (resume with ``completed``). Never a record's state: the job
    # stays Running while its next invocation continues.
    INTERRUPTED = "Interrupted"


TERMINAL = frozenset({RestoreState.COMPLETED, RestoreState.PARTIALLY_FAILED, RestoreState.FAILED})
JOB_STATES = frozenset({RestoreState.PENDING, RestoreState.RUNNING}) | TERMINAL
RUN_STATES = TERMINAL | {RestoreState.INTERRUPTED}

_ALLOWED: dict[RestoreState, frozenset[RestoreState]] = {
    RestoreState.PENDING: frozenset({RestoreState.RUNNING, RestoreState.FAILED}),
    # Running -> Running is a takeover of a job whose worker stopped heartbeating.
    RestoreState.RUNNING: frozenset(
        {RestoreState.RUNNING, RestoreState.COMPLETED, RestoreState.PARTIALLY_FAILED, RestoreState.FAILED}
    ),
    RestoreState.COMPLETED: frozenset(),
    RestoreState.PARTIALLY_FAILED: frozenset(),
    RestoreState.FAILED: frozenset(),
    RestoreState.INTERRUPTED: frozenset(),
}


def allowed_sources(target: RestoreState) -> frozenset[RestoreState]:
    """States a restore job may move to ``target`` from (the catalog's DynamoDB conditions)."""
    return frozenset(s for s, targets in _ALLOWED.items() if target in targets)


def check_transition(current: RestoreState, target: RestoreState) -> None:
    if target not in _ALLOWED[current]:
        raise InvalidStateTransition(f"a restore job cannot move from {current} to {target}")


def job_outcome(run: RestoreState, *, applied: int, failed: int) -> RestoreState:
    """The terminal state of a job whose last engine run ended in ``run``, given the job's counts over all runs.

    A job may take several invocations, so its counts (objects created or updated, objects failed) span them all,
    while ``run`` describes the last one only: a last run that failed as a whole after earlier ones applied objects
    leaves the job PartiallyFailed, not Failed.
    """
    if run not in TERMINAL:
        raise InvalidStateTransition(f"a restore run that ended {run} does not finish its job")
    if run == RestoreState.FAILED and not applied:
        return RestoreState.FAILED
    if failed or run != RestoreState.COMPLETED:
        return RestoreState.PARTIALLY_FAILED
    return RestoreState.COMPLETED
