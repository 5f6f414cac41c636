"""API client keys in Secrets Manager: one secret per client, its previous version kept by the rotation stages."""

from __future__ import annotations

import secrets as token_source
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from chalicelib.api.errors import SecretUnavailable

SECRET_PREFIX = "lifeboat/api-clients/"
KEY_BYTES = 32


def secret_id_for(client_id: str) -> str:
    return f"{SECRET_PREFIX}{client_id}"


def new_key() -> str:
    return token_source.token_hex(KEY_BYTES)


class ClientSecretStore:
    """Create, rotate, read and delete client keys; AWS errors become SecretUnavailable."""

    def __init__(self, client: Any) -> None:
        from chalicelib.aws.secrets import SecretStore

        self._secrets = SecretStore(client)

    def create(self, secret_id: str, *, description: str = "") -> str:
        key = new_key()
        with _unavailable():
            self._secrets.create(secret_id, key, description=description or "Lifeboat API key")
        return key

    def rotate(self, secret_id: str) -> str:
        """A new AWSCURRENT value; Secrets Manager moves the old one to AWSPREVIOUS."""
        key = new_key()
        with _unavailable():
            self._secrets.put(secret_id, key)
        return key

    def read(self, secret_id: str) -> tuple[bytes, bytes | None]:
        """(current, previous); previous is None for a key never rotated."""
        with _unavailable():
            current = self._secrets.read_stage(secret_id, "AWSCURRENT")
            previous = self._secrets.read_stage(secret_id, "AWSPREVIOUS")
        if current is None:
            raise SecretUnavailable(f"API client secret {secret_id!r} has no AWSCURRENT value")
        return current.encode(), previous.encode() if previous else None

    def delete(self, secret_id: str) -> None:
        with _unavailable():
            self._secrets.delete(secret_id)


@contextmanager
def _unavailable() -> Iterator[None]:
    from chalicelib.aws.errors import AwsError

    try:
        yield
    except AwsError as exc:
        raise SecretUnavailable(f"API client key unavailable: {exc}") from exc
