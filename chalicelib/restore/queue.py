"""Thin adapter: the restore-jobs queue (SQS), shared by the signed API (which enqueues) and the worker (continues)."""

from __future__ import annotations

import json
from typing import Any

from chalicelib.restore.errors import MessagingUnavailable


class RestoreQueue:
    """Sends one message per restore job; the message names the job only, the record holds the request."""

    def __init__(self, sqs_client: Any, queue_url: str | None) -> None:
        self._client = sqs_client
        self._url = queue_url

    def send(self, restore_id: str) -> str:
        if not self._url:
            raise MessagingUnavailable("no restore queue configured (LIFEBOAT_RESTORE_QUEUE_URL)")
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            response = self._client.send_message(QueueUrl=self._url, MessageBody=json.dumps({"restore_id": restore_id}))
        except (ClientError, BotoCoreError) as exc:
            raise MessagingUnavailable(f"could not enqueue restore {restore_id}") from exc
        return str(response.get("MessageId", ""))
