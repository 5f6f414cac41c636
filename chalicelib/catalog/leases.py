"""Leases on a repository: one exclusive holder (garbage collection) or any number of shared holders (backups).

Items share the partition ``LEASE#<scope>`` (the scope names the repository, since blobs are shared by every cluster
in it): ``sk = EXCLUSIVE`` and ``sk = SHARED#<holder>``, each with ``holder`` and ``expires_at`` (epoch seconds, the
table's TTL attribute). An expired lease counts as absent in every condition, so a dead holder's lease lapses on its
own; TTL only tidies up later.

The two modes exclude each other without a lock table scan:

- a shared lease is a transaction: *condition check* "no live exclusive lease" + *put* my shared item;
- an exclusive lease is a conditional put, after which the holder must find no live shared item (consistent query)
  before it may act, and must hold the lease while it waits for them to end.

DynamoDB orders the transaction and the put: either the shared item exists before the exclusive put (the exclusive
holder's query sees it) or the put comes first (the transaction's condition check fails). Both holders may lose,
never both win.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from chalicelib.catalog.dynamo import cancellation_codes, decode_item, error_code, iso, translate_error
from chalicelib.catalog.errors import LeaseHeld, LeaseLost
from chalicelib.catalog.keys import check_part

EXCLUSIVE_SK = "EXCLUSIVE"
SHARED_PREFIX = "SHARED#"


@dataclass(frozen=True)
class Lease:
    scope: str
    holder: str
    exclusive: bool
    expires_at: int  # epoch seconds

    @property
    def sort_key(self) -> str:
        return EXCLUSIVE_SK if self.exclusive else SHARED_PREFIX + self.holder


def lease_key(scope: str, sort_key: str) -> dict[str, dict[str, str]]:
    return {"pk": {"S": f"LEASE#{check_part('lease scope', scope)}"}, "sk": {"S": sort_key}}


def _epoch(now: datetime) -> int:
    return int(now.timestamp())


class LeaseCatalog:
    def __init__(self, dynamodb_client: Any, table_name: str) -> None:
        self._client = dynamodb_client
        self._table = table_name

    def acquire_shared(self, scope: str, holder: str, *, ttl_s: int, now: datetime) -> Lease:
        """A shared lease (re-acquiring extends it); LeaseHeld while a live exclusive lease exists."""
        from botocore.exceptions import ClientError

        check_part("lease holder", holder)
        lease = Lease(scope, holder, False, _epoch(now) + ttl_s)
        items = [
            {
                "ConditionCheck": {
                    "TableName": self._table,
                    "Key": lease_key(scope, EXCLUSIVE_SK),
                    "ConditionExpression": "attribute_not_exists(pk) OR expires_at < :now",
                    "ExpressionAttributeValues": {":now": {"N": str(_epoch(now))}},
                }
            },
            {"Put": {"TableName": self._table, "Item": self._item(lease, now)}},
        ]
        try:
            self._client.transact_write_items(TransactItems=items)
        except ClientError as exc:
            codes = cancellation_codes(exc) if error_code(exc) == "TransactionCanceledException" else []
            if codes[:1] == ["ConditionalCheckFailed"] or "TransactionConflict" in codes:
                raise self._held(scope, now, "a shared lease") from exc
            raise translate_error(exc, self._table) from exc
        return lease

    def acquire_exclusive(self, scope: str, holder: str, *, ttl_s: int, now: datetime) -> Lease:
        """The exclusive lease (re-entrant for the same holder); LeaseHeld while another holder's is live.

        The caller must then wait until ``live_shared`` is empty before acting (see the module docstring).
        """
        from botocore.exceptions import ClientError

        check_part("lease holder", holder)
        lease = Lease(scope, holder, True, _epoch(now) + ttl_s)
        try:
            self._client.put_item(
                TableName=self._table,
                Item=self._item(lease, now),
                ConditionExpression="attribute_not_exists(pk) OR expires_at < :now OR holder = :holder",
                ExpressionAttributeValues={":now": {"N": str(_epoch(now))}, ":holder": {"S": holder}},
            )
        except ClientError as exc:
            if error_code(exc) == "ConditionalCheckFailedException":
                raise self._held(scope, now, "the exclusive lease") from exc
            raise translate_error(exc, self._table) from exc
        return lease

    def live_shared(self, scope: str, *, now: datetime) -> list[Lease]:
        """Shared leases that have not expired (strongly consistent)."""
        query: dict[str, Any] = {
            "TableName": self._table,
            "KeyConditionExpression": "pk = :pk AND begins_with(sk, :prefix)",
            "ExpressionAttributeValues": {
                ":pk": lease_key(scope, SHARED_PREFIX)["pk"],
                ":prefix": {"S": SHARED_PREFIX},
            },
            "ConsistentRead": True,
        }
        leases = []
        while True:
            page = self._call("query", **query)
            for raw in page.get("Items", []):
                item = decode_item(raw)
                if int(item["expires_at"]) >= _epoch(now):
                    leases.append(Lease(scope, str(item["holder"]), False, int(item["expires_at"])))
            if "LastEvaluatedKey" not in page:
                return leases
            query["ExclusiveStartKey"] = page["LastEvaluatedKey"]

    def exclusive(self, scope: str, *, now: datetime) -> Lease | None:
        """The live exclusive lease, if any."""
        response = self._call(
            "get_item", TableName=self._table, Key=lease_key(scope, EXCLUSIVE_SK), ConsistentRead=True
        )
        item = decode_item(response["Item"]) if response.get("Item") else None
        if item is None or int(item["expires_at"]) < _epoch(now):
            return None
        return Lease(scope, str(item["holder"]), True, int(item["expires_at"]))

    def renew(self, lease: Lease, *, ttl_s: int, now: datetime) -> Lease:
        """Extend a live lease (heartbeat); LeaseLost if it expired or changed hands: its holder must stop."""
        from botocore.exceptions import ClientError

        renewed = Lease(lease.scope, lease.holder, lease.exclusive, _epoch(now) + ttl_s)
        try:
            self._client.update_item(
                TableName=self._table,
                Key=lease_key(lease.scope, lease.sort_key),
                UpdateExpression="SET expires_at = :exp, renewed_at = :at",
                # Not after expiry: the other mode may have been granted in between, and renewing would overlap it.
                ConditionExpression="holder = :holder AND expires_at >= :now",
                ExpressionAttributeValues={
                    ":exp": {"N": str(renewed.expires_at)},
                    ":at": {"S": iso(now)},
                    ":holder": {"S": lease.holder},
                    ":now": {"N": str(_epoch(now))},
                },
            )
        except ClientError as exc:
            if error_code(exc) == "ConditionalCheckFailedException":
                kind = "exclusive" if lease.exclusive else "shared"
                raise LeaseLost(f"{kind} lease of {lease.holder} on {lease.scope} expired or was taken over") from exc
            raise translate_error(exc, self._table) from exc
        return renewed

    def release(self, lease: Lease) -> bool:
        """Give a lease back; False when it was no longer ours (expired and taken, or already gone)."""
        from botocore.exceptions import ClientError

        try:
            self._client.delete_item(
                TableName=self._table,
                Key=lease_key(lease.scope, lease.sort_key),
                ConditionExpression="holder = :holder",
                ExpressionAttributeValues={":holder": {"S": lease.holder}},
            )
        except ClientError as exc:
            if error_code(exc) == "ConditionalCheckFailedException":
                return False
            raise translate_error(exc, self._table) from exc
        return True

    def _item(self, lease: Lease, now: datetime) -> dict[str, Any]:
        return {
            **lease_key(lease.scope, lease.sort_key),
            "type": {"S": "lease"},
            "holder": {"S": lease.holder},
            "mode": {"S": "exclusive" if lease.exclusive else "shared"},
            "acquired_at": {"S": iso(now)},
            "expires_at": {"N": str(lease.expires_at)},
        }

    def _held(self, scope: str, now: datetime, wanted: str) -> LeaseHeld:
        current = self.exclusive(scope, now=now)
        if current is None:
            # Lost a race with a holder that is already gone again, or with a concurrent transaction.
            return LeaseHeld(f"could not take {wanted} on {scope}: a concurrent lease change won; try again")
        until = iso(datetime.fromtimestamp(current.expires_at, UTC))
        return LeaseHeld(
            f"could not take {wanted} on {scope}: {current.holder} holds the exclusive lease until {until}",
            holder=current.holder,
            expires_at=current.expires_at,
        )

    def _call(self, operation: str, **kwargs: Any) -> dict[str, Any]:
        from botocore.exceptions import ClientError

        try:
            return dict(getattr(self._client, operation)(**kwargs))
        except ClientError as exc:
            raise translate_error(exc, self._table) from exc
