"""Sharded backups in DynamoDB: the plan, one item per shard with a forward-only state, the remaining-shards counter.

Items live in the cluster's partition next to the backup record (``docs/catalog.md``):

- plan: ``sk = SHARDPLAN#<backup>``, ``state`` Planning -> Planned, ``plan`` (``core.shards.ShardPlan``);
- shard: ``sk = SHARD#<backup>#<first namespace of the item | _cluster>``, ``namespaces`` (the work item's),
  ``state`` Pending -> Running -> Done | Failed (Running -> Pending when it checkpoints or an attempt fails),
  ``run_id``, ``heartbeat_at``, ``checkpoint``, ``result``;
- the backup record carries ``shards_total``, ``shards_remaining`` (work items not counted Done yet) and
  ``shards_done`` (the indexes of those counted, so each is counted once).
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import Any

from chalicelib.catalog import keys
from chalicelib.catalog.dynamo import (
    UpdateBuilder,
    cancellation_codes,
    conditional_update,
    decode_item,
    encode,
    error_code,
    iso,
)
from chalicelib.catalog.dynamo import translate_error as _translate
from chalicelib.catalog.errors import CatalogError, ConditionFailed, ShardConflict, StaleState
from chalicelib.core.models import BackupState
from chalicelib.core.shards import ShardRecord, ShardResult, ShardState, group_namespaces, scope_segment

PLANNING = "Planning"
PLANNED = "Planned"
_BATCH = 25  # BatchWriteItem's limit
_BATCH_ROUNDS = 8  # unprocessed items are retried this many times before giving up


class ShardCatalog:
    """The DynamoDB side of sharded backups; every state change is a conditional write."""

    def __init__(self, dynamodb_client: Any, table_name: str) -> None:
        self._client = dynamodb_client
        self._table = table_name

    # -- the plan -------------------------------------------------------------------------------------------------

    def create_plan(
        self, cluster: str, backup_id: str, plan: dict[str, Any], *, now: datetime
    ) -> tuple[dict[str, Any], bool]:
        """Store the plan once: returns (stored item, True), or (the existing item, False) if one was there."""
        item = {
            **keys.shard_plan_key(cluster, backup_id),
            "type": {"S": "shard-plan"},
            "state": {"S": PLANNING},
            "plan": encode(plan),
            "created_at": {"S": iso(now)},
        }
        from botocore.exceptions import ClientError

        try:
            self._client.put_item(TableName=self._table, Item=item, ConditionExpression="attribute_not_exists(pk)")
        except ClientError as exc:
            if error_code(exc) != "ConditionalCheckFailedException":
                raise _translate(exc, self._table) from exc
            existing = self.get_plan(cluster, backup_id)
            if existing is None:
                raise CatalogError(f"backup {cluster}/{backup_id}: the plan was refused but is missing") from exc
            return existing, False
        return decode_item(item), True

    def get_plan(self, cluster: str, backup_id: str) -> dict[str, Any] | None:
        """The plan item (``state``, ``plan``), or None when the backup was not sharded."""
        return self._get(keys.shard_plan_key(cluster, backup_id))

    def add_shards(
        self,
        cluster: str,
        backup_id: str,
        namespaces: Iterable[str],
        *,
        seed: dict[str, Any],
        now: datetime,
        fresh: bool,
        per_item: int = 1,
    ) -> None:
        """Pending items for every work item (``per_item`` namespaces, named by the first) and for the
        cluster-scoped objects (which start from ``seed``).

        ``fresh`` (this caller created the plan, so no shard can exist or run yet) writes in batches; otherwise
        each put is conditional, so a shard that already exists is left as it is.
        """
        items = [
            self._new_shard(cluster, backup_id, group[0], now, index, group)
            for index, group in enumerate(group_namespaces(namespaces, per_item))
        ]
        cluster_item = self._new_shard(cluster, backup_id, "", now, None, ())
        cluster_item["checkpoint"] = encode(seed)
        items.append(cluster_item)
        if fresh:
            self._batch_put(items)
            return
        from botocore.exceptions import ClientError

        for item in items:
            try:
                self._client.put_item(TableName=self._table, Item=item, ConditionExpression="attribute_not_exists(pk)")
            except ClientError as exc:
                if error_code(exc) != "ConditionalCheckFailedException":
                    raise _translate(exc, self._table) from exc

    def seal(self, cluster: str, backup_id: str, *, total: int, now: datetime) -> bool:
        """Planning -> Planned, and the backup record's counter set to ``total`` (False: it was sealed before)."""
        plan = UpdateBuilder()
        plan.set("state", PLANNED)
        plan.set("updated_at", iso(now))
        record = UpdateBuilder()
        record.set("shards_total", total)
        record.set("shards_remaining", total)
        record.set("updated_at", iso(now))
        record.add_version()
        items = [
            self._update_item(keys.shard_plan_key(cluster, backup_id), plan, f"#state = {plan.value(PLANNING)}"),
            self._update_item(
                keys.backup_key(cluster, backup_id), record, f"#state = {record.value(BackupState.RUNNING)}"
            ),
        ]
        codes = self._transact(items)
        if not codes:
            return True
        if codes[0] == "ConditionalCheckFailed":
            return False
        if codes[1] == "ConditionalCheckFailed":
            raise StaleState(cluster, backup_id, self._backup_state(cluster, backup_id), BackupState.RUNNING)
        raise CatalogError(f"backup {cluster}/{backup_id}: sealing the shard plan failed: {codes}")

    # -- shards ---------------------------------------------------------------------------------------------------

    def claim(
        self, cluster: str, backup_id: str, namespace: str, run_id: str, *, now: datetime, stale_before: datetime
    ) -> tuple[ShardRecord, bool]:
        """Pending -> Running (or a Running shard whose heartbeat is older than ``stale_before``): (record, True);
        otherwise (the current record, False)."""
        update = UpdateBuilder()
        stamp = iso(now)
        update.set("state", ShardState.RUNNING)
        update.set("run_id", run_id)
        update.set("heartbeat_at", stamp)
        update.set("updated_at", stamp)
        update.increment("runs", 1)
        pending, running = update.value(ShardState.PENDING), update.value(ShardState.RUNNING)
        condition = (
            f"attribute_exists(pk) AND (#state = {pending} OR "
            f"(#state = {running} AND {update.name('heartbeat_at')} < {update.value(iso(stale_before))}))"
        )
        key = keys.shard_key(cluster, backup_id, scope_segment(namespace))
        item, ok = self._conditional_update(key, update, condition)
        if item is None:
            raise ShardConflict(f"backup {cluster}/{backup_id} has no shard {namespace or '(cluster-scoped)'}")
        return to_shard(item), ok

    def heartbeat(self, cluster: str, backup_id: str, namespace: str, run_id: str, *, now: datetime) -> None:
        update = UpdateBuilder()
        update.set("heartbeat_at", iso(now))
        self._owned_update(cluster, backup_id, namespace, run_id, update)

    def release(
        self,
        cluster: str,
        backup_id: str,
        namespace: str,
        run_id: str,
        *,
        now: datetime,
        checkpoint: dict[str, Any] | None = None,
        error: str | None = None,
    ) -> ShardRecord:
        """Running -> Pending: it continues from ``checkpoint``, or is retried after the failure ``error``."""
        update = UpdateBuilder()
        update.set("state", ShardState.PENDING)
        update.set("updated_at", iso(now))
        update.remove("run_id")
        update.remove("heartbeat_at")
        if checkpoint is not None:
            update.set("checkpoint", checkpoint)
        if error is not None:
            update.set("error", error[:2048])
            update.increment("failures", 1)
        return to_shard(self._owned_update(cluster, backup_id, namespace, run_id, update))

    def fail(self, cluster: str, backup_id: str, namespace: str, run_id: str, *, now: datetime, error: str) -> None:
        """Running -> Failed: out of attempts."""
        update = UpdateBuilder()
        update.set("state", ShardState.FAILED)
        update.set("updated_at", iso(now))
        update.set("error", error[:2048])
        update.increment("failures", 1)
        self._owned_update(cluster, backup_id, namespace, run_id, update)

    def complete(
        self, cluster: str, backup_id: str, namespace: str, run_id: str, result: ShardResult, *, now: datetime
    ) -> None:
        """Running -> Done with ``result`` (ShardConflict if the shard is not ours any more)."""
        update = UpdateBuilder()
        update.set("state", ShardState.DONE)
        update.set("updated_at", iso(now))
        update.set("result", result.to_dict())
        update.remove("heartbeat_at")
        self._owned_update(cluster, backup_id, namespace, run_id, update)

    def count_done(self, cluster: str, backup_id: str, index: int, *, now: datetime) -> int | None:
        """Count a Done namespace shard (``index`` from its record) on the backup record, once: the counter goes
        down by one and the index joins ``shards_done``, in one conditional write. Returns the counter after it, or
        None when the shard had been counted before; StaleState when the backup is no longer Running.

        One item, no transaction: shards finishing together serialize on the record instead of cancelling each
        other's transactions, and a shard that died between Done and this write is counted by its redelivery.
        """
        from botocore.exceptions import ClientError

        stamp = {"S": iso(now)}
        try:
            response = self._client.update_item(
                TableName=self._table,
                Key=keys.backup_key(cluster, backup_id),
                UpdateExpression=(
                    "SET #remaining = #remaining - :one, #updated = :now, #beat = :now, #version = #version + :one "
                    "ADD #done :index_set"
                ),
                ConditionExpression="#state = :running AND NOT contains(#done, :index)",
                ExpressionAttributeNames={
                    "#remaining": "shards_remaining",
                    "#done": "shards_done",
                    "#state": "state",
                    "#updated": "updated_at",
                    "#beat": "heartbeat_at",
                    "#version": "version",
                },
                ExpressionAttributeValues={
                    ":one": {"N": "1"},
                    ":now": stamp,
                    ":running": {"S": str(BackupState.RUNNING)},
                    ":index": {"N": str(index)},
                    ":index_set": {"NS": [str(index)]},
                },
                ReturnValues="UPDATED_NEW",
                ReturnValuesOnConditionCheckFailure="ALL_OLD",
            )
        except ClientError as exc:
            if error_code(exc) != "ConditionalCheckFailedException":
                raise _translate(exc, self._table) from exc
            old = decode_item(exc.response["Item"]) if exc.response.get("Item") else {}
            if old.get("state") != BackupState.RUNNING:
                raise StaleState(cluster, backup_id, old.get("state"), BackupState.RUNNING) from exc
            return None
        return int(decode_item(response["Attributes"])["shards_remaining"])

    def forget_done(self, cluster: str, backup_id: str, *, now: datetime) -> None:
        """Drop the set of counted shards from a finished backup's record (it only mattered while running)."""
        update = UpdateBuilder()
        update.remove("shards_done")
        update.set("updated_at", iso(now))
        update.add_version()
        self._conditional_update(keys.backup_key(cluster, backup_id), update, "attribute_exists(pk)")

    def get(self, cluster: str, backup_id: str, namespace: str) -> ShardRecord | None:
        item = self._get(keys.shard_key(cluster, backup_id, scope_segment(namespace)))
        return to_shard(item) if item else None

    def list_shards(self, cluster: str, backup_id: str) -> list[ShardRecord]:
        """Every shard of a backup (consistent read)."""
        query: dict[str, Any] = {
            "TableName": self._table,
            "KeyConditionExpression": "pk = :pk AND begins_with(sk, :prefix)",
            "ExpressionAttributeValues": {
                ":pk": {"S": keys.cluster_pk(cluster)},
                ":prefix": {"S": keys.shard_sk_prefix(backup_id)},
            },
            "ConsistentRead": True,
        }
        shards: list[ShardRecord] = []
        while True:
            page = self._call("query", **query)
            shards.extend(to_shard(decode_item(item)) for item in page.get("Items", []))
            if "LastEvaluatedKey" not in page:
                return shards
            query["ExclusiveStartKey"] = page["LastEvaluatedKey"]

    def remaining(self, cluster: str, backup_id: str) -> int | None:
        """Work items of the backup not Done yet (None before the plan is sealed)."""
        item = self._get(keys.backup_key(cluster, backup_id))
        if item is None or "shards_remaining" not in item:
            return None
        return int(item["shards_remaining"])

    # -- plumbing -------------------------------------------------------------------------------------------------

    @staticmethod
    def _new_shard(
        cluster: str, backup_id: str, namespace: str, now: datetime, index: int | None, namespaces: tuple[str, ...]
    ) -> dict[str, Any]:
        item = {
            **keys.shard_key(cluster, backup_id, scope_segment(namespace)),
            "type": {"S": "shard"},
            "backup_id": {"S": backup_id},
            "namespace": {"S": namespace},
            "namespaces": {"L": [{"S": ns} for ns in namespaces]},
            "state": {"S": str(ShardState.PENDING)},
            "runs": {"N": "0"},
            "failures": {"N": "0"},
            "created_at": {"S": iso(now)},
            "updated_at": {"S": iso(now)},
        }
        if index is not None:
            item["index"] = {"N": str(index)}  # its member of the backup record's shards_done set
        return item

    def _batch_put(self, items: list[dict[str, Any]]) -> None:
        for start in range(0, len(items), _BATCH):
            requests = {self._table: [{"PutRequest": {"Item": item}} for item in items[start : start + _BATCH]]}
            for _round in range(_BATCH_ROUNDS):
                response = self._call("batch_write_item", RequestItems=requests)
                requests = response.get("UnprocessedItems") or {}
                if not requests:
                    break
            else:
                raise CatalogError(f"DynamoDB kept {len(requests[self._table])} shard items unprocessed")

    def _update_item(self, key: dict[str, Any], update: UpdateBuilder, condition: str) -> dict[str, Any]:
        update.names.setdefault("#state", "state")
        return {
            "Update": {
                "TableName": self._table,
                "Key": key,
                "UpdateExpression": update.expression(),
                "ConditionExpression": condition,
                "ExpressionAttributeNames": update.names,
                "ExpressionAttributeValues": update.values,
            }
        }

    def _transact(self, items: list[dict[str, Any]]) -> list[str]:
        """[] when the transaction went through; the per-item reason codes when a condition cancelled it."""
        from botocore.exceptions import ClientError

        try:
            self._client.transact_write_items(TransactItems=items)
            return []
        except ClientError as exc:
            codes = cancellation_codes(exc)
            if error_code(exc) != "TransactionCanceledException" or "ConditionalCheckFailed" not in codes:
                raise _translate(exc, self._table) from exc
            return codes + ["None"] * (len(items) - len(codes))

    def _owned_update(
        self, cluster: str, backup_id: str, namespace: str, run_id: str, update: UpdateBuilder
    ) -> dict[str, Any]:
        condition = f"#state = {update.value(ShardState.RUNNING)} AND {update.name('run_id')} = {update.value(run_id)}"
        key = keys.shard_key(cluster, backup_id, scope_segment(namespace))
        item, ok = self._conditional_update(key, update, condition)
        if not ok:
            state = (item or {}).get("state")
            raise ShardConflict(
                f"shard {namespace or '(cluster-scoped)'} of {cluster}/{backup_id} is not ours any more ({state})"
            )
        return item or {}

    def _conditional_update(
        self, key: dict[str, Any], update: UpdateBuilder, condition: str
    ) -> tuple[dict[str, Any] | None, bool]:
        if "#state" in condition:
            update.names.setdefault("#state", "state")
        try:
            new = conditional_update(
                self._client,
                self._table,
                Key=key,
                UpdateExpression=update.expression(),
                ConditionExpression=condition,
                ExpressionAttributeNames=update.names,
                ExpressionAttributeValues=update.values,
            )
        except ConditionFailed as exc:
            return exc.old or None, False
        return new, True

    def _backup_state(self, cluster: str, backup_id: str) -> str | None:
        item = self._get(keys.backup_key(cluster, backup_id))
        return str(item["state"]) if item else None

    def _get(self, key: dict[str, Any]) -> dict[str, Any] | None:
        response = self._call("get_item", TableName=self._table, Key=key, ConsistentRead=True)
        item = response.get("Item")
        return decode_item(item) if item else None

    def _call(self, operation: str, **kwargs: Any) -> dict[str, Any]:
        from botocore.exceptions import ClientError

        try:
            return dict(getattr(self._client, operation)(**kwargs))
        except ClientError as exc:
            raise _translate(exc, self._table) from exc


def to_shard(item: dict[str, Any]) -> ShardRecord:
    result = item.get("result")
    namespace = str(item.get("namespace", ""))
    return ShardRecord(
        namespace=namespace,
        state=ShardState(item["state"]),
        index=int(item["index"]) if "index" in item else None,
        run_id=item.get("run_id"),
        runs=int(item.get("runs", 0)),
        failures=int(item.get("failures", 0)),
        heartbeat_at=item.get("heartbeat_at"),
        checkpoint=item.get("checkpoint"),
        result=ShardResult.from_dict(result) if result else None,
        error=item.get("error"),
        namespaces=tuple(item.get("namespaces") or ((namespace,) if namespace else ())),
    )
