"""The backup-jobs queue (SQS): the dispatcher's only way to start a backup."""

from __future__ import annotations

from typing import Any

import orjson

from chalicelib.scheduling.errors import QueueUnavailable


class BackupQueue:
    """Sends backup jobs in the worker's format (``core.jobs.BackupJob.to_dict()``)."""

    def __init__(self, sqs_client: Any, queue_url: str | None) -> None:
        self._client = sqs_client
        self._url = queue_url

    def send(self, job: dict[str, Any]) -> str:
        if not self._url:
            raise QueueUnavailable("no backup queue configured (LIFEBOAT_BACKUP_QUEUE_URL)")
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            response = self._client.send_message(QueueUrl=self._url, MessageBody=orjson.dumps(job).decode())
        except (ClientError, BotoCoreError) as exc:
            raise QueueUnavailable(f"could not enqueue backup job {job.get('job_id')}: {exc}") from exc
        return str(response.get("MessageId", ""))
