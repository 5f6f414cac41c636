"""Thin adapter: one EventBridge bus (put one event), and announcing Lifeboat's events on it without failing."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
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


# The pool this thread's announcements go to within ``announcing_in_background`` (absent: put them at once).
_background = threading.local()


@contextmanager
def announcing_in_background() -> Iterator[None]:
    """Within the block, this thread's ``announce`` calls hand their events to a thread of their own, which puts
    them in the order announced, so the work goes on meanwhile (a put is a round trip to EventBridge); the block
    ends once every one is put or logged as lost, so none is left behind when a Lambda invocation returns. A block
    within another is the outer one; other threads announce as they would without it."""
    if getattr(_background, "pool", None) is not None:
        yield
        return
    pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="lifeboat-events")
    _background.pool = pool
    try:
        yield
    finally:
        _background.pool = None
        pool.shutdown(wait=True)


def announce(publisher: Publisher | None, event: Event | None) -> bool:
    """Publish ``event`` (nothing without a publisher or an event); True when it was put, or handed to the thread
    that puts it (``announcing_in_background``).

    The work an event reports is already recorded when it is announced: a bus that refuses it (throttled, down,
    misconfigured) is logged and never fails that work.
    """
    if publisher is None or event is None:
        return False
    pool: ThreadPoolExecutor | None = getattr(_background, "pool", None)
    if pool is not None:
        pool.submit(_put, publisher, event)
        return True
    return _put(publisher, event)


def _put(publisher: Publisher, event: Event) -> bool:
    try:
        publisher.publish(event.detail_type, event.detail)
    except Exception as exc:  # noqa: BLE001 - a lost event is logged, the outcome stays recorded
        logger().warning("event not published", extra={"detail_type": event.detail_type, "error": str(exc)[:500]})
        return False
    return True
