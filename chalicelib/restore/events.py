"""Thin adapter: restore outcomes published on EventBridge."""

from __future__ import annotations

import json
from typing import Any

from chalicelib.restore.errors import MessagingUnavailable

EVENT_SOURCE = "lifeboat"
RESTORE_COMPLETED = "Restore Completed"
RESTORE_FAILED = "Restore Failed"


class EventPublisher:
    """Publishes restore outcomes on an EventBridge bus (the default bus unless told otherwise)."""

    def __init__(self, events_client: Any, bus: str = "default") -> None:
        self._client = events_client
        self._bus = bus

    def publish(self, detail_type: str, detail: dict[str, Any]) -> None:
        from botocore.exceptions import BotoCoreError, ClientError

        entry = {
            "Source": EVENT_SOURCE,
            "DetailType": detail_type,
            "Detail": json.dumps(detail),
            "EventBusName": self._bus,
        }
        try:
            response = self._client.put_events(Entries=[entry])
        except (ClientError, BotoCoreError) as exc:
            raise MessagingUnavailable(f"could not publish {detail_type!r}") from exc
        if response.get("FailedEntryCount"):
            failed = response.get("Entries", [{}])[0]
            raise MessagingUnavailable(f"EventBridge refused {detail_type!r}: {failed.get('ErrorCode')}")
