"""API clients: created, rotated and revoked by an operator (``lifeboat api-clients``), looked up per request.

The key must be readable by the API to check an HMAC, so it cannot be stored as a one-way hash; it lives in
Secrets Manager (KMS-encrypted, readable only by the API's role, every read in CloudTrail), one secret per
client. The catalog holds the grant, the secret's name and the rotation times. Every request reads the client's
catalog item, so a revocation or rotation takes effect at once; the key values are cached per client and re-read
when the item says the client was rotated since.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from chalicelib.api.client_secrets import ClientSecretStore, secret_id_for
from chalicelib.api.grants import Caller, Grant
from chalicelib.api.signature import CLIENT_ID, ClientKeys
from chalicelib.catalog.api_clients import ApiClientCatalog, ApiClientRecord
from chalicelib.catalog.dynamo import iso
from chalicelib.catalog.errors import RecordNotFound

DEFAULT_GRACE = timedelta(hours=1)
KEY_CACHE_S = 300.0


def _utcnow() -> datetime:
    return datetime.now(UTC)


class InvalidClient(ValueError):
    """An API client id or grant that cannot be used."""


class ApiClientService:
    """add | list | rotate | revoke; the key is returned once, when it is made."""

    def __init__(
        self, catalog: ApiClientCatalog, secrets: ClientSecretStore, *, clock: Callable[[], datetime] = _utcnow
    ) -> None:
        self._catalog = catalog
        self._secrets = secrets
        self._clock = clock

    def add(self, client_id: str, grant: Grant, *, description: str = "") -> tuple[ApiClientRecord, str]:
        if not CLIENT_ID.fullmatch(client_id):
            raise InvalidClient(f"API client id {client_id!r} must be lower-case letters, digits and ._- (max 63)")
        secret_id = secret_id_for(client_id)
        record = ApiClientRecord(
            client_id=client_id,
            secret_id=secret_id,
            grant=grant.to_dict(),
            created_at=iso(self._clock()),
            description=description,
        )
        # The catalog first: a taken id fails before a secret exists for it.
        self._catalog.create(record)
        key = self._secrets.create(secret_id, description=f"Lifeboat API key of {client_id}")
        return record, key

    def list(self) -> list[ApiClientRecord]:
        return self._catalog.list()

    def rotate(self, client_id: str, *, grace: timedelta = DEFAULT_GRACE) -> tuple[ApiClientRecord, str]:
        """A new key; the previous one keeps working for ``grace`` only (zero: at once refused)."""
        record = self._catalog.get(client_id)
        if record.revoked:
            raise RecordNotFound(f"API client {client_id!r} is revoked")
        key = self._secrets.rotate(record.secret_id)
        now = self._clock()
        self._catalog.record_rotation(client_id, rotated_at=now, previous_valid_until=now + grace)
        return self._catalog.get(client_id), key

    def revoke(self, client_id: str) -> ApiClientRecord:
        """No key of the client works any more; the catalog item stays (the id is never reused), the secret goes."""
        record = self._catalog.get(client_id)
        self._catalog.revoke(client_id, self._clock())
        self._secrets.delete(record.secret_id)
        return self._catalog.get(client_id)


class CatalogKeySource:
    """The verifier's view of clients: the catalog item on every request, the key values cached."""

    def __init__(
        self,
        catalog: ApiClientCatalog,
        secrets: ClientSecretStore,
        *,
        ttl: float = KEY_CACHE_S,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self._catalog = catalog
        self._secrets = secrets
        self._ttl = ttl
        self._monotonic = monotonic
        self._lock = threading.Lock()
        # client id -> (rotated_at the values were read for, when they were read, current, previous)
        self._cache: dict[str, tuple[str | None, float, bytes, bytes | None]] = {}

    def keys(self, client_id: str, now: float) -> ClientKeys | None:
        try:
            record = self._catalog.get(client_id)
        except RecordNotFound:
            return None
        if record.revoked:
            return None
        current, previous = self._values(record)
        valid = [current]
        if previous is not None and previous != current and _before(now, record.previous_valid_until):
            valid.append(previous)
        return ClientKeys(Caller(client_id, Grant.from_dict(record.grant)), tuple(valid))

    def _values(self, record: ApiClientRecord) -> tuple[bytes, bytes | None]:
        with self._lock:
            cached = self._cache.get(record.client_id)
            fresh = cached is not None and cached[0] == record.rotated_at and self._monotonic() - cached[1] < self._ttl
            if cached is not None and fresh:
                return cached[2], cached[3]
        current, previous = self._secrets.read(record.secret_id)
        with self._lock:
            self._cache[record.client_id] = (record.rotated_at, self._monotonic(), current, previous)
        return current, previous


def _before(now: float, until: str | None) -> bool:
    if not until:
        return False
    return now < datetime.fromisoformat(until.replace("Z", "+00:00")).timestamp()


def describe(record: ApiClientRecord) -> dict[str, Any]:
    """What ``api-clients list`` shows: never the key."""
    return {
        "client_id": record.client_id,
        "grant": record.grant,
        "created_at": record.created_at,
        "rotated_at": record.rotated_at,
        "previous_valid_until": record.previous_valid_until,
        "revoked_at": record.revoked_at,
        "description": record.description,
    }
