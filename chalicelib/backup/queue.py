"""The backup-jobs queue (SQS): jobs from the dispatcher, shard and commit messages from the workers."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import orjson

from chalicelib.backup.errors import QueueUnavailable

_BATCH = 10  # SendMessageBatch's limit
MAX_DELAY_S = 900  # SQS's limit


class BackupWorkQueue:
    """Sends messages the backup worker handles (``core.jobs.parse_message``) to the backup-jobs queue."""

    def __init__(self, sqs_client: Any, queue_url: str | None) -> None:
        self._client = sqs_client
        self._url = queue_url

    def send(self, message: dict[str, Any], *, delay_s: int = 0) -> None:
        self._call(
            "send_message",
            QueueUrl=self._require_url(),
            MessageBody=orjson.dumps(message).decode(),
            DelaySeconds=max(0, min(int(delay_s), MAX_DELAY_S)),
        )

    def send_many(self, messages: Iterable[dict[str, Any]]) -> int:
        url = self._require_url()
        batch: list[dict[str, Any]] = []
        sent = 0
        for message in messages:
            batch.append({"Id": str(len(batch)), "MessageBody": orjson.dumps(message).decode()})
            if len(batch) == _BATCH:
                sent += self._send_batch(url, batch)
                batch = []
        if batch:
            sent += self._send_batch(url, batch)
        return sent

    def _send_batch(self, url: str, entries: list[dict[str, Any]]) -> int:
        response = self._call("send_message_batch", QueueUrl=url, Entries=entries)
        failed = response.get("Failed") or []
        if failed:
            retry = [e for e in entries if e["Id"] in {f.get("Id") for f in failed}]
            response = self._call("send_message_batch", QueueUrl=url, Entries=retry)
            if response.get("Failed"):
                raise QueueUnavailable(
                    f"SQS refused {len(response['Failed'])} backup messages: {response['Failed'][0]}"
                )
        return len(entries)

    def _require_url(self) -> str:
        if not self._url:
            raise QueueUnavailable("no backup queue configured (LIFEBOAT_BACKUP_QUEUE_URL)")
        return self._url

    def _call(self, operation: str, **kwargs: Any) -> dict[str, Any]:
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            return dict(getattr(self._client, operation)(**kwargs))
        except (ClientError, BotoCoreError) as exc:
            raise QueueUnavailable(f"could not enqueue backup messages: {exc}") from exc
