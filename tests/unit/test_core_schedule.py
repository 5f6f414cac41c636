"""Cron + IANA timezone: next runs (DST both ways) and CronJob-style catch-up of missed runs."""

from __future__ import annotations

from datetime import UTC, timedelta

import pytest

from chalicelib.core.errors import InvalidPolicy
from chalicelib.core.schedule import (
    MAX_COUNTED_MISSES,
    Schedule,
    last_run_at_or_before,
    next_run,
    plan_run,
    schedule_problems,
)
from tests.support.clocks import utc

BERLIN = "Europe/Berlin"


def test_next_run_is_strictly_after_and_in_utc() -> None:
    s = Schedule("0 2 * * *", BERLIN)
    # 02:00 Berlin in winter is 01:00 UTC.
    assert next_run(s, utc(2026, 1, 10, 0, 0)) == utc(2026, 1, 10, 1, 0)
    assert next_run(s, utc(2026, 1, 10, 1, 0)) == utc(2026, 1, 11, 1, 0)
    # In summer the same wall time is 00:00 UTC.
    assert next_run(s, utc(2026, 7, 10, 12, 0)) == utc(2026, 7, 11, 0, 0)
    assert next_run(s, utc(2026, 7, 10, 12, 0)).tzinfo is UTC


def test_spring_forward_runs_a_missing_wall_time_right_after_the_jump() -> None:
    # 2026-03-29: Berlin clocks jump from 02:00 to 03:00; 02:30 does not exist that day.
    s = Schedule("30 2 * * *", BERLIN)
    first = next_run(s, utc(2026, 3, 28, 12, 0))
    assert first == utc(2026, 3, 29, 1, 0)  # 03:00 CEST, the first moment after the gap
    assert next_run(s, first) == utc(2026, 3, 30, 0, 30)  # 02:30 CEST the next day


def test_fall_back_runs_a_repeated_wall_time_once() -> None:
    # 2026-10-25: Berlin clocks go from 03:00 CEST back to 02:00 CET; 02:30 happens twice.
    s = Schedule("30 2 * * *", BERLIN)
    first = next_run(s, utc(2026, 10, 24, 12, 0))
    assert first == utc(2026, 10, 25, 0, 30)  # 02:30 CEST, the first occurrence
    assert next_run(s, first) == utc(2026, 10, 26, 1, 30)  # not 02:30 CET an hour later


def test_hourly_schedules_run_every_real_hour_through_fall_back() -> None:
    s = Schedule("0 * * * *", BERLIN)
    runs = [utc(2026, 10, 24, 22, 30)]
    for _ in range(4):
        runs.append(next_run(s, runs[-1]))
    gaps = {b - a for a, b in zip(runs[1:], runs[2:], strict=False)}
    assert gaps == {timedelta(hours=1)}


def test_last_run_at_or_before_is_inclusive() -> None:
    s = Schedule("0 2 * * *", "UTC")
    assert last_run_at_or_before(s, utc(2026, 1, 10, 2, 0)) == utc(2026, 1, 10, 2, 0)
    assert last_run_at_or_before(s, utc(2026, 1, 10, 1, 59)) == utc(2026, 1, 9, 2, 0)


def test_last_run_skips_the_repeat_of_a_fall_back_wall_time() -> None:
    s = Schedule("30 2 * * *", BERLIN)
    # 01:45 UTC is 02:45 CET, after the second 02:30; the run that counts is the first one (00:30 UTC).
    assert last_run_at_or_before(s, utc(2026, 10, 25, 1, 45)) == utc(2026, 10, 25, 0, 30)


def test_a_due_run_on_time_starts_and_nothing_is_missed() -> None:
    s = Schedule("0 2 * * *", "UTC", starting_deadline_seconds=3600)
    plan = plan_run(s, utc(2026, 1, 10, 2, 0), utc(2026, 1, 10, 2, 0, 40))
    assert plan.start and plan.missed == 0
    assert plan.scheduled_for == utc(2026, 1, 10, 2, 0)
    assert plan.late_seconds == 40
    assert plan.next_run_at == utc(2026, 1, 11, 2, 0)


def test_missed_runs_become_one_catch_up_run() -> None:
    s = Schedule("0 * * * *", "UTC", starting_deadline_seconds=3600)
    # The dispatcher was down from 02:00 to 05:10: the 02, 03 and 04 runs are missed, the 05:00 run starts.
    plan = plan_run(s, utc(2026, 1, 10, 2, 0), utc(2026, 1, 10, 5, 10))
    assert plan.start
    assert plan.scheduled_for == utc(2026, 1, 10, 5, 0)
    assert plan.missed == 3
    assert plan.next_run_at == utc(2026, 1, 10, 6, 0)


def test_a_catch_up_past_the_deadline_does_not_start() -> None:
    s = Schedule("0 2 * * *", "UTC", starting_deadline_seconds=600)
    plan = plan_run(s, utc(2026, 1, 10, 2, 0), utc(2026, 1, 10, 3, 0))
    assert not plan.start
    assert plan.scheduled_for == utc(2026, 1, 10, 2, 0)
    assert plan.late_seconds == 3600
    assert plan.next_run_at == utc(2026, 1, 11, 2, 0)


def test_without_a_deadline_the_latest_missed_run_always_starts() -> None:
    s = Schedule("0 2 * * *", "UTC")
    plan = plan_run(s, utc(2026, 1, 1, 2, 0), utc(2026, 1, 20, 12, 0))
    assert plan.start and plan.scheduled_for == utc(2026, 1, 20, 2, 0) and plan.missed == 19


def test_a_very_long_outage_counts_misses_up_to_a_bound() -> None:
    s = Schedule("* * * * *", "UTC")
    plan = plan_run(s, utc(2026, 1, 1), utc(2026, 3, 1))
    assert plan.missed == MAX_COUNTED_MISSES
    assert plan.scheduled_for == utc(2026, 3, 1)


def test_plan_refuses_a_policy_that_is_not_due() -> None:
    with pytest.raises(ValueError, match="not due"):
        plan_run(Schedule("0 2 * * *"), utc(2026, 1, 10, 2, 0), utc(2026, 1, 10, 1, 0))


@pytest.mark.parametrize(
    ("cron", "tz", "deadline", "needle"),
    [
        ("0 25 * * *", "UTC", None, "not a valid cron expression"),
        ("0 2 * *", "UTC", None, "has 4 fields"),
        ("0 0 0 2 * *", "UTC", None, "has 6 fields"),
        ("0 0 31 2 *", "UTC", None, "never fires"),
        ("@reboot", "UTC", None, "not a supported alias"),
        ("", "UTC", None, "cron: required"),
        ("0 2 * * *", "Mars/Olympus", None, "unknown timezone 'Mars/Olympus'"),
        ("0 2 * * *", "UTC", 30, "starting_deadline_seconds: must be an integer of at least 60"),
        ("0 2 * * *", "UTC", True, "starting_deadline_seconds"),
    ],
)
def test_schedule_problems_name_the_field_and_cause(cron: str, tz: str, deadline: object, needle: str) -> None:
    problems = schedule_problems(cron, tz, deadline)
    assert len(problems) == 1 and needle in problems[0], problems
    with pytest.raises(InvalidPolicy, match="schedule"):
        Schedule(cron, tz, deadline)  # type: ignore[arg-type]


def test_aliases_are_accepted() -> None:
    assert next_run(Schedule("@daily", BERLIN), utc(2026, 1, 10, 12, 0)) == utc(2026, 1, 10, 23, 0)
    assert schedule_problems("@hourly", "UTC", None) == []
