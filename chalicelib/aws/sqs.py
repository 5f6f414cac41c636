"""Thin adapter: one SQS queue (send one message, or many in batches of ten)."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from chalicelib.aws.errors import AwsUnavailable, translate

BATCH = 10  # SendMessageBatch's limit
MAX_DELAY_S = 900  # SQS's limit


class SqsQueue:
    """Sends message bodies (already serialized) to one queue; a refused batch entry is sent once more."""

    def __init__(self, sqs_client: Any, queue_url: str) -> None:
        self._client = sqs_client
        self._url = queue_url

    def send(self, body: str, *, delay_s: int = 0) -> str:
        """Send one message (``delay_s`` clamped to what SQS allows); returns its message id."""
        response = self._call(
            "send_message", QueueUrl=self._url, MessageBody=body, DelaySeconds=max(0, min(int(delay_s), MAX_DELAY_S))
        )
        return str(response.get("MessageId", ""))

    def send_many(self, bodies: Iterable[str]) -> int:
        """Send every body, ten per request; returns how many were sent."""
        batch: list[str] = []
        sent = 0
        for body in bodies:
            batch.append(body)
            if len(batch) == BATCH:
                sent += self._send_batch(batch)
                batch = []
        if batch:
            sent += self._send_batch(batch)
        return sent

    def send_batch(self, bodies: Sequence[str]) -> dict[int, str]:
        """Send up to ten bodies in one request (a refused entry once more); returns the refused ones by position,
        with SQS's reason. A request that fails as a whole raises (``AwsError``)."""
        if len(bodies) > BATCH:
            raise ValueError(f"at most {BATCH} messages per batch, not {len(bodies)}")
        if not bodies:
            return {}
        entries = [{"Id": str(i), "MessageBody": body} for i, body in enumerate(bodies)]
        failed = self._call("send_message_batch", QueueUrl=self._url, Entries=entries).get("Failed") or []
        if failed:
            retry = [e for e in entries if e["Id"] in {f.get("Id") for f in failed}]
            failed = self._call("send_message_batch", QueueUrl=self._url, Entries=retry).get("Failed") or []
        return {int(f["Id"]): str(f.get("Message") or f.get("Code") or "refused") for f in failed}

    def _send_batch(self, bodies: Sequence[str]) -> int:
        entries = [{"Id": str(i), "MessageBody": body} for i, body in enumerate(bodies)]
        response = self._call("send_message_batch", QueueUrl=self._url, Entries=entries)
        failed = response.get("Failed") or []
        if failed:
            # SQS refuses single entries now and then (throttling, an internal error): one more try for those.
            retry = [e for e in entries if e["Id"] in {f.get("Id") for f in failed}]
            response = self._call("send_message_batch", QueueUrl=self._url, Entries=retry)
            if response.get("Failed"):
                raise AwsUnavailable(
                    f"SQS refused {len(response['Failed'])} messages: {response['Failed'][0]}", "BatchEntryFailed"
                )
        return len(entries)

    def _call(self, operation: str, **kwargs: Any) -> dict[str, Any]:
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            return dict(getattr(self._client, operation)(**kwargs))
        except (ClientError, BotoCoreError) as exc:
            translate(exc, f"SQS {operation}")
