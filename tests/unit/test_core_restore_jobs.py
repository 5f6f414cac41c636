"""The restore job's state machine and how an engine run's end maps to the job's final state."""

from __future__ import annotations

import pytest

from chalicelib.core.errors import InvalidStateTransition
from chalicelib.core.restore_jobs import (
    JOB_STATES,
    RUN_STATES,
    TERMINAL,
    RestoreState,
    allowed_sources,
    check_transition,
    job_outcome,
)

ALLOWED = [
    (RestoreState.PENDING, RestoreState.RUNNING),
    (RestoreState.PENDING, RestoreState.FAILED),
    (RestoreState.RUNNING, RestoreState.RUNNING),  # a takeover after a stale heartbeat
    (RestoreState.RUNNING, RestoreState.COMPLETED),
    (RestoreState.RUNNING, RestoreState.PARTIALLY_FAILED),
    (RestoreState.RUNNING, RestoreState.FAILED),
]


@pytest.mark.parametrize(("current", "target"), ALLOWED)
def test_allowed_transitions(current: RestoreState, target: RestoreState) -> None:
    check_transition(current, target)
    assert current in allowed_sources(target)


@pytest.mark.parametrize(
    ("current", "target"),
    [(c, t) for c in RestoreState for t in RestoreState if (c, t) not in ALLOWED],
)
def test_every_other_transition_is_refused(current: RestoreState, target: RestoreState) -> None:
    with pytest.raises(InvalidStateTransition, match=f"from {current} to {target}"):
        check_transition(current, target)
    assert current not in allowed_sources(target)


def test_state_machine_has_no_way_back() -> None:
    assert allowed_sources(RestoreState.PENDING) == frozenset()
    assert allowed_sources(RestoreState.RUNNING) == {RestoreState.PENDING, RestoreState.RUNNING}
    for terminal in (RestoreState.COMPLETED, RestoreState.PARTIALLY_FAILED):
        assert allowed_sources(terminal) == {RestoreState.RUNNING}


def test_a_record_is_never_interrupted_and_a_run_never_pending() -> None:
    assert RestoreState.INTERRUPTED not in JOB_STATES
    assert allowed_sources(RestoreState.INTERRUPTED) == frozenset()
    assert TERMINAL | {RestoreState.INTERRUPTED} == RUN_STATES
    assert not RUN_STATES & {RestoreState.PENDING, RestoreState.RUNNING}
    assert {RestoreState.COMPLETED, RestoreState.PARTIALLY_FAILED, RestoreState.FAILED} == TERMINAL


@pytest.mark.parametrize(
    ("run", "applied", "failed", "expected"),
    [
        (RestoreState.COMPLETED, 4, 0, RestoreState.COMPLETED),
        (RestoreState.COMPLETED, 0, 0, RestoreState.COMPLETED),  # everything already there, skipped on purpose
        # an earlier invocation recorded failures; the last run alone saw none
        (RestoreState.COMPLETED, 3, 1, RestoreState.PARTIALLY_FAILED),
        (RestoreState.PARTIALLY_FAILED, 2, 1, RestoreState.PARTIALLY_FAILED),
        (RestoreState.FAILED, 0, 3, RestoreState.FAILED),
        # the last run failed as a whole, but earlier invocations applied objects
        (RestoreState.FAILED, 5, 0, RestoreState.PARTIALLY_FAILED),
    ],
)
def test_job_outcome(run: RestoreState, applied: int, failed: int, expected: RestoreState) -> None:
    assert job_outcome(run, applied=applied, failed=failed) == expected


@pytest.mark.parametrize("run", [RestoreState.INTERRUPTED, RestoreState.PENDING, RestoreState.RUNNING])
def test_a_run_that_did_not_end_finishes_no_job(run: RestoreState) -> None:
    with pytest.raises(InvalidStateTransition):
        job_outcome(run, applied=1, failed=0)
