"""Registered clusters: how the dispatcher reaches each one (EKS, or a Secrets Manager secret).

A registration lives on the cluster registry item (``CLUSTERS`` / ``CLUSTER#<name>``) that every backup claim
upserts; the claim only sets ``type``, ``cluster`` and ``first_seen``, so it never clobbers a registration, and
unregistering removes only the registration's attributes (the cluster's backups stay listed).

The stored ``auth`` block names where credentials are (an EKS cluster, a secret id), never a credential itself.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from chalicelib.catalog import keys
from chalicelib.catalog.dynamo import decode_item, encode, error_code, iso, query_partition, translate_error
from chalicelib.catalog.errors import RecordNotFound

BATCH_GET_KEYS = 100  # BatchGetItem's limit per request
BATCH_GET_ATTEMPTS = 4

# "auth" is a DynamoDB reserved word: expressions name it through "#auth".
_REGISTRATION = ("#auth", "registered_at", "checked_at", "kubernetes_version", "details", "etcd")


@dataclass(frozen=True)
class ClusterRecord:
    name: str
    auth: dict[str, Any] | None = None  # None: seen in backups but never registered
    kubernetes_version: str | None = None
    registered_at: str | None = None
    checked_at: str | None = None
    first_seen: str | None = None
    details: dict[str, Any] = field(default_factory=dict)  # what the last check found (resource types, ...)
    # Self-managed: {"endpoints", "secret_id", "version"}; managed (EKS): {"unavailable": reason}; else None.
    etcd: dict[str, Any] | None = None

    @property
    def registered(self) -> bool:
        return self.auth is not None


class ClusterCatalog:
    def __init__(self, dynamodb_client: Any, table_name: str) -> None:
        self._client = dynamodb_client
        self._table = table_name

    def register(
        self,
        name: str,
        auth: dict[str, Any],
        *,
        kubernetes_version: str | None,
        now: datetime,
        details: dict[str, Any] | None = None,
        etcd: dict[str, Any] | None = None,
    ) -> ClusterRecord:
        """Create or replace a cluster's registration (idempotent)."""
        keys.check_part("cluster", name)
        stamp = iso(now)
        values: dict[str, Any] = {
            ":t": {"S": "cluster"},
            ":c": {"S": name},
            ":auth": encode(auth),
            ":now": {"S": stamp},
            ":details": encode(details or {}),
        }
        sets = [
            "#t = :t",
            "#c = :c",
            "#auth = :auth",
            "registered_at = if_not_exists(registered_at, :now)",
            "checked_at = :now",
            "first_seen = if_not_exists(first_seen, :now)",
            "details = :details",
        ]
        removes = []
        if kubernetes_version:
            values[":version"] = {"S": kubernetes_version}
            sets.append("kubernetes_version = :version")
        else:
            removes.append("kubernetes_version")
        if etcd:
            values[":etcd"] = encode(etcd)
            sets.append("etcd = :etcd")
        else:
            removes.append("etcd")
        expression = f"SET {', '.join(sets)}" + (f" REMOVE {', '.join(removes)}" if removes else "")
        response = self._call(
            "update_item",
            TableName=self._table,
            Key=keys.cluster_registry_key(name),
            UpdateExpression=expression,
            ExpressionAttributeNames={"#t": "type", "#c": "cluster", "#auth": "auth"},
            ExpressionAttributeValues=values,
            ReturnValues="ALL_NEW",
        )
        return _to_record(decode_item(response["Attributes"]))

    def get(self, name: str) -> ClusterRecord:
        """A registered cluster; RecordNotFound when it was never registered (or was unregistered)."""
        response = self._call(
            "get_item", TableName=self._table, Key=keys.cluster_registry_key(name), ConsistentRead=True
        )
        item = response.get("Item")
        record = _to_record(decode_item(item)) if item else None
        if record is None or not record.registered:
            raise RecordNotFound(f"cluster {name!r} is not registered (lifeboat clusters add {name} ...)")
        return record

    def get_many(self, names: Iterable[str]) -> dict[str, ClusterRecord]:
        """The registered clusters among ``names``, by name, in BatchGetItem requests of up to 100 keys (consistent
        reads, as ``get``). A name missing from the answer is unregistered, or a key DynamoDB left unprocessed after
        a few tries: the caller asks ``get`` for those."""
        wanted = sorted(set(names))
        found: dict[str, ClusterRecord] = {}
        for start in range(0, len(wanted), BATCH_GET_KEYS):
            chunk = [keys.cluster_registry_key(name) for name in wanted[start : start + BATCH_GET_KEYS]]
            request: dict[str, Any] = {self._table: {"Keys": chunk, "ConsistentRead": True}}
            for attempt in range(BATCH_GET_ATTEMPTS):
                response = self._call("batch_get_item", RequestItems=request)
                for item in response.get("Responses", {}).get(self._table, []):
                    record = _to_record(decode_item(item))
                    if record.registered:
                        found[record.name] = record
                request = response.get("UnprocessedKeys") or {}
                if not request:
                    break
                time.sleep(0.05 * 2**attempt)  # DynamoDB's advice for unprocessed keys: back off, then ask again
        return found

    def list(self) -> list[ClusterRecord]:
        """Every cluster the catalog knows: registered ones and ones only seen in backups, sorted by name."""
        records = [_to_record(item) for item in query_partition(self._call, self._table, keys.CLUSTERS_PK)]
        return sorted(records, key=lambda r: r.name)

    def unregister(self, name: str) -> None:
        from botocore.exceptions import ClientError

        try:
            self._client.update_item(
                TableName=self._table,
                Key=keys.cluster_registry_key(name),
                UpdateExpression=f"REMOVE {', '.join(_REGISTRATION)}",
                ConditionExpression="attribute_exists(#auth)",
                ExpressionAttributeNames={"#auth": "auth"},
            )
        except ClientError as exc:
            if error_code(exc) == "ConditionalCheckFailedException":
                raise RecordNotFound(f"cluster {name!r} is not registered") from exc
            raise translate_error(exc, self._table) from exc

    def _call(self, operation: str, **kwargs: Any) -> dict[str, Any]:
        from botocore.exceptions import ClientError

        try:
            return dict(getattr(self._client, operation)(**kwargs))
        except ClientError as exc:
            raise translate_error(exc, self._table) from exc


def _to_record(item: dict[str, Any]) -> ClusterRecord:
    return ClusterRecord(
        name=str(item.get("cluster", "")),
        auth=item.get("auth"),
        kubernetes_version=item.get("kubernetes_version"),
        registered_at=item.get("registered_at"),
        checked_at=item.get("checked_at"),
        first_seen=item.get("first_seen"),
        details=dict(item.get("details") or {}),
        etcd=item.get("etcd"),
    )
