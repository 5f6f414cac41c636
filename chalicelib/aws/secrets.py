"""Thin adapter: reading Secrets Manager secrets."""

from __future__ import annotations

from typing import Any

from chalicelib.aws.errors import AwsError, translate


class SecretReader:
    """Reads the current value of a secret, as text."""

    def __init__(self, secretsmanager_client: Any) -> None:
        self._client = secretsmanager_client

    def read(self, secret_id: str) -> str:
        """The secret's text (``SecretString``, or ``SecretBinary`` decoded as UTF-8)."""
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            answer = self._client.get_secret_value(SecretId=secret_id)
        except (ClientError, BotoCoreError) as exc:
            translate(exc, f"secret {secret_id!r}")
        text = answer.get("SecretString")
        if text is not None:
            return str(text)
        try:
            return bytes(answer.get("SecretBinary") or b"").decode()
        except UnicodeDecodeError as exc:
            raise AwsError(f"secret {secret_id!r}: binary data, not text", "BinarySecret") from exc
