"""Thin adapters: the restore-jobs queue (SQS) and restore events (EventBridge)."""

from __future__ import annotations

import json
from typing import Any

from chalicelib.webhook.errors import ServiceUnavailable

EVENT_SOURCE = "lifeboat"
RESTORE_COMPLETED = "Restore Completed"
RESTORE_FAILED = "Restore Failed"


class RestoreQueue:
    """Sends one message per restore job; the message names the job only, the record holds the request."""

    def __init__(self, sqs_client: Any, queue_url: str | None) -> None:
        self._client = sqs_client
        self._url = queue_url

    def send(self, restore_id: str) -> str:
        if not self._url:
            raise ServiceUnavailable("no restore queue configured (LIFEBOAT_RESTORE_QUEUE_URL)")
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            response = self._client.send_message(QueueUrl=self._url, MessageBody=json.dumps({"restore_id": restore_id}))
        except (ClientError, BotoCoreError) as exc:
            raise ServiceUnavailable(f"could not enqueue restore {restore_id}") from exc
        return str(response.get("MessageId", ""))


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
            raise ServiceUnavailable(f"could not publish {detail_type!r}") from exc
        if response.get("FailedEntryCount"):
            failed = response.get("Entries", [{}])[0]
            raise ServiceUnavailable(f"EventBridge refused {detail_type!r}: {failed.get('ErrorCode')}")
