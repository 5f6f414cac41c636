"""The backup-jobs queue (SQS): jobs from the dispatcher, shard and commit messages from the workers."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

import orjson

from chalicelib.aws.errors import AwsError
from chalicelib.aws.sqs import MAX_DELAY_S as MAX_DELAY_S
from chalicelib.aws.sqs import SqsQueue
from chalicelib.backup.errors import QueueUnavailable


class BackupWorkQueue:
    """Sends messages the backup worker handles (``core.jobs.parse_message``) to the backup-jobs queue."""

    def __init__(self, sqs_client: Any, queue_url: str | None) -> None:
        self._client = sqs_client
        self._url = queue_url

    def send(self, message: dict[str, Any], *, delay_s: int = 0) -> None:
        queue = self._require_queue()
        try:
            queue.send(orjson.dumps(message).decode(), delay_s=delay_s)
        except AwsError as exc:
            raise QueueUnavailable(f"could not enqueue backup messages: {exc}") from exc

    def send_many(self, messages: Iterable[dict[str, Any]]) -> int:
        queue = self._require_queue()
        try:
            return queue.send_many(orjson.dumps(message).decode() for message in messages)
        except AwsError as exc:
            raise QueueUnavailable(f"could not enqueue backup messages: {exc}") from exc

    def send_batch(self, messages: Sequence[dict[str, Any]]) -> dict[int, str]:
        """Send up to ten messages in one request; returns why each one not sent was not, by position."""
        queue = self._require_queue()
        try:
            return queue.send_batch([orjson.dumps(message).decode() for message in messages])
        except AwsError as exc:
            raise QueueUnavailable(f"could not enqueue backup messages: {exc}") from exc

    def _require_queue(self) -> SqsQueue:
        if not self._url:
            raise QueueUnavailable("no backup queue configured (LIFEBOAT_BACKUP_QUEUE_URL)")
        return SqsQueue(self._client, self._url)
