"""Retention follows restic ``forget``: buckets counted newest first, distinct buckets only, oldest kept while counts
remain, in the policy's timezone."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

from chalicelib.core.policies import Retention
from chalicelib.core.retention import Candidate, apply_retention

UTCZ = ZoneInfo("UTC")
START = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)  # a Thursday


def backups(times: list[datetime]) -> list[Candidate]:
    return [Candidate(f"b{i:03d}", t) for i, t in enumerate(times)]


def kept(decisions: list) -> list[str]:  # type: ignore[type-arg]
    return [d.backup_id for d in decisions if d.keep]


def daily(days: int, hour: int = 2) -> list[Candidate]:
    return backups([START.replace(hour=hour) + timedelta(days=d) for d in range(days)])


def test_keep_last_keeps_the_newest_n() -> None:
    decisions = apply_retention(daily(10), Retention(keep_last=3), UTCZ)
    assert kept(decisions) == ["b009", "b008", "b007"]
    assert [d.backup_id for d in decisions] == [f"b{i:03d}" for i in range(9, -1, -1)]  # newest first
    assert all(d.reasons == () for d in decisions if not d.keep)


def test_keep_daily_counts_distinct_days_newest_first() -> None:
    # Three backups a day for five days: keep_daily=3 keeps the newest backup of each of the last three days.
    times = [START + timedelta(days=d, hours=h) for d in range(5) for h in (0, 4, 8)]
    decisions = apply_retention(backups(times), Retention(keep_daily=3), UTCZ)
    newest_per_day = {d: f"b{d * 3 + 2:03d}" for d in range(5)}
    assert kept(decisions) == [newest_per_day[4], newest_per_day[3], newest_per_day[2]]


def test_days_without_backups_do_not_use_up_counts() -> None:
    # Backups on days 0, 1, 5, 9: keep_daily=3 keeps days 9, 5, 1 (not "the last three calendar days").
    times = [START + timedelta(days=d) for d in (0, 1, 5, 9)]
    assert kept(apply_retention(backups(times), Retention(keep_daily=3), UTCZ)) == ["b003", "b002", "b001"]


def test_oldest_is_kept_while_counts_remain() -> None:
    # restic keeps the oldest snapshot when a rule still has counts left: maximal history for a young policy.
    decisions = apply_retention(daily(3), Retention(keep_daily=7), UTCZ)
    assert kept(decisions) == ["b002", "b001", "b000"]
    assert "oldest backup while counts remain" in decisions[-1].reasons[0]
    # Same day: the newest and the oldest of that day are kept, the middle one goes.
    same_day = backups([START, START + timedelta(hours=1), START + timedelta(hours=2)])
    assert kept(apply_retention(same_day, Retention(keep_daily=2), UTCZ)) == ["b002", "b000"]


def test_grandfather_father_son_reasons() -> None:
    # 400 days of nightly backups.
    candidates = daily(400)
    decisions = apply_retention(candidates, Retention(keep_last=2, keep_daily=7, keep_weekly=4, keep_monthly=6), UTCZ)
    by_id = {d.backup_id: d for d in decisions}
    newest = by_id["b399"]
    assert newest.reasons[0] == "last" and any(r.startswith("daily") for r in newest.reasons)
    assert any(r.startswith("weekly") for r in newest.reasons) and any(r.startswith("monthly") for r in newest.reasons)
    daily_kept = [d for d in decisions if any(r.startswith("daily") for r in d.reasons)]
    weekly_kept = [d for d in decisions if any(r.startswith("weekly") for r in d.reasons)]
    monthly_kept = [d for d in decisions if any(r.startswith("monthly") for r in d.reasons)]
    assert len(daily_kept) == 7 and len(weekly_kept) == 4 and len(monthly_kept) == 6
    # Weekly keeps the newest backup of each ISO week: a Sunday (the week's last day) for complete weeks.
    assert all(d.taken_at.isoweekday() == 7 for d in weekly_kept[1:])
    # Monthly keeps each month's last day.
    assert all((d.taken_at + timedelta(days=1)).day == 1 for d in monthly_kept[1:])
    total = len(kept(decisions))
    assert total < 2 + 7 + 4 + 6  # buckets overlap: the newest backup counts for every rule
    assert len(decisions) - total == 400 - total


def test_yearly_and_hourly() -> None:
    times = [datetime(2020 + y, 6, 1, tzinfo=UTC) for y in range(5)]
    assert kept(apply_retention(backups(times), Retention(keep_yearly=2), UTCZ)) == ["b004", "b003"]
    hourly = backups([START + timedelta(minutes=20 * i) for i in range(9)])  # three per hour for three hours
    assert kept(apply_retention(hourly, Retention(keep_hourly=2), UTCZ)) == ["b008", "b005"]


def test_keep_all_keeps_every_bucket() -> None:
    times = [START + timedelta(days=d, hours=h) for d in range(4) for h in (0, 6)]
    assert kept(apply_retention(backups(times), Retention(keep_daily=-1), UTCZ)) == [
        "b007",
        "b005",
        "b003",
        "b001",
        "b000",  # oldest, as restic does while a rule is unlimited
    ]


def test_empty_retention_keeps_everything() -> None:
    decisions = apply_retention(daily(5), Retention(), UTCZ)
    assert len(kept(decisions)) == 5
    assert decisions[0].reasons == ("retention is empty: keep everything",)


def test_days_are_the_policy_timezone_days() -> None:
    # 23:30 UTC and 00:30 UTC the next day are one Berlin day (00:30 and 01:30 CET on Jan 2).
    times = [datetime(2026, 1, 1, 23, 30, tzinfo=UTC), datetime(2026, 1, 2, 0, 30, tzinfo=UTC),
             datetime(2026, 1, 2, 12, 0, tzinfo=UTC)]
    berlin = apply_retention(backups(times), Retention(keep_daily=1), ZoneInfo("Europe/Berlin"))
    assert kept(berlin) == ["b002"]
    utc = apply_retention(backups(times), Retention(keep_daily=2), UTCZ)
    assert kept(utc) == ["b002", "b000"]


def test_no_candidates() -> None:
    assert apply_retention([], Retention(keep_last=1), UTCZ) == []
