"""Thin adapter: invoke a Lambda function synchronously (a backup hook) and read its answer."""

from __future__ import annotations

import json
from typing import Any

from chalicelib.aws.errors import AwsError, translate


class FunctionFailed(AwsError):
    """The function ran and reported an error (``FunctionError``: unhandled exception, timeout, out of memory)."""


class FunctionInvoker:
    """Invokes functions with ``lambda:InvokeFunction`` (RequestResponse) and a JSON payload."""

    def __init__(self, lambda_client: Any) -> None:
        self._client = lambda_client

    def invoke(self, function: str, payload: dict[str, Any]) -> Any:
        """The function's JSON answer (None when it returned nothing); FunctionFailed names the error it reported."""
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            answer = self._client.invoke(
                FunctionName=function, InvocationType="RequestResponse", Payload=json.dumps(payload).encode()
            )
        except (ClientError, BotoCoreError) as exc:
            translate(exc, f"Lambda function {function!r}")
        body = answer.get("Payload")
        raw = body.read() if hasattr(body, "read") else (body or b"")
        if answer.get("FunctionError"):
            message = _error_message(raw)
            raise FunctionFailed(f"Lambda function {function!r} failed: {message}", str(answer["FunctionError"]))
        try:
            return json.loads(raw) if raw else None
        except ValueError:
            return raw.decode(errors="replace")


def _error_message(raw: bytes) -> str:
    try:
        data = json.loads(raw)
    except ValueError:
        return raw.decode(errors="replace")[:300] or "no details"
    if isinstance(data, dict):
        return f"{data.get('errorType', 'Error')}: {data.get('errorMessage', '')}"[:300]
    return str(data)[:300]
