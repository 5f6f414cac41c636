"""Clocks for tests: UTC datetimes by their fields, and settable clocks (datetimes, or seconds) a test advances."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta


class Clock:
    """A settable clock (timezone-aware UTC)."""

    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **delta: float) -> datetime:
        self.now += timedelta(**delta)
        return self.now


def utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)  # type: ignore[misc]


class SecondsClock:
    """A settable clock of plain seconds (``time.monotonic``-style), starting at 1000."""

    def __init__(self, now: float = 1000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now
