"""API client keys in Secrets Manager: one secret per client, its previous version kept by the rotation stages."""

from __future__ import annotations

import secrets as token_source
from typing import Any

from chalicelib.api.errors import SecretUnavailable

SECRET_PREFIX = "lifeboat/api-clients/"
KEY_BYTES = 32


def secret_id_for(client_id: str) -> str:
    return f"{SECRET_PREFIX}{client_id}"


def new_key() -> str:
    return token_source.token_hex(KEY_BYTES)


class ClientSecretStore:
    """Create, rotate, read and delete client keys; Secrets Manager errors become SecretUnavailable."""

    def __init__(self, client: Any) -> None:
        self._client = client

    def create(self, secret_id: str, *, description: str = "") -> str:
        key = new_key()
        self._call("create_secret", Name=secret_id, SecretString=key, Description=description or "Lifeboat API key")
        return key

    def rotate(self, secret_id: str) -> str:
        """A new AWSCURRENT value; Secrets Manager moves the old one to AWSPREVIOUS."""
        key = new_key()
        self._call("put_secret_value", SecretId=secret_id, SecretString=key)
        return key

    def read(self, secret_id: str) -> tuple[bytes, bytes | None]:
        """(current, previous); previous is None for a key never rotated."""
        current = self._value(secret_id, "AWSCURRENT")
        if current is None:
            raise SecretUnavailable(f"API client secret {secret_id!r} has no AWSCURRENT value")
        return current, self._value(secret_id, "AWSPREVIOUS")

    def delete(self, secret_id: str) -> None:
        self._call("delete_secret", SecretId=secret_id, ForceDeleteWithoutRecovery=True)

    def _value(self, secret_id: str, stage: str) -> bytes | None:
        from botocore.exceptions import ClientError

        try:
            response = self._client.get_secret_value(SecretId=secret_id, VersionStage=stage)
        except ClientError as exc:
            code = exc.response.get("Error", {}).get("Code", "")
            if stage != "AWSCURRENT" and code == "ResourceNotFoundException":
                return None  # never rotated: there is no previous version
            raise SecretUnavailable(f"cannot read API client secret {secret_id!r} ({stage}): {code}") from exc
        value = response.get("SecretString")
        return str(value).encode() if value else None

    def _call(self, operation: str, **kwargs: Any) -> dict[str, Any]:
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            return dict(getattr(self._client, operation)(**kwargs))
        except ClientError as exc:
            code = exc.response.get("Error", {}).get("Code", "")
            name = kwargs.get("Name") or kwargs.get("SecretId")
            raise SecretUnavailable(f"Secrets Manager {operation} of {name!r} failed: {code}") from exc
        except BotoCoreError as exc:
            raise SecretUnavailable(f"Secrets Manager {operation} failed: {exc}") from exc
