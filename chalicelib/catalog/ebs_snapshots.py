"""EBS snapshots of backups and their region copies: one item each, ``SNAPSHOT#<backup id>#<snapshot id>``, whose
state goes pending -> completed | failed (conditional writes, never backwards), like blob replication's. A pending
entry is in ``gsi1`` under ``EBSSNAPSHOTS#pending`` (removed when it settles), so the poller finds the ones no event
settled."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from datetime import datetime
from typing import Any

from chalicelib.catalog import keys
from chalicelib.catalog.dynamo import conditional_update, decode_item, encode, iso, translate_error
from chalicelib.catalog.errors import AlreadyExists, ConditionFailed

SK_PREFIX = "SNAPSHOT#"
PENDING, COMPLETED, FAILED = "pending", "completed", "failed"
SNAPSHOT, COPY = "snapshot", "copy"
MAX_ERROR_TEXT = 1024
PENDING_GSI1PK = "EBSSNAPSHOTS#pending"


@dataclass(frozen=True)
class EbsSnapshotEntry:
    cluster: str
    backup_id: str
    snapshot_id: str
    region: str
    kind: str  # SNAPSHOT (of a claim's volume) or COPY (into another region)
    namespace: str
    pvc: str
    state: str = PENDING
    source_snapshot_id: str = ""  # a copy's source
    source_region: str = ""
    error: str = ""
    created_at: str = ""
    updated_at: str = ""


def _key(cluster: str, backup_id: str, snapshot_id: str) -> dict[str, dict[str, str]]:
    sk = f"{SK_PREFIX}{keys.check_part('backup id', backup_id)}#{keys.check_part('snapshot id', snapshot_id)}"
    return {"pk": {"S": keys.cluster_pk(cluster)}, "sk": {"S": sk}}


class EbsSnapshotCatalog:
    def __init__(self, dynamodb_client: Any, table_name: str) -> None:
        self._client = dynamodb_client
        self._table = table_name

    def add(self, entry: EbsSnapshotEntry, *, now: datetime) -> EbsSnapshotEntry:
        """Record a snapshot or copy just started; one recorded already (a redelivered job) is returned as stored."""
        from botocore.exceptions import ClientError

        stamp = iso(now)
        values = {**asdict(entry), "created_at": entry.created_at or stamp, "updated_at": stamp}
        item = {k: encode(v) for k, v in values.items()} | _key(entry.cluster, entry.backup_id, entry.snapshot_id)
        item["type"] = {"S": "ebs_snapshot"}
        if entry.state == PENDING:
            item["gsi1pk"], item["gsi1sk"] = {"S": PENDING_GSI1PK}, {"S": f"{values['created_at']}#{entry.snapshot_id}"}
        try:
            self._client.put_item(TableName=self._table, Item=item, ConditionExpression="attribute_not_exists(pk)")
        except ClientError as exc:
            if getattr(exc, "response", {}).get("Error", {}).get("Code") != "ConditionalCheckFailedException":
                raise translate_error(exc, self._table) from exc
            stored = self.get(entry.cluster, entry.backup_id, entry.snapshot_id)
            if stored is None:  # pragma: no cover - deleted between the two calls
                raise AlreadyExists(f"snapshot {entry.snapshot_id} of backup {entry.backup_id}") from exc
            return stored
        return EbsSnapshotEntry(**values)

    def get(self, cluster: str, backup_id: str, snapshot_id: str) -> EbsSnapshotEntry | None:
        response = self._call("get_item", Key=_key(cluster, backup_id, snapshot_id), ConsistentRead=True)
        return _entry(response["Item"]) if "Item" in response else None

    def of_backup(self, cluster: str, backup_id: str) -> list[EbsSnapshotEntry]:
        """Every snapshot and copy of one backup."""
        query: dict[str, Any] = {
            "KeyConditionExpression": "pk = :pk AND begins_with(sk, :sk)",
            "ExpressionAttributeValues": {
                ":pk": {"S": keys.cluster_pk(cluster)},
                ":sk": {"S": f"{SK_PREFIX}{keys.check_part('backup id', backup_id)}#"},
            },
        }
        out: list[EbsSnapshotEntry] = []
        while True:
            page = self._call("query", **query)
            out.extend(_entry(item) for item in page.get("Items", []))
            if "LastEvaluatedKey" not in page:
                return out
            query["ExclusiveStartKey"] = page["LastEvaluatedKey"]

    def pending(self, limit: int = 200) -> list[EbsSnapshotEntry]:
        """Entries still pending, oldest first (at most ``limit``)."""
        page = self._call(
            "query",
            IndexName="gsi1",
            KeyConditionExpression="gsi1pk = :pk",
            ExpressionAttributeValues={":pk": {"S": PENDING_GSI1PK}},
            Limit=limit,
        )
        return [_entry(item) for item in page.get("Items", [])]

    def settle(
        self, cluster: str, backup_id: str, snapshot_id: str, state: str, *, now: datetime, error: str = ""
    ) -> EbsSnapshotEntry | None:
        """Move a pending entry to completed or failed; a settled one is returned unchanged (the first word stays:
        an event and a poll may both report it), an unknown one is None."""
        return self.settle_once(cluster, backup_id, snapshot_id, state, now=now, error=error)[0]

    def settle_once(
        self, cluster: str, backup_id: str, snapshot_id: str, state: str, *, now: datetime, error: str = ""
    ) -> tuple[EbsSnapshotEntry | None, bool]:
        """``settle``, and whether this call is the one that settled the entry (what announces it, once)."""
        if state not in (COMPLETED, FAILED):
            raise ValueError(f"a snapshot settles as {COMPLETED} or {FAILED}, not {state!r}")
        try:
            data = conditional_update(
                self._client,
                self._table,
                Key=_key(cluster, backup_id, snapshot_id),
                UpdateExpression="SET #state = :state, #updated = :now, #error = :error REMOVE gsi1pk, gsi1sk",
                ConditionExpression="attribute_exists(pk) AND #state = :pending",
                ExpressionAttributeNames={"#state": "state", "#updated": "updated_at", "#error": "error"},
                ExpressionAttributeValues={
                    ":state": {"S": state},
                    ":now": {"S": iso(now)},
                    ":error": {"S": error[:MAX_ERROR_TEXT]},
                    ":pending": {"S": PENDING},
                },
            )
        except ConditionFailed as exc:
            return (_entry_plain(exc.old) if exc.old else None), False
        return _entry_plain(data), True

    def _call(self, method: str, **params: Any) -> dict[str, Any]:
        from botocore.exceptions import ClientError

        try:
            return dict(getattr(self._client, method)(TableName=self._table, **params))
        except ClientError as exc:
            raise translate_error(exc, self._table) from exc


_FIELDS = frozenset(EbsSnapshotEntry.__dataclass_fields__)


def _entry(item: dict[str, Any]) -> EbsSnapshotEntry:
    return _entry_plain(decode_item(item))


def _entry_plain(data: dict[str, Any]) -> EbsSnapshotEntry:
    return EbsSnapshotEntry(**{k: str(v) for k, v in data.items() if k in _FIELDS})
