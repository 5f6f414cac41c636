"""Thin adapter: one EventBridge bus (put one event)."""

from __future__ import annotations

import json
from typing import Any

from chalicelib.aws.errors import AwsUnavailable, translate


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
