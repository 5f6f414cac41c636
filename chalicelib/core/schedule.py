"""When a policy runs: five-field cron in an IANA timezone, and what to do about runs the dispatcher missed.

DST follows cron: a wall time that does not exist (spring forward) runs right after the jump; a wall time that
occurs twice (fall back) runs once, at its first occurrence, unless the hour field is ``*`` (then the job runs
every real hour, as an hourly job should). Missed runs follow a Kubernetes CronJob with
``startingDeadlineSeconds``: only the most recent missed run is started, and only within the deadline.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from croniter import CroniterBadCronError, CroniterBadDateError, croniter

from chalicelib.core.errors import InvalidPolicy

# The dispatcher runs once a minute, so a shorter deadline would skip runs that were merely a few seconds late.
MIN_STARTING_DEADLINE_S = 60
ALIASES = frozenset({"@yearly", "@annually", "@monthly", "@weekly", "@daily", "@midnight", "@hourly"})
# Bounds the walk over a long outage (a per-minute schedule down for a week is ~10k runs); beyond it we say "at least".
MAX_COUNTED_MISSES = 10_000
_MAX_SKIPS = 1000  # repeated wall times skipped in a row (a handful at most in practice)
_PROBE = datetime(2000, 1, 1, tzinfo=UTC)
SCHEDULE_FIELDS = frozenset({"cron", "timezone", "starting_deadline_seconds"})


@dataclass(frozen=True)
class Schedule:
    cron: str
    timezone: str = "UTC"
    starting_deadline_seconds: int | None = None

    def __post_init__(self) -> None:
        problems = schedule_problems(self.cron, self.timezone, self.starting_deadline_seconds)
        if problems:
            raise InvalidPolicy(problems)

    def to_dict(self) -> dict[str, object]:
        return {
            "cron": self.cron,
            "timezone": self.timezone,
            "starting_deadline_seconds": self.starting_deadline_seconds,
        }


@dataclass(frozen=True)
class RunPlan:
    """What a dispatcher does with a due policy."""

    scheduled_for: datetime  # the most recent scheduled time at or before now
    start: bool  # False when that run is past its starting deadline
    missed: int  # earlier scheduled times that will never run (a CronJob starts only the latest)
    late_seconds: float
    next_run_at: datetime


def schedule_problems(cron: object, timezone: object, deadline: object, where: str = "schedule") -> list[str]:
    """Every problem with a schedule, each naming its field; an empty list means it is valid."""
    problems: list[str] = []
    if not isinstance(cron, str) or not cron.strip():
        problems.append(f"{where}.cron: required, e.g. '0 2 * * *'")
    else:
        problem = _cron_problem(cron)
        if problem:
            problems.append(f"{where}.cron: {problem}")
    if not isinstance(timezone, str) or not timezone:
        problems.append(f"{where}.timezone: must be an IANA timezone name such as 'Europe/Berlin'")
    else:
        try:
            zone(timezone)
        except ValueError as exc:
            problems.append(f"{where}.timezone: {exc}")
    if deadline is not None and (
        isinstance(deadline, bool) or not isinstance(deadline, int) or deadline < MIN_STARTING_DEADLINE_S
    ):
        problems.append(
            f"{where}.starting_deadline_seconds: must be an integer of at least {MIN_STARTING_DEADLINE_S} "
            f"(the dispatcher runs once a minute), or null for no deadline; got {deadline!r}"
        )
    return problems


def parse_schedule(data: object, where: str, problems: list[str]) -> Schedule | None:
    """A policy file's schedule (a cron string or {cron, timezone, starting_deadline_seconds}), or None with the
    problems appended (each prefixed with ``where``)."""
    if isinstance(data, str):
        data = {"cron": data}
    if not isinstance(data, Mapping):
        problems.append(f"{where}: required, e.g. {{cron: '0 2 * * *', timezone: Europe/Berlin}}")
        return None
    unknown = sorted(set(data) - SCHEDULE_FIELDS)
    if unknown:
        problems.append(f"{where}: unknown fields {', '.join(unknown)} (known: {', '.join(sorted(SCHEDULE_FIELDS))})")
    cron, timezone = data.get("cron"), data.get("timezone", "UTC")
    deadline = data.get("starting_deadline_seconds")
    found = schedule_problems(cron, timezone, deadline, where)
    problems.extend(found)
    if found or unknown:
        return None
    return Schedule(cron=str(cron).strip(), timezone=str(timezone), starting_deadline_seconds=deadline)


def _cron_problem(cron: str) -> str | None:
    expr = cron.strip()
    if expr.startswith("@"):
        if expr not in ALIASES:
            return f"{expr!r} is not a supported alias ({', '.join(sorted(ALIASES))})"
        return None
    fields = expr.split()
    if len(fields) != 5:
        return f"{cron!r} has {len(fields)} fields; expected 5 (minute hour day-of-month month day-of-week)"
    if not croniter.is_valid(expr):
        return f"{cron!r} is not a valid cron expression"
    try:
        croniter(expr, _PROBE).get_next(datetime)
    except (CroniterBadDateError, CroniterBadCronError):
        return f"{cron!r} never fires (no such date)"
    return None


def zone(name: str) -> ZoneInfo:
    """The IANA timezone ``name``; ValueError with a readable message when there is none."""
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise ValueError(f"unknown timezone {name!r} (use an IANA name such as 'Europe/Berlin' or 'UTC')") from exc


def _hourly(cron: str) -> bool:
    expr = cron.strip()
    return expr == "@hourly" or (not expr.startswith("@") and expr.split()[1] == "*")


def _second_occurrence(moment: datetime, tz: ZoneInfo) -> bool:
    """Whether ``moment`` is the repeat of a wall time that a fall-back transition shows twice."""
    first = moment.replace(tzinfo=None).replace(tzinfo=tz, fold=0)
    return first.utcoffset() != moment.utcoffset()


def _aware(value: datetime) -> datetime:
    if value.tzinfo is None:
        raise ValueError("times must be timezone-aware")
    return value


def next_run(schedule: Schedule, after: datetime) -> datetime:
    """The first scheduled time strictly after ``after``, in UTC."""
    tz = zone(schedule.timezone)
    hourly = _hourly(schedule.cron)
    times = croniter(schedule.cron.strip(), _aware(after).astimezone(tz))
    for _ in range(_MAX_SKIPS):
        candidate: datetime = times.get_next(datetime)
        if not hourly and _second_occurrence(candidate, tz):
            continue
        if candidate > after:
            return candidate.astimezone(UTC)
    raise ValueError(f"cron {schedule.cron!r}: no next run found after {after.isoformat()}")


def last_run_at_or_before(schedule: Schedule, when: datetime) -> datetime:
    """The latest scheduled time at or before ``when``, in UTC."""
    tz = zone(schedule.timezone)
    hourly = _hourly(schedule.cron)
    # croniter's get_prev is strictly before its start; cron times are whole minutes, so one second later is inclusive.
    times = croniter(schedule.cron.strip(), (_aware(when) + timedelta(seconds=1)).astimezone(tz))
    for _ in range(_MAX_SKIPS):
        candidate: datetime = times.get_prev(datetime)
        if not hourly and _second_occurrence(candidate, tz):
            continue
        if candidate <= when:
            return candidate.astimezone(UTC)
    raise ValueError(f"cron {schedule.cron!r}: no run found before {when.isoformat()}")


def plan_run(schedule: Schedule, due_at: datetime, now: datetime) -> RunPlan:
    """What to do at ``now`` about a policy that was due at ``due_at`` (<= now): one run at most, never a burst."""
    if _aware(now) < _aware(due_at):
        raise ValueError(f"policy is not due before {due_at.isoformat()}")
    latest = max(last_run_at_or_before(schedule, now), due_at)
    missed = 0
    moment = due_at
    while moment < latest and missed < MAX_COUNTED_MISSES:
        missed += 1
        moment = next_run(schedule, moment)
    late = (now - latest).total_seconds()
    deadline = schedule.starting_deadline_seconds
    start = deadline is None or late <= deadline
    return RunPlan(
        scheduled_for=latest.astimezone(UTC),
        start=start,
        missed=missed,
        late_seconds=late,
        next_run_at=next_run(schedule, now),
    )
