"""Restore outcomes published on EventBridge (their details are built by ``core/events.py``)."""

from __future__ import annotations

from typing import Any

from chalicelib.aws.errors import AwsError
from chalicelib.aws.events import EventBus
from chalicelib.core.events import RESTORE_COMPLETED, RESTORE_FAILED, SOURCE
from chalicelib.restore.errors import MessagingUnavailable

EVENT_SOURCE = SOURCE
__all__ = ["EVENT_SOURCE", "RESTORE_COMPLETED", "RESTORE_FAILED", "EventPublisher"]


class EventPublisher:
    """Publishes restore outcomes on an EventBridge bus (the default bus unless told otherwise)."""

    def __init__(self, events_client: Any, bus: str = "default") -> None:
        self._bus = EventBus(events_client, bus)

    def publish(self, detail_type: str, detail: dict[str, Any]) -> None:
        try:
            self._bus.put(EVENT_SOURCE, detail_type, detail)
        except AwsError as exc:
            raise MessagingUnavailable(f"could not publish {detail_type!r}: {exc}") from exc
