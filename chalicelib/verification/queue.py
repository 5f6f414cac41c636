"""The verification queue (SQS): the dispatcher sends each scheduled run, the worker its continuations."""

from __future__ import annotations

from typing import Any

from chalicelib.aws.errors import AwsError
from chalicelib.aws.sqs import SqsQueue
from chalicelib.backup.errors import QueueUnavailable


class VerificationQueue:
    def __init__(self, sqs_client: Any, queue_url: str | None) -> None:
        self._client = sqs_client
        self._url = queue_url

    def send(self, body: str, *, delay_s: int = 0) -> str:
        if not self._url:
            raise QueueUnavailable("no verification queue configured (LIFEBOAT_VERIFICATION_QUEUE_URL)")
        try:
            return SqsQueue(self._client, self._url).send(body, delay_s=delay_s)
        except AwsError as exc:
            raise QueueUnavailable(f"could not enqueue a verification message: {exc}") from exc
