"""Thin adapter: one EventBridge bus (put one event), and announcing Lifeboat's events on it without failing."""

from __future__ import annotations

import json
from typing import Any, Protocol

from chalicelib.aws.errors import AwsUnavailable, translate
from chalicelib.core.events import SOURCE, Event
from chalicelib.observability import logger


class EventBus:
    """Puts events on one bus (the default bus unless told otherwise)."""

    def __init__(self, events_client: Any, bus: str = "default") -> None:
        self._client = events_client
        self._bus = bus

    def put(self, source: str, detail_type: str, detail: dict[str, Any]) -> None:
        """Put one event; an entry EventBridge refuses is ``AwsUnavailable`` naming its error code."""
        from botocore.exceptions import BotoCoreError, ClientError

        entry = {"Source": source, "DetailType": detail_type, "Detail": json.dumps(detail), "EventBusName": self._bus}
        try:
            response = self._client.put_events(Entries=[entry])
        except (ClientError, BotoCoreError) as exc:
            translate(exc, f"EventBridge put_events {detail_type!r}")
        if response.get("FailedEntryCount"):
            code = str(response.get("Entries", [{}])[0].get("ErrorCode"))
            raise AwsUnavailable(f"EventBridge refused {detail_type!r}: {code}", code)


class Publisher(Protocol):
    """Anything that publishes one event by detail-type and detail (``EventBus``-backed, or a test's recorder)."""

    def publish(self, detail_type: str, detail: dict[str, Any]) -> None: ...


class LifeboatEvents:
    """Publishes Lifeboat's events (``core/events.py``) with source ``lifeboat`` on one bus."""

    def __init__(self, events_client: Any, bus: str = "default") -> None:
        self._bus = EventBus(events_client, bus)

    def publish(self, detail_type: str, detail: dict[str, Any]) -> None:
        self._bus.put(SOURCE, detail_type, detail)


def announce(publisher: Publisher | None, event: Event | None) -> bool:
    """Publish ``event`` (nothing without a publisher or an event); True when it was put.

    The work an event reports is already recorded when it is announced: a bus that refuses it (throttled, down,
    misconfigured) is logged and never fails that work.
    """
    if publisher is None or event is None:
        return False
    try:
        publisher.publish(event.detail_type, event.detail)
    except Exception as exc:  # noqa: BLE001 - a lost event is logged, the outcome stays recorded
        logger().warning("event not published", extra={"detail_type": event.detail_type, "error": str(exc)[:500]})
        return False
    return True
