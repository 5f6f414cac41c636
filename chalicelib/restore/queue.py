"""The restore-jobs queue (SQS), shared by the signed API (which enqueues) and the worker (continues)."""

from __future__ import annotations

import json
from typing import Any

from chalicelib.aws.errors import AwsError
from chalicelib.aws.sqs import SqsQueue
from chalicelib.restore.errors import MessagingUnavailable


class RestoreQueue:
    """Sends one message per restore job; the message names the job only, the record holds the request."""

    def __init__(self, sqs_client: Any, queue_url: str | None) -> None:
        self._client = sqs_client
        self._url = queue_url

    def send(self, restore_id: str, *, delay_s: int = 0) -> str:
        if not self._url:
            raise MessagingUnavailable("no restore queue configured (LIFEBOAT_RESTORE_QUEUE_URL)")
        try:
            return SqsQueue(self._client, self._url).send(json.dumps({"restore_id": restore_id}), delay_s=delay_s)
        except AwsError as exc:
            raise MessagingUnavailable(f"could not enqueue restore {restore_id}") from exc
