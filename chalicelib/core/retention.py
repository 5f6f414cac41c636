"""Which backups a policy keeps: grandfather-father-son buckets exactly as restic ``forget`` defines them.

Backups are walked newest first. ``keep_last`` keeps the n newest. Each of hourly/daily/weekly/monthly/yearly has a
counter and remembers the last bucket (hour, day, ISO week, month, year) it kept: a backup whose bucket differs from
that is kept and the counter goes down, so each rule keeps the newest backup of its n most recent buckets that have
a backup at all (a day without a backup does not use up a count). As in restic, while a rule still has counts left
the oldest backup is kept too, so a young policy keeps its whole (short) history. Buckets are taken in the policy's
timezone: "daily" means the policy's days, not UTC days. A retention with every count zero keeps everything.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime
from zoneinfo import ZoneInfo

from chalicelib.core.policies import KEEP_ALL, Retention


@dataclass(frozen=True)
class Candidate:
    backup_id: str
    taken_at: datetime  # timezone-aware


@dataclass(frozen=True)
class Decision:
    backup_id: str
    taken_at: datetime
    keep: bool
    reasons: tuple[str, ...]  # empty when dropped


def _hour(d: datetime) -> tuple[int, ...]:
    return (d.year, d.month, d.day, d.hour)


def _day(d: datetime) -> tuple[int, ...]:
    return (d.year, d.month, d.day)


def _week(d: datetime) -> tuple[int, ...]:
    year, week, _ = d.isocalendar()
    return (year, week)


def _month(d: datetime) -> tuple[int, ...]:
    return (d.year, d.month)


def _year(d: datetime) -> tuple[int, ...]:
    return (d.year,)


_RULES: tuple[tuple[str, str, Callable[[datetime], tuple[int, ...]] | None], ...] = (
    ("keep_last", "last", None),  # every backup is its own bucket
    ("keep_hourly", "hourly", _hour),
    ("keep_daily", "daily", _day),
    ("keep_weekly", "weekly", _week),
    ("keep_monthly", "monthly", _month),
    ("keep_yearly", "yearly", _year),
)


def apply_retention(candidates: Iterable[Candidate], retention: Retention, tz: ZoneInfo) -> list[Decision]:
    """One decision per candidate, newest first, with the reasons each kept backup is kept."""
    ordered = sorted(candidates, key=lambda c: (c.taken_at, c.backup_id), reverse=True)
    if retention.empty:
        return [Decision(c.backup_id, c.taken_at, True, ("retention is empty: keep everything",)) for c in ordered]
    counts = {field: getattr(retention, field) for field, _, _ in _RULES}
    last_bucket: dict[str, tuple[int, ...] | None] = {field: None for field, _, _ in _RULES}
    decisions: list[Decision] = []
    for position, candidate in enumerate(ordered):
        local = candidate.taken_at.astimezone(tz)
        oldest = position == len(ordered) - 1
        reasons: list[str] = []
        for field, label, bucket_of in _RULES:
            if counts[field] == 0:
                continue
            bucket = (position,) if bucket_of is None else bucket_of(local)
            if bucket != last_bucket[field] or oldest:
                last_bucket[field] = bucket
                if counts[field] != KEEP_ALL:
                    counts[field] -= 1
                reasons.append(_reason(label, local, bucket_of, oldest and bucket_of is not None))
        decisions.append(Decision(candidate.backup_id, candidate.taken_at, bool(reasons), tuple(reasons)))
    return decisions


def _reason(label: str, local: datetime, bucket_of: Callable[[datetime], tuple[int, ...]] | None, oldest: bool) -> str:
    if bucket_of is None:
        return "last"
    when = {
        "hourly": local.strftime("%Y-%m-%d %H:00"),
        "daily": local.strftime("%Y-%m-%d"),
        "weekly": "{}-W{:02d}".format(*_week(local)),
        "monthly": local.strftime("%Y-%m"),
        "yearly": local.strftime("%Y"),
    }[label]
    suffix = ", oldest backup while counts remain" if oldest else ""
    return f"{label} ({when}{suffix})"
