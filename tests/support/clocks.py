"""Clocks for tests: UTC datetimes by their fields, and a settable clock a test advances."""

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
