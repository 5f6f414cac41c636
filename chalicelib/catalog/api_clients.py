"""API clients (who may call the signed API, with which grant) and the ledger of used request signatures.

A client item (``API_CLIENTS`` / ``CLIENT#<id>``) holds the grant, the name of the Secrets Manager secret holding
the client's key, and the rotation and revocation times; never the key itself. A used signature is an item of its
own (``SIGNATURE#<digest>``) written with a condition, so two requests carrying the same signature cannot both win.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from chalicelib.catalog import keys
from chalicelib.catalog.dynamo import decode_item, encode, error_code, iso, query_partition, translate_error
from chalicelib.catalog.errors import AlreadyExists, RecordNotFound
from chalicelib.catalog.schema import TTL_ATTRIBUTE


@dataclass(frozen=True)
class ApiClientRecord:
    client_id: str
    secret_id: str  # the Secrets Manager secret with the client's key (AWSCURRENT, and AWSPREVIOUS after a rotation)
    grant: dict[str, list[str]] = field(default_factory=dict)  # action -> cluster names (api/grants.py)
    created_at: str | None = None
    rotated_at: str | None = None
    previous_valid_until: str | None = None  # the key before the last rotation is accepted until then
    revoked_at: str | None = None
    description: str = ""

    @property
    def revoked(self) -> bool:
        return self.revoked_at is not None


class ApiClientCatalog:
    def __init__(self, dynamodb_client: Any, table_name: str) -> None:
        self._client = dynamodb_client
        self._table = table_name

    def create(self, record: ApiClientRecord) -> ApiClientRecord:
        """A new client; AlreadyExists when the id is taken (a revoked client's id stays taken)."""
        from botocore.exceptions import ClientError

        item = {**keys.api_client_key(record.client_id), "type": {"S": "api_client"}}
        for name, value in _attributes(record).items():
            if value is not None:
                item[name] = encode(value)
        try:
            self._client.put_item(TableName=self._table, Item=item, ConditionExpression="attribute_not_exists(pk)")
        except ClientError as exc:
            if error_code(exc) == "ConditionalCheckFailedException":
                raise AlreadyExists(f"API client {record.client_id!r} already exists") from exc
            raise translate_error(exc, self._table) from exc
        return record

    def get(self, client_id: str) -> ApiClientRecord:
        """The client (revoked ones too); RecordNotFound when there is none of that id."""
        response = self._call(
            "get_item", TableName=self._table, Key=keys.api_client_key(client_id), ConsistentRead=True
        )
        if "Item" not in response:
            raise RecordNotFound(f"API client {client_id!r} does not exist")
        return _to_record(decode_item(response["Item"]))

    def list(self) -> list[ApiClientRecord]:
        records = [_to_record(item) for item in query_partition(self._call, self._table, keys.API_CLIENTS_PK)]
        return sorted(records, key=lambda r: r.client_id)

    def record_rotation(self, client_id: str, *, rotated_at: datetime, previous_valid_until: datetime) -> None:
        """Note a rotation of a client that is not revoked (RecordNotFound otherwise)."""
        self._update(
            client_id,
            "SET rotated_at = :r, previous_valid_until = :p",
            {":r": {"S": iso(rotated_at)}, ":p": {"S": iso(previous_valid_until)}},
        )

    def revoke(self, client_id: str, now: datetime) -> None:
        """From now on no key of the client is accepted (RecordNotFound when it does not exist or was revoked)."""
        self._update(client_id, "SET revoked_at = :r REMOVE previous_valid_until", {":r": {"S": iso(now)}})

    def _update(self, client_id: str, expression: str, values: dict[str, Any]) -> None:
        from botocore.exceptions import ClientError

        try:
            self._client.update_item(
                TableName=self._table,
                Key=keys.api_client_key(client_id),
                UpdateExpression=expression,
                ConditionExpression="attribute_exists(pk) AND attribute_not_exists(revoked_at)",
                ExpressionAttributeValues=values,
            )
        except ClientError as exc:
            if error_code(exc) == "ConditionalCheckFailedException":
                raise RecordNotFound(f"API client {client_id!r} does not exist or is revoked") from exc
            raise translate_error(exc, self._table) from exc

    def _call(self, operation: str, **kwargs: Any) -> dict[str, Any]:
        from botocore.exceptions import ClientError

        try:
            return dict(getattr(self._client, operation)(**kwargs))
        except ClientError as exc:
            raise translate_error(exc, self._table) from exc


class SignatureLedger:
    """Used signatures: ``claim`` succeeds once per digest until the item expires."""

    def __init__(self, dynamodb_client: Any, table_name: str) -> None:
        self._client = dynamodb_client
        self._table = table_name

    def claim(self, digest: str, *, client_id: str, expires_at: int) -> bool:
        """True for the first use of ``digest``; False when it was used before (an item that TTL has not yet
        removed counts as used even past ``expires_at``: the timestamp window refuses such requests anyway)."""
        from botocore.exceptions import ClientError

        item = {
            **keys.signature_key(digest),
            "type": {"S": "signature"},
            "client_id": {"S": client_id},
            TTL_ATTRIBUTE: {"N": str(int(expires_at))},
        }
        try:
            self._client.put_item(TableName=self._table, Item=item, ConditionExpression="attribute_not_exists(pk)")
        except ClientError as exc:
            if error_code(exc) == "ConditionalCheckFailedException":
                return False
            raise translate_error(exc, self._table) from exc
        return True


def _attributes(record: ApiClientRecord) -> dict[str, Any]:
    return {
        "client_id": record.client_id,
        "secret_id": record.secret_id,
        "grant": {k: list(v) for k, v in record.grant.items()},
        "created_at": record.created_at,
        "rotated_at": record.rotated_at,
        "previous_valid_until": record.previous_valid_until,
        "revoked_at": record.revoked_at,
        "description": record.description,
    }


def _to_record(item: dict[str, Any]) -> ApiClientRecord:
    return ApiClientRecord(
        client_id=str(item["client_id"]),
        secret_id=str(item["secret_id"]),
        grant={str(k): [str(c) for c in v] for k, v in (item.get("grant") or {}).items()},
        created_at=item.get("created_at"),
        rotated_at=item.get("rotated_at"),
        previous_valid_until=item.get("previous_valid_until"),
        revoked_at=item.get("revoked_at"),
        description=str(item.get("description") or ""),
    )
