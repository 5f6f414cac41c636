"""Restore jobs in DynamoDB: idempotent creation, worker claims with heartbeats, checkpointed per-object progress."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import datetime, timedelta
from typing import Any

from chalicelib.catalog.dynamo import (
    cancellation_codes,
    conditional_update,
    decode_item,
    encode,
    error_code,
    iso,
    translate_error,
)
from chalicelib.catalog.errors import CatalogError, ConditionFailed, RecordNotFound
from chalicelib.catalog.restore_records import (
    DONE_PREFIX,
    MAX_ERROR_TEXT,
    MAX_FAILURES,
    DoneMarkers,
    IdempotencyKeyReused,
    RestoreRecord,
    RestoreStateConflict,
    cap_failures,
    done_key,
    idempotency_key,
    new_item,
    record_from,
    record_key,
    restore_pk,
    state_gsi1pk,
    to_record,
)
from chalicelib.catalog.schema import GSI1_PK, TTL_ATTRIBUTE
from chalicelib.core.restore_jobs import JOB_STATES, TERMINAL, RestoreState

IDEMPOTENCY_TTL = timedelta(hours=24)
_CREATE_ATTEMPTS = 3
_NAMED = ("state", "total", "plan", "failure")


class RestoreCatalog:
    """Restore job records and idempotency records, in the single catalog table."""

    def __init__(self, dynamodb_client: Any, table_name: str) -> None:
        self._client = dynamodb_client
        self._table = table_name

    # -- the API's writes -----------------------------------------------------------------------------------------

    def create(
        self, record: RestoreRecord, *, idem_key: str, request_hash: str, now: datetime
    ) -> tuple[RestoreRecord, bool]:
        """Record a Pending job under an idempotency key, once.

        The same key with the same request hash returns (the first job, False); with another hash it raises
        IdempotencyKeyReused. Both items are written in one transaction, so a key never points at a missing job.
        """
        if record.state != RestoreState.PENDING:
            raise ValueError("a restore job is created Pending")
        expires = int((now + IDEMPOTENCY_TTL).timestamp())
        idem_item = {
            **idempotency_key(idem_key),
            "type": {"S": "idempotency"},
            "restore_id": {"S": record.restore_id},
            "request_hash": {"S": request_hash},
            "created_at": {"S": iso(now)},
            TTL_ATTRIBUTE: {"N": str(expires)},
        }
        items = [
            {
                "Put": {
                    "TableName": self._table,
                    "Item": idem_item,
                    # TTL deletes lazily: an expired record may still be there and must not block the key.
                    "ConditionExpression": "attribute_not_exists(pk) OR #exp < :now",
                    "ExpressionAttributeNames": {"#exp": TTL_ATTRIBUTE},
                    "ExpressionAttributeValues": {":now": {"N": str(int(now.timestamp()))}},
                }
            },
            {
                "Put": {
                    "TableName": self._table,
                    "Item": new_item(record),
                    "ConditionExpression": "attribute_not_exists(pk)",
                }
            },
        ]
        from botocore.exceptions import ClientError

        for _attempt in range(_CREATE_ATTEMPTS):
            try:
                self._client.transact_write_items(TransactItems=items)
                return record, True
            except ClientError as exc:
                if error_code(exc) != "TransactionCanceledException":
                    raise translate_error(exc, self._table) from exc
                codes = cancellation_codes(exc) + ["None", "None"]
                if codes[1] == "ConditionalCheckFailed":
                    raise CatalogError(f"restore id {record.restore_id} already exists") from exc
                if codes[0] != "ConditionalCheckFailed" and "TransactionConflict" not in codes:
                    raise translate_error(exc, self._table) from exc
                existing = self._get_raw(idempotency_key(idem_key))
                if existing is not None and int(existing.get(TTL_ATTRIBUTE, 0)) >= int(now.timestamp()):
                    if existing["request_hash"] != request_hash:
                        raise IdempotencyKeyReused("idempotency key reused with a different request") from exc
                    return self.get(str(existing["restore_id"])), False
                # A concurrent request with the same key is mid-write, or the old record just expired: try again.
        raise CatalogError(f"restore {record.restore_id}: creation kept conflicting with concurrent requests")

    def mark_enqueued(self, restore_id: str, now: datetime) -> RestoreRecord:
        """Note that the job's queue message was sent (a retried request re-sends it only if this is missing)."""
        return self._update(
            restore_id,
            "SET enqueued_at = if_not_exists(enqueued_at, :now), updated_at = :now",
            "attribute_exists(pk)",
            {":now": {"S": iso(now)}},
            wanted="mark enqueued",
        )

    # -- the worker's writes --------------------------------------------------------------------------------------

    def claim(
        self, restore_id: str, worker: str, now: datetime, *, stale_after: timedelta
    ) -> tuple[RestoreRecord, bool]:
        """Pending -> Running, or take over a Running job whose heartbeat is older than ``stale_after``.

        Returns (record, True) when this worker now owns the job, (current record, False) otherwise: a live
        worker's job or a finished one is left alone.
        """
        stamp = iso(now)
        values = {
            ":running": {"S": RestoreState.RUNNING.value},
            ":pending": {"S": RestoreState.PENDING.value},
            ":stale": {"S": iso(now - stale_after)},
            ":now": {"S": stamp},
            ":worker": {"S": worker},
            ":gsi": {"S": state_gsi1pk(RestoreState.RUNNING)},
            ":one": {"N": "1"},
        }
        expression = (
            "SET #state = :running, worker = :worker, heartbeat_at = :now, updated_at = :now, "
            f"started_at = if_not_exists(started_at, :now), {GSI1_PK} = :gsi ADD attempts :one, version :one"
        )
        condition = "#state = :pending OR (#state = :running AND heartbeat_at < :stale)"
        try:
            return self._update(restore_id, expression, condition, values, wanted="claim"), True
        except RestoreStateConflict:
            return self.get(restore_id), False

    def heartbeat(self, restore_id: str, worker: str, now: datetime, *, total: int | None = None) -> RestoreRecord:
        """Prove this worker is alive (and still the owner); RestoreStateConflict if it lost the job."""
        values: dict[str, Any] = {":now": {"S": iso(now)}}
        expression = "SET heartbeat_at = :now, updated_at = :now"
        if total is not None:
            expression += ", #total = :total"
            values[":total"] = {"N": str(total)}
        return self._owned_update(restore_id, worker, expression, values, wanted="heartbeat")

    def record_results(
        self,
        restore_id: str,
        worker: str,
        *,
        seq: int,
        keys: Iterable[str],
        outcomes: Mapping[str, int],
        failures: list[dict[str, Any]],
        stored_failures: int,
        now: datetime,
        total: int | None = None,
    ) -> int:
        """Checkpoint one batch -- its done markers, counters and failures -- atomically, if this worker owns the job.

        Only the owner appends, so ``stored_failures`` (how many the record already holds) is exact and the record
        keeps the first MAX_FAILURES; ``outcomes["failed"]`` still counts them all. Returns how many were stored.
        """
        kept = cap_failures(failures, MAX_FAILURES - stored_failures)
        names = {"#state": "state"}
        values: dict[str, Any] = {
            ":now": {"S": iso(now)},
            ":owner": {"S": worker},
            ":running": {"S": RestoreState.RUNNING.value},
            ":zero": {"N": "0"},
            ":one": {"N": "1"},
            ":done": {"N": str(sum(outcomes.values()))},
        }
        sets = ["updated_at = :now", "heartbeat_at = :now"]
        for i, (outcome, count) in enumerate(sorted(outcomes.items())):
            names[f"#o{i}"] = outcome
            values[f":n{i}"] = {"N": str(count)}
            sets.append(f"counts.#o{i} = if_not_exists(counts.#o{i}, :zero) + :n{i}")
        if kept:
            values[":failures"] = encode(kept)
            values[":empty"] = {"L": []}
            sets.append("failures = list_append(if_not_exists(failures, :empty), :failures)")
        if total is not None:
            names["#total"] = "total"
            values[":total"] = {"N": str(total)}
            sets.append("#total = :total")
        update = {
            "TableName": self._table,
            "Key": record_key(restore_id),
            "UpdateExpression": f"SET {', '.join(sets)} ADD done :done, version :one",
            "ConditionExpression": "#state = :running AND worker = :owner",
            "ExpressionAttributeNames": names,
            "ExpressionAttributeValues": values,
        }
        marker = {
            **done_key(restore_id, seq),
            "type": {"S": "restore-done"},
            "keys": {"L": [{"S": k} for k in keys]},
            "created_at": {"S": iso(now)},
        }
        items = [
            {"Put": {"TableName": self._table, "Item": marker, "ConditionExpression": "attribute_not_exists(pk)"}},
            {"Update": update},
        ]
        self._transact(restore_id, items, wanted=f"record results (chunk {seq})")
        return len(kept)

    def release(self, restore_id: str, worker: str, now: datetime, *, failed_attempt: bool = False) -> RestoreRecord:
        """Give a Running job up without finishing it, so the next delivery may claim it at once.

        ``failed_attempt`` counts the release in ``retries`` (a transient failure), unlike a planned continuation.
        """
        # An empty heartbeat sorts before every timestamp, so the next claim sees it as stale.
        expression = "SET heartbeat_at = :empty, updated_at = :now"
        values: dict[str, Any] = {":empty": {"S": ""}, ":now": {"S": iso(now)}}
        if failed_attempt:
            expression += " ADD retries :one"
            values[":one"] = {"N": "1"}
        return self._owned_update(restore_id, worker, expression, values, wanted="release")

    def finish(
        self,
        restore_id: str,
        worker: str,
        state: RestoreState,
        now: datetime,
        *,
        failure: str | None = None,
        plan: dict[str, Any] | None = None,
        warnings: list[str] | None = None,
    ) -> RestoreRecord:
        """Running -> a terminal state, by the worker that owns the job."""
        state = RestoreState(state)
        if state not in TERMINAL:
            raise ValueError(f"{state} is not a terminal state")
        values: dict[str, Any] = {
            ":state": {"S": state.value},
            ":now": {"S": iso(now)},
            ":gsi": {"S": state_gsi1pk(state)},
        }
        expression = "SET #state = :state, finished_at = :now, updated_at = :now, " + f"{GSI1_PK} = :gsi"
        if failure is not None:
            expression += ", #failure = :failure"
            values[":failure"] = {"S": failure[:2048]}
        if plan is not None:
            expression += ", #plan = :plan"
            values[":plan"] = encode(plan)
        if warnings:
            expression += ", warnings = :warnings"
            values[":warnings"] = encode([w[: MAX_ERROR_TEXT * 2] for w in warnings])
        return self._owned_update(restore_id, worker, expression, values, wanted=f"move to {state}")

    def mark_event_sent(self, restore_id: str, now: datetime) -> None:
        self._update(
            restore_id,
            "SET event_sent_at = :now, updated_at = :now",
            "attribute_exists(pk)",
            {":now": {"S": iso(now)}},
            wanted="mark event sent",
        )

    # -- reads ----------------------------------------------------------------------------------------------------

    def get(self, restore_id: str) -> RestoreRecord:
        item = self._get_raw(record_key(restore_id), decode=False)
        if item is None:
            raise RecordNotFound(f"restore {restore_id} not found")
        return to_record(item)

    def recent(self, *, limit: int = 50) -> list[RestoreRecord]:
        """Recent restore jobs of every state, newest first: one query per state on the state index."""
        from chalicelib.catalog.schema import GSI1

        records: list[RestoreRecord] = []
        for state in JOB_STATES:
            query: dict[str, Any] = {
                "TableName": self._table,
                "IndexName": GSI1,
                "KeyConditionExpression": f"{GSI1_PK} = :pk",
                "ExpressionAttributeValues": {":pk": {"S": state_gsi1pk(state)}},
            }
            while True:
                response = self._call("query", **query)
                records.extend(to_record(item) for item in response.get("Items", []))
                if "LastEvaluatedKey" not in response:
                    break
                query["ExclusiveStartKey"] = response["LastEvaluatedKey"]
        records.sort(key=lambda r: (r.created_at, r.restore_id), reverse=True)
        return records[:limit]

    def done_markers(self, restore_id: str) -> DoneMarkers:
        """Every object key a worker of this restore already finished, and the next chunk number to write."""
        query: dict[str, Any] = {
            "TableName": self._table,
            "KeyConditionExpression": "pk = :pk AND begins_with(sk, :prefix)",
            "ExpressionAttributeValues": {":pk": {"S": restore_pk(restore_id)}, ":prefix": {"S": DONE_PREFIX}},
            "ConsistentRead": True,
        }
        done: set[str] = set()
        next_seq = 0
        while True:
            page = self._call("query", **query)
            for raw in page.get("Items", []):
                item = decode_item(raw)
                done.update(str(k) for k in item.get("keys", []))
                next_seq = max(next_seq, int(str(item["sk"])[len(DONE_PREFIX) :]) + 1)
            if "LastEvaluatedKey" not in page:
                return DoneMarkers(frozenset(done), next_seq)
            query["ExclusiveStartKey"] = page["LastEvaluatedKey"]

    # -- plumbing -------------------------------------------------------------------------------------------------

    def _owned_update(
        self, restore_id: str, worker: str, expression: str, values: dict[str, Any], *, wanted: str
    ) -> RestoreRecord:
        values = {**values, ":owner": {"S": worker}, ":running_now": {"S": RestoreState.RUNNING.value}}
        condition = "#state = :running_now AND worker = :owner"
        return self._update(restore_id, expression, condition, values, wanted=wanted)

    def _update(
        self, restore_id: str, expression: str, condition: str, values: dict[str, Any], *, wanted: str
    ) -> RestoreRecord:
        # Placeholders for every attribute that is (or may become) a DynamoDB reserved word.
        names = {f"#{a}": a for a in _NAMED if f"#{a}" in expression or f"#{a}" in condition}
        if "version" not in expression:
            expression = expression.replace("SET ", "SET version = version + :inc, ", 1)
            values = {**values, ":inc": {"N": "1"}}
        request: dict[str, Any] = {
            "Key": record_key(restore_id),
            "UpdateExpression": expression,
            "ConditionExpression": f"attribute_exists(pk) AND ({condition})",
            "ExpressionAttributeValues": values,
        }
        if names:
            request["ExpressionAttributeNames"] = names
        try:
            new = conditional_update(self._client, self._table, **request)
        except ConditionFailed as exc:
            if not exc.old:
                raise RecordNotFound(f"restore {restore_id} not found") from exc
            raise RestoreStateConflict(restore_id, exc.old.get("state"), wanted) from exc
        return record_from(new)

    def _transact(self, restore_id: str, items: list[dict[str, Any]], *, wanted: str) -> None:
        from botocore.exceptions import ClientError

        for _attempt in range(_CREATE_ATTEMPTS):
            try:
                self._client.transact_write_items(TransactItems=items)
                return
            except ClientError as exc:
                if error_code(exc) != "TransactionCanceledException":
                    raise translate_error(exc, self._table) from exc
                codes = cancellation_codes(exc)
                if "ConditionalCheckFailed" in codes:
                    # The chunk exists or the record is not ours: another worker took the job over.
                    current = self._get_raw(record_key(restore_id))
                    state = str(current["state"]) if current else None
                    raise RestoreStateConflict(restore_id, state, wanted) from exc
                if "TransactionConflict" not in codes:
                    raise translate_error(exc, self._table) from exc
        raise CatalogError(f"restore {restore_id}: {wanted} kept conflicting with concurrent transactions")

    def _get_raw(self, key: dict[str, Any], *, decode: bool = True) -> dict[str, Any] | None:
        response = self._call("get_item", TableName=self._table, Key=key, ConsistentRead=True)
        item = response.get("Item")
        if not item:
            return None
        return decode_item(item) if decode else dict(item)

    def _call(self, operation: str, **kwargs: Any) -> dict[str, Any]:
        from botocore.exceptions import ClientError

        try:
            return dict(getattr(self._client, operation)(**kwargs))
        except ClientError as exc:
            raise translate_error(exc, self._table) from exc
