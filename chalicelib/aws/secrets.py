"""Thin adapter: Secrets Manager secrets, read (by version stage) and, for keys Lifeboat owns, created and rotated."""

from __future__ import annotations

from typing import Any

from chalicelib.aws.errors import AwsError, NotFound, translate


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

    def read_stage(self, secret_id: str, stage: str) -> str | None:
        """The text of one version stage (``AWSCURRENT``, ``AWSPREVIOUS``); None when the secret has no such stage."""
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            answer = self._client.get_secret_value(SecretId=secret_id, VersionStage=stage)
        except (ClientError, BotoCoreError) as exc:
            try:
                translate(exc, f"secret {secret_id!r} ({stage})")
            except NotFound:
                if stage == "AWSCURRENT":
                    raise
                return None  # never rotated: there is no previous version
        value = answer.get("SecretString")
        return str(value) if value else None


class SecretStore(SecretReader):
    """Reads, creates, rotates and deletes secrets whose values Lifeboat generates (API client keys)."""

    def create(self, secret_id: str, value: str, *, description: str) -> None:
        self._call("create_secret", secret_id, Name=secret_id, SecretString=value, Description=description)

    def put(self, secret_id: str, value: str) -> None:
        """A new AWSCURRENT value; Secrets Manager moves the old one to AWSPREVIOUS."""
        self._call("put_secret_value", secret_id, SecretId=secret_id, SecretString=value)

    def delete(self, secret_id: str) -> None:
        self._call("delete_secret", secret_id, SecretId=secret_id, ForceDeleteWithoutRecovery=True)

    def _call(self, operation: str, secret_id: str, **kwargs: Any) -> None:
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            getattr(self._client, operation)(**kwargs)
        except (ClientError, BotoCoreError) as exc:
            translate(exc, f"Secrets Manager {operation} of {secret_id!r}")
