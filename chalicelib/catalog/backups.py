"""Backup records in DynamoDB: idempotent job claims, forward-only state transitions, listings."""

from __future__ import annotations

import builtins
import dataclasses
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime
from typing import Any

from chalicelib.catalog import keys
from chalicelib.catalog.dynamo import (
    UpdateBuilder,
    cancellation_codes,
    conditional_update,
    decode_item,
    decode_token,
    encode,
    encode_token,
    error_code,
    iso,
    translate_error,
)
from chalicelib.catalog.errors import (
    AlreadyExists,
    CatalogError,
    ConditionFailed,
    RecordNotFound,
    StaleState,
    WorkerSuperseded,
)
from chalicelib.catalog.schema import GSI1, GSI1_PK, GSI1_SK
from chalicelib.core.models import TERMINAL, BackupRecord, BackupState, ReplicaState, allowed_sources

ITEM_TYPE = "backup"
TRANSITION_FIELDS = frozenset(
    {"started_at", "finished_at", "manifest_key", "counts", "stats", "errors", "failure", "extra"}
)
# A record must stay far below DynamoDB's 400 KB item limit, or the final write of a partly failed backup fails
# and leaves it Running; the full error list belongs in the manifest.
MAX_ERRORS = 100
MAX_ERROR_TEXT = 1024
MAX_DAMAGED_BLOBS = 10  # the first few damaged blob ids a record names; ``count`` says how many there are
DEFAULT_LATEST_STATES = frozenset({BackupState.COMPLETED, BackupState.PARTIALLY_FAILED})
_CLAIM_ATTEMPTS = 3
_RECORD_FIELDS = frozenset(f.name for f in dataclasses.fields(BackupRecord))
_UNFENCED = object()  # a write that names no worker token (maintenance, sharded stages): no token is checked


class BackupCatalog:
    """Backup records of every cluster, in the single catalog table."""

    def __init__(
        self,
        dynamodb_client: Any,
        table_name: str,
        *,
        on_transition: Callable[[BackupRecord, bool], None] | None = None,
    ) -> None:
        """``on_transition(record, started)`` is told of every transition this catalog wins (``started``: the first
        claim of a backup); a transition is a conditional write, so each is told once however often a job is
        delivered (``services.py`` announces the backup events with it)."""
        self._client = dynamodb_client
        self._table = table_name
        self._on_transition = on_transition

    # -- writes ---------------------------------------------------------------------------------------------------

    def claim_job(
        self,
        job_id: str,
        cluster: str,
        backup_id: str,
        *,
        policy: str | None = None,
        parent: str | None = None,
        now: datetime,
        extra: dict[str, Any] | None = None,
        worker: str | None = None,
    ) -> tuple[BackupRecord, bool]:
        """Create the Pending record for a job, once: a re-delivered job returns (existing record, False).

        With ``worker`` (a fresh worker token) the record is created Running for that worker instead, started and
        heartbeating now: the claim and the transition a worker would make next, in one write (and announced as
        the transition would be)."""
        if not job_id:
            raise ValueError("job_id must be non-empty")
        keys.check_part("cluster", cluster)
        keys.check_part("backup id", backup_id)
        stamp = iso(now)
        started = stamp if worker is not None else None
        record = BackupRecord(
            cluster=cluster,
            backup_id=backup_id,
            state=BackupState.RUNNING if worker is not None else BackupState.PENDING,
            job_id=job_id,
            policy=policy,
            parent=parent,
            created_at=stamp,
            extra=dict(extra or {}),
            started_at=started,
            heartbeat_at=started,
            worker=worker,
        )
        not_exists = "attribute_not_exists(pk)"
        job_item = {**keys.job_key(job_id), "type": {"S": "job"}, "cluster": {"S": cluster}}
        job_item |= {"backup_id": {"S": backup_id}, "created_at": {"S": stamp}}
        pointer = {**keys.backup_id_key(backup_id), "type": {"S": "backup-id"}, "cluster": {"S": cluster}}
        items = [
            {"Put": {"TableName": self._table, "Item": job_item, "ConditionExpression": not_exists}},
            {"Put": {"TableName": self._table, "Item": self._new_item(record), "ConditionExpression": not_exists}},
            {"Put": {"TableName": self._table, "Item": pointer, "ConditionExpression": not_exists}},
            {
                # Registers the cluster for list_clusters(); if_not_exists makes it idempotent, never backwards.
                "Update": {
                    "TableName": self._table,
                    "Key": keys.cluster_registry_key(cluster),
                    "UpdateExpression": "SET #t = :t, #c = :c, first_seen = if_not_exists(first_seen, :now)",
                    "ExpressionAttributeNames": {"#t": "type", "#c": "cluster"},
                    "ExpressionAttributeValues": {":t": {"S": "cluster"}, ":c": {"S": cluster}, ":now": {"S": stamp}},
                }
            },
        ]
        from botocore.exceptions import ClientError

        for _attempt in range(_CLAIM_ATTEMPTS):
            try:
                self._client.transact_write_items(TransactItems=items)
                if worker is not None and self._on_transition is not None:
                    self._on_transition(record, True)
                return record, True
            except ClientError as exc:
                if error_code(exc) != "TransactionCanceledException":
                    raise translate_error(exc, self._table) from exc
                codes = cancellation_codes(exc) + ["None"] * 3
                if codes[0] == "ConditionalCheckFailed":
                    return self._claimed(job_id, cluster), False
                if "ConditionalCheckFailed" in codes[1:3]:
                    raise AlreadyExists(f"backup id {backup_id} already exists (job {job_id})") from exc
                if "TransactionConflict" not in codes:
                    raise translate_error(exc, self._table) from exc
                # A concurrent delivery of the same job is mid-claim: its claim wins once it lands.
                existing = self._get_raw(keys.job_key(job_id))
                if existing is not None:
                    return self._claimed(job_id, cluster), False
        raise CatalogError(f"job {job_id}: claim kept conflicting with concurrent transactions")

    def transition(
        self,
        cluster: str,
        backup_id: str,
        target: BackupState,
        *,
        now: datetime,
        worker: str | None = None,
        claim: str | None = None,
        **fields: Any,
    ) -> BackupRecord:
        """Move a record to ``target`` if its current state allows it (StaleState otherwise).

        ``extra`` is merged key by key, so writers of different keys do not overwrite each other; the other fields
        replace what was stored, and None removes a field.

        Fencing: with ``worker`` the record must still hold that worker token; with ``claim`` (a claim or takeover)
        the record gets the new token ``claim``, if it still holds ``worker`` (no token at all when ``worker`` is
        None). A refused token raises ``WorkerSuperseded``: another worker took the backup over.
        """
        unknown = set(fields) - TRANSITION_FIELDS
        if unknown:
            raise TypeError(f"unknown backup record fields: {sorted(unknown)}")
        target = BackupState(target)
        sources = sorted(allowed_sources(target))
        if not sources:
            current = self.get(cluster, backup_id).state
            raise StaleState(cluster, backup_id, current, target)
        update = UpdateBuilder()
        stamp = iso(now)
        update.set("state", target)
        update.set("updated_at", stamp)
        update.set(GSI1_PK, keys.backup_state_gsi1pk(cluster, target))
        update.add_version()
        if target == BackupState.RUNNING:
            update.set("heartbeat_at", stamp)
            if "started_at" not in fields:
                update.set_if_absent("started_at", stamp)
        if target in TERMINAL and "finished_at" not in fields:
            update.set_if_absent("finished_at", stamp)
        extra = dict(fields.pop("extra", None) or {})
        if "errors" in fields and fields["errors"] is not None:
            fields["errors"], omitted = _cap_errors(fields["errors"])
            if omitted:
                extra["errors_omitted"] = omitted
        for name, value in fields.items():
            if value is None:
                update.remove(name)
            else:
                update.set(name, iso(value) if isinstance(value, datetime) else value)
        for key, value in extra.items():
            update.set_nested("extra", key, value)
        condition = f"attribute_exists(pk) AND #state IN ({', '.join(update.value(s) for s in sources)})"
        fenced = worker is not None or claim is not None
        if claim is not None:
            update.set("worker", claim)
            condition += " AND attribute_not_exists(worker)" if worker is None else ""
        if worker is not None:
            condition += f" AND worker = {update.value(worker)}"
        record = self._update(cluster, backup_id, target, update, condition, worker=worker if fenced else _UNFENCED)
        if self._on_transition is not None:
            self._on_transition(record, claim is not None and worker is None)
        return record

    def heartbeat(self, cluster: str, backup_id: str, now: datetime, *, worker: str | None = None) -> BackupRecord:
        """Record that the worker of a Running backup is alive (StaleState if it is no longer Running).

        With ``worker`` the record must still hold that token (``WorkerSuperseded`` when another worker took over).
        """
        update = UpdateBuilder()
        stamp = iso(now)
        update.set("heartbeat_at", stamp)
        update.set("updated_at", stamp)
        update.add_version()
        condition = f"attribute_exists(pk) AND #state = {update.value(BackupState.RUNNING)}"
        if worker is not None:
            condition += f" AND worker = {update.value(worker)}"
        update.names["#state"] = "state"
        return self._update(
            cluster, backup_id, BackupState.RUNNING, update, condition, worker=_UNFENCED if worker is None else worker
        )

    def mark_damaged(
        self, cluster: str, backup_id: str, *, blobs: Sequence[str], count: int, now: datetime
    ) -> BackupRecord:
        """Record that the backup reaches ``count`` damaged or missing blobs (``blobs``: the first few ids).

        Never touches ``state`` (a damaged backup keeps the state its run ended in); the first finding's
        ``found_at`` is kept, a later one updates ``checked_at``, ``blobs`` and ``count``."""
        stamp = iso(now)
        blobs = [str(b) for b in blobs[:MAX_DAMAGED_BLOBS]]
        first = UpdateBuilder()
        first.set("damaged", {"found_at": stamp, "checked_at": stamp, "blobs": blobs, "count": count})
        first.set("updated_at", stamp)
        first.add_version()
        try:
            return self._mark(cluster, backup_id, first, "attribute_exists(pk) AND attribute_not_exists(damaged)")
        except ConditionFailed as exc:
            if not exc.old:
                raise RecordNotFound(f"backup {cluster}/{backup_id} not found") from exc
        again = UpdateBuilder()
        for key, value in (("checked_at", stamp), ("blobs", blobs), ("count", count)):
            again.set_nested("damaged", key, value)
        again.set("updated_at", stamp)
        again.add_version()
        try:
            return self._mark(cluster, backup_id, again, "attribute_exists(pk) AND attribute_exists(damaged)")
        except ConditionFailed as exc:
            raise RecordNotFound(f"backup {cluster}/{backup_id} not found") from exc

    def record_post_hooks(
        self, cluster: str, backup_id: str, failures: Sequence[Mapping[str, str]], *, now: datetime
    ) -> BackupRecord:
        """Add post-hook failures to ``extra.post_hooks`` (each with ``at``). Never touches ``state``: the backup's
        run is over and its manifest, if any, already written, so they are kept beside it rather than in it."""
        stamp = iso(now)
        update = UpdateBuilder()
        update.append_nested("extra", "post_hooks", [{**dict(f), "at": stamp} for f in failures])
        update.set("updated_at", stamp)
        update.add_version()
        try:
            return self._mark(cluster, backup_id, update, "attribute_exists(pk)")
        except ConditionFailed as exc:
            raise RecordNotFound(f"backup {cluster}/{backup_id} not found") from exc

    def clear_damaged(self, cluster: str, backup_id: str, *, repaired: Sequence[str], now: datetime) -> BackupRecord:
        """Remove the damaged mark of a backup whose damaged blobs were all repaired, and note the repair in
        ``extra.repaired`` (when, how many blobs, the first few ids). Never touches ``state``."""
        stamp = iso(now)
        update = UpdateBuilder()
        update.remove("damaged")
        ids = [str(b) for b in repaired[:MAX_DAMAGED_BLOBS]]
        update.set_nested("extra", "repaired", {"at": stamp, "count": len(repaired), "blobs": ids})
        update.set("updated_at", stamp)
        update.add_version()
        try:
            return self._mark(cluster, backup_id, update, "attribute_exists(pk)")
        except ConditionFailed as exc:
            raise RecordNotFound(f"backup {cluster}/{backup_id} not found") from exc

    def _mark(self, cluster: str, backup_id: str, update: UpdateBuilder, condition: str) -> BackupRecord:
        return _to_record(self._conditional(cluster, backup_id, update, condition))

    def _conditional(self, cluster: str, backup_id: str, update: UpdateBuilder, condition: str) -> dict[str, Any]:
        """The record after ``update``, applied only if ``condition`` holds (ConditionFailed otherwise)."""
        return conditional_update(
            self._client,
            self._table,
            Key=keys.backup_key(cluster, backup_id),
            UpdateExpression=update.expression(),
            ConditionExpression=condition,
            ExpressionAttributeNames=update.names,
            ExpressionAttributeValues=update.values,
        )

    def set_replica_state(
        self,
        cluster: str,
        backup_id: str,
        region: str,
        state: ReplicaState,
        *,
        lag_s: float | None,
        now: datetime,
        error: str | None = None,
    ) -> BackupRecord:
        """Record the backup's copy in ``region``; never touches ``state``. Replicated is final (see replicas.py)."""
        from chalicelib.catalog.replicas import set_replica_state

        item = set_replica_state(
            self._client, self._table, cluster, backup_id, region, state, lag_s=lag_s, now=now, error=error
        )
        return _to_record(item)

    # -- reads ----------------------------------------------------------------------------------------------------

    def get(self, cluster: str, backup_id: str) -> BackupRecord:
        item = self._get_raw(keys.backup_key(cluster, backup_id))
        if item is None:
            raise RecordNotFound(f"backup {cluster}/{backup_id} not found")
        return _to_record(item)

    def find(self, backup_id: str) -> BackupRecord:
        """The record of a backup id alone (ids are unique across clusters)."""
        pointer = self._get_raw(keys.backup_id_key(backup_id))
        if pointer is None:
            raise RecordNotFound(f"backup {backup_id} not found")
        return self.get(pointer["cluster"], backup_id)

    def list(
        self,
        cluster: str,
        *,
        limit: int = 50,
        next_token: str | None = None,
        states: Iterable[BackupState] | None = None,
    ) -> tuple[list[BackupRecord], str | None]:
        """A page of a cluster's backups, newest first, and the token of the next page (None at the end)."""
        if limit < 1:
            raise ValueError("limit must be at least 1")
        pk = keys.cluster_pk(cluster)
        wanted = sorted(BackupState(s) for s in states) if states is not None else None
        if wanted == []:
            return [], None
        start = decode_token(next_token, pk, keys.backup_sk("")) if next_token else None
        query: dict[str, Any] = {
            "TableName": self._table,
            "KeyConditionExpression": "pk = :pk AND begins_with(sk, :prefix)",
            "ExpressionAttributeValues": {":pk": {"S": pk}, ":prefix": {"S": keys.backup_sk("")}},
            "ScanIndexForward": False,
            "ConsistentRead": True,
            # A filter is applied after DynamoDB's Limit, so filtered pages read ahead.
            "Limit": limit if wanted is None else max(limit, 100),
        }
        if wanted is not None:
            values = {f":s{i}": {"S": str(s)} for i, s in enumerate(wanted)}
            query["FilterExpression"] = f"#state IN ({', '.join(values)})"
            query["ExpressionAttributeNames"] = {"#state": "state"}
            query["ExpressionAttributeValues"] |= values
        records: list[BackupRecord] = []
        while True:
            if start is not None:
                query["ExclusiveStartKey"] = start
            page = self._call("query", **query)
            items = page.get("Items", [])
            for position, item in enumerate(items, start=1):
                records.append(_to_record(item))
                if len(records) == limit:
                    more = position < len(items) or "LastEvaluatedKey" in page
                    return records, encode_token(item) if more else None
            start = page.get("LastEvaluatedKey")
            if start is None:
                return records, None

    def list_clusters(self) -> builtins.list[str]:
        """Every cluster that has ever had a backup claimed, sorted."""
        query: dict[str, Any] = {
            "TableName": self._table,
            "KeyConditionExpression": "pk = :pk",
            "ExpressionAttributeValues": {":pk": {"S": keys.CLUSTERS_PK}},
        }
        return sorted(str(decode_item(item)["cluster"]) for item in self._query_all(query))

    def latest(
        self,
        cluster: str,
        states: Iterable[BackupState] = DEFAULT_LATEST_STATES,
        *,
        indexed: Callable[[BackupRecord], None] | None = None,
    ) -> BackupRecord | None:
        """The newest backup of a cluster in one of ``states`` (the parent of an incremental backup), or None.

        ``indexed`` is told of the newest record as the state index has it, before a consistent read confirms it
        (the index is eventually consistent): a caller may start on it, and must check it against the answer."""
        wanted = frozenset(BackupState(s) for s in states)
        if not wanted:
            return None

        def newest(state: BackupState) -> builtins.list[dict[str, Any]]:
            page = self._call(
                "query",
                TableName=self._table,
                IndexName=GSI1,
                KeyConditionExpression=f"{GSI1_PK} = :pk",
                ExpressionAttributeValues={":pk": {"S": keys.backup_state_gsi1pk(cluster, state)}},
                ScanIndexForward=False,
                Limit=1,
            )
            return [decode_item(i) for i in page.get("Items", [])]

        # One query per state, at once: every backup looks its parent up before it is claimed.
        states_wanted = sorted(wanted)
        if len(states_wanted) == 1:
            found = [newest(states_wanted[0])]
        else:
            with ThreadPoolExecutor(max_workers=len(states_wanted), thread_name_prefix="lifeboat-latest") as pool:
                found = list(pool.map(newest, states_wanted))
        candidates = {str(item["backup_id"]): item for items in found for item in items}
        if candidates:
            newest_id = max(candidates)
            if indexed is not None:
                indexed(_to_record(candidates[newest_id]))
            # The index is eventually consistent: trust it only if a consistent read agrees.
            try:
                record = self.get(cluster, newest_id)
            except RecordNotFound:
                record = None
            if record is not None and record.state in wanted:
                return record
        records, _ = self.list(cluster, limit=1, states=wanted)
        return records[0] if records else None

    # -- plumbing -------------------------------------------------------------------------------------------------

    def _new_item(self, record: BackupRecord) -> dict[str, Any]:
        item: dict[str, Any] = {
            **keys.backup_key(record.cluster, record.backup_id),
            "type": {"S": ITEM_TYPE},
            GSI1_PK: {"S": keys.backup_state_gsi1pk(record.cluster, record.state)},
            GSI1_SK: {"S": record.backup_id},
            "version": {"N": "1"},
            "updated_at": {"S": record.created_at},
        }
        for name in (
            "cluster",
            "backup_id",
            "state",
            "job_id",
            "policy",
            "parent",
            "created_at",
            "started_at",
            "heartbeat_at",
            "worker",
        ):
            value = getattr(record, name)
            if value is not None:
                item[name] = {"S": str(value)}
        for name in ("counts", "stats", "errors", "extra", "replicas"):
            item[name] = encode(getattr(record, name))
        return item

    def _claimed(self, job_id: str, cluster: str) -> BackupRecord:
        job = self._get_raw(keys.job_key(job_id))
        if job is None:
            raise CatalogError(f"job {job_id}: claim was refused but the job item is missing")
        if job["cluster"] != cluster:
            raise AlreadyExists(f"job id {job_id} was already claimed for cluster {job['cluster']}, not {cluster}")
        return self.get(str(job["cluster"]), str(job["backup_id"]))

    def _update(
        self,
        cluster: str,
        backup_id: str,
        target: BackupState,
        update: UpdateBuilder,
        condition: str,
        *,
        worker: str | None | object = None,
    ) -> BackupRecord:
        update.names.setdefault("#state", "state")
        try:
            new = self._conditional(cluster, backup_id, update, condition)
        except ConditionFailed as exc:
            if not exc.old:
                raise RecordNotFound(f"backup {cluster}/{backup_id} not found") from exc
            if worker is not _UNFENCED and exc.old.get("worker") != worker:
                raise WorkerSuperseded(cluster, backup_id, exc.old.get("state"), target) from exc
            raise StaleState(cluster, backup_id, exc.old.get("state"), target) from exc
        return _to_record(new)

    def _get_raw(self, key: dict[str, Any]) -> dict[str, Any] | None:
        response = self._call("get_item", TableName=self._table, Key=key, ConsistentRead=True)
        item = response.get("Item")
        return decode_item(item) if item else None

    def _query_all(self, query: dict[str, Any]) -> Iterator[dict[str, Any]]:
        while True:
            page = self._call("query", **query)
            yield from page.get("Items", [])
            if "LastEvaluatedKey" not in page:
                return
            query = {**query, "ExclusiveStartKey": page["LastEvaluatedKey"]}

    def _call(self, operation: str, **kwargs: Any) -> dict[str, Any]:
        from botocore.exceptions import ClientError

        try:
            return dict(getattr(self._client, operation)(**kwargs))
        except ClientError as exc:
            raise translate_error(exc, self._table) from exc


def _cap_errors(errors: list[dict[str, str]]) -> tuple[list[dict[str, str]], int]:
    kept = [{k: str(v)[:MAX_ERROR_TEXT] for k, v in e.items()} for e in errors[:MAX_ERRORS]]
    return kept, max(0, len(errors) - MAX_ERRORS)


def _to_record(item: dict[str, Any]) -> BackupRecord:
    if "pk" in item and isinstance(item["pk"], dict):  # still in DynamoDB's wire format
        item = decode_item(item)
    values = {k: v for k, v in item.items() if k in _RECORD_FIELDS}
    values["state"] = BackupState(values["state"])
    return BackupRecord(**values)
