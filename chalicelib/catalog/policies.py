"""Backup policies in DynamoDB: definitions, the due-time index the dispatcher reads, claims and run records.

Items (docs/catalog.md):

- ``CLUSTER#<cluster>`` / ``POLICY#<name>``: the policy (``spec`` as a policy file holds it), ``next_run_at`` and,
  only while enabled, ``gsi2pk = DUE#<shard>`` / ``gsi2sk = <next run>#<cluster>#<name>`` (a sparse index).
- ``POLICIES`` / ``POLICY#<name>``: the name's owner cluster. Names are unique across clusters (job ids, metrics and
  the CLI name a policy alone), and this item makes the listing one query.
- ``CLUSTER#<cluster>`` / ``RUN#<name>#<scheduled for>``: one per scheduled run (dispatched or skipped). It is put
  in the same transaction as the claim with ``attribute_not_exists``: a run can be claimed exactly once.
"""

from __future__ import annotations

import builtins
import zlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from chalicelib.catalog.dynamo import cancellation_codes, decode_item, encode, error_code, iso, translate_error
from chalicelib.catalog.errors import AlreadyExists, CatalogError, RecordNotFound, VersionConflict
from chalicelib.catalog.keys import check_part, cluster_pk, job_key
from chalicelib.catalog.policy_runs import DISPATCHED, RUN_PREFIX, RUN_RECORD_TTL_S, RunRecord, run_key, to_run
from chalicelib.catalog.schema import GSI2, GSI2_PK, GSI2_SK, TTL_ATTRIBUTE
from chalicelib.core.policies import Policy

ITEM_TYPE = "policy"
POLICIES_PK = "POLICIES"
POLICY_PREFIX = "POLICY#"


@dataclass(frozen=True)
class PolicyRecord:
    policy: Policy
    next_run_at: str | None  # ISO-8601 UTC; None while disabled
    last_run: dict[str, Any] | None = None  # {scheduled_for, outcome, reason, job_id, at}
    runs: dict[str, int] = field(default_factory=dict)  # dispatched, skipped, missed
    created_at: str = ""
    updated_at: str = ""
    version: int = 1


def policy_key(cluster: str, name: str) -> dict[str, dict[str, str]]:
    pk = cluster_pk(check_part("cluster", cluster))
    return {"pk": {"S": pk}, "sk": {"S": POLICY_PREFIX + check_part("policy", name)}}


def name_key(name: str) -> dict[str, dict[str, str]]:
    return {"pk": {"S": POLICIES_PK}, "sk": {"S": POLICY_PREFIX + check_part("policy", name)}}


class PolicyCatalog:
    """Policies of every cluster, in the single catalog table."""

    def __init__(self, dynamodb_client: Any, table_name: str, *, shards: int = 1) -> None:
        if shards < 1:
            raise ValueError("shards must be at least 1")
        self._client = dynamodb_client
        self._table = table_name
        self._shards = shards

    # -- definitions ----------------------------------------------------------------------------------------------

    def create(self, policy: Policy, *, next_run_at: datetime | None, now: datetime) -> PolicyRecord:
        """A new policy; AlreadyExists if the name exists (on this cluster or another one)."""
        stamp = iso(now)
        record = PolicyRecord(policy, iso(next_run_at) if next_run_at else None, None, {}, stamp, stamp, 1)
        pointer = {**name_key(policy.name), "type": {"S": "policy-name"}, "cluster": {"S": policy.cluster}}
        items = [
            {"Put": {"TableName": self._table, "Item": pointer, "ConditionExpression": "attribute_not_exists(pk)"}},
            {
                "Put": {
                    "TableName": self._table,
                    "Item": self._item(record),
                    "ConditionExpression": "attribute_not_exists(pk)",
                }
            },
        ]
        try:
            self._transact(items)
        except _Cancelled as exc:
            if "ConditionalCheckFailed" in exc.codes:
                owner = self.owner(policy.name)
                where = f"cluster {owner}" if owner else "another cluster"
                raise AlreadyExists(f"policy name {policy.name!r} already exists on {where}") from exc
            raise translate_error(exc.error, self._table) from exc
        return record

    def update(
        self, policy: Policy, *, next_run_at: datetime | str | None, expected_version: int, now: datetime
    ) -> PolicyRecord:
        """Replace a policy's definition if nobody changed it since ``expected_version`` (VersionConflict)."""
        values: dict[str, Any] = {
            ":spec": encode(policy.to_dict()),
            ":enabled": {"BOOL": policy.enabled},
            ":now": {"S": iso(now)},
            ":v": {"N": str(expected_version)},
            ":one": {"N": "1"},
        }
        sets = ["spec = :spec", "enabled = :enabled", "updated_at = :now", "version = version + :one"]
        removes: list[str] = []
        if policy.enabled and next_run_at is not None:
            when = iso(next_run_at)
            values |= {":next": {"S": when}, ":gpk": {"S": self._shard(policy.name)}}
            values[":gsk"] = {"S": _due_sort_key(when, policy.cluster, policy.name)}
            sets += ["next_run_at = :next", f"{GSI2_PK} = :gpk", f"{GSI2_SK} = :gsk"]
        else:
            removes += ["next_run_at", GSI2_PK, GSI2_SK]
        expression = f"SET {', '.join(sets)}" + (f" REMOVE {', '.join(removes)}" if removes else "")
        item = self._conditional_update(
            policy_key(policy.cluster, policy.name),
            expression,
            values,
            "attribute_exists(pk) AND version = :v",
        )
        if item is None:
            raise VersionConflict(f"policy {policy.name} changed concurrently; read it again")
        return _to_record(item)

    def delete(self, name: str) -> PolicyRecord:
        record = self.get(name)
        items = [
            {"Delete": {"TableName": self._table, "Key": name_key(name)}},
            {"Delete": {"TableName": self._table, "Key": policy_key(record.policy.cluster, name)}},
        ]
        try:
            self._transact(items)
        except _Cancelled as exc:
            raise translate_error(exc.error, self._table) from exc
        return record

    # -- reads ----------------------------------------------------------------------------------------------------

    def owner(self, name: str) -> str | None:
        pointer = self._get(name_key(name))
        return str(pointer["cluster"]) if pointer else None

    def get(self, name: str) -> PolicyRecord:
        cluster = self.owner(name)
        item = self._get(policy_key(cluster, name)) if cluster else None
        if item is None:
            raise RecordNotFound(f"policy {name!r} not found")
        return _to_record(item)

    def find(self, cluster: str, name: str) -> PolicyRecord | None:
        item = self._get(policy_key(cluster, name))
        return _to_record(item) if item else None

    def list(self, cluster: str | None = None) -> builtins.list[PolicyRecord]:
        """Every policy (of one cluster), sorted by name."""
        if cluster is None:
            pointers = self._query(
                {"KeyConditionExpression": "pk = :pk", "ExpressionAttributeValues": {":pk": {"S": POLICIES_PK}}}
            )
            clusters = sorted({str(decode_item(p)["cluster"]) for p in pointers})
        else:
            clusters = [cluster]
        records: builtins.list[PolicyRecord] = []
        for name in clusters:
            query: dict[str, Any] = {
                "KeyConditionExpression": "pk = :pk AND begins_with(sk, :prefix)",
                "ExpressionAttributeValues": {":pk": {"S": cluster_pk(name)}, ":prefix": {"S": POLICY_PREFIX}},
                "ConsistentRead": True,
            }
            records.extend(_to_record(item) for item in self._query(query))
        return sorted(records, key=lambda r: r.policy.name)

    def due(self, now: datetime) -> Iterator[PolicyRecord]:
        """Enabled policies whose next run is at or before ``now`` (the index is eventually consistent)."""
        # gsi2sk is "<time>#<cluster>#<name>"; '$' sorts right after '#', so this bound includes every sort key
        # whose time equals now.
        bound = iso(now) + "$"
        for shard in range(self._shards):
            query = {
                "IndexName": GSI2,
                "KeyConditionExpression": f"{GSI2_PK} = :pk AND {GSI2_SK} < :bound",
                "ExpressionAttributeValues": {":pk": {"S": f"DUE#{shard}"}, ":bound": {"S": bound}},
            }
            for item in self._query(query):
                yield _to_record(item)

    def runs(self, cluster: str, name: str, *, limit: int = 20) -> builtins.list[RunRecord]:
        """The most recent run records of a policy, newest first."""
        page = self._call(
            "query",
            TableName=self._table,
            KeyConditionExpression="pk = :pk AND begins_with(sk, :prefix)",
            ExpressionAttributeValues={":pk": {"S": cluster_pk(cluster)}, ":prefix": {"S": f"{RUN_PREFIX}{name}#"}},
            ScanIndexForward=False,
            Limit=limit,
        )
        return [to_run(decode_item(item)) for item in page.get("Items", [])]

    # -- the dispatcher's claim -----------------------------------------------------------------------------------

    def claim(self, record: PolicyRecord, run: RunRecord, *, next_run_at: datetime, now: datetime) -> bool:
        """Advance the policy past ``run`` and record it, if no other dispatcher did: True for the one winner."""
        if record.next_run_at is None:
            raise ValueError(f"policy {record.policy.name} has no next run to claim")
        policy = record.policy
        outcome_counter = "runs_dispatched" if run.outcome == DISPATCHED else "runs_skipped"
        when = iso(next_run_at)
        values = {
            ":next": {"S": when},
            ":gsk": {"S": _due_sort_key(when, policy.cluster, policy.name)},
            ":run": encode(run.to_dict()),
            ":now": {"S": iso(now)},
            ":one": {"N": "1"},
            ":missed": {"N": str(run.missed)},
            ":seen": {"S": record.next_run_at},
            ":true": {"BOOL": True},
            ":v": {"N": str(record.version)},
        }
        update = {
            "Update": {
                "TableName": self._table,
                "Key": policy_key(policy.cluster, policy.name),
                # The version bump makes a concurrent `apply` re-read, so it cannot write back the old next run.
                "UpdateExpression": (
                    f"SET next_run_at = :next, {GSI2_SK} = :gsk, last_run = :run, updated_at = :now, "
                    f"version = version + :one ADD {outcome_counter} :one, runs_missed :missed"
                ),
                "ConditionExpression": "next_run_at = :seen AND enabled = :true AND version = :v",
                "ExpressionAttributeValues": values,
            }
        }
        run_item = {
            **run_key(policy.cluster, policy.name, run.scheduled_for),
            **{k: v for k, v in encode(run.to_dict())["M"].items()},
            "type": {"S": "policy-run"},
            TTL_ATTRIBUTE: {"N": str(int(now.timestamp()) + RUN_RECORD_TTL_S)},
        }
        put = {"Put": {"TableName": self._table, "Item": run_item, "ConditionExpression": "attribute_not_exists(pk)"}}
        try:
            self._transact([update, put])
        except _Cancelled as exc:
            codes = exc.codes + ["None"] * 2
            if codes[0] == "None" and codes[1] == "ConditionalCheckFailed":
                # This scheduled time was handled before (its run record exists), yet the policy still points at
                # it: move the policy on, or every later claim would fail on the same record.
                self._conditional_update(
                    policy_key(policy.cluster, policy.name),
                    f"SET next_run_at = :next, {GSI2_SK} = :gsk, version = version + :one",
                    {k: v for k, v in values.items() if k in (":next", ":gsk", ":one", ":seen", ":true", ":v")},
                    "next_run_at = :seen AND enabled = :true AND version = :v",
                )
                return False
            if "ConditionalCheckFailed" in codes or "TransactionConflict" in codes:
                return False  # another dispatcher claimed this run (or is claiming it right now)
            raise translate_error(exc.error, self._table) from exc
        return True

    def job_claimed(self, job_id: str) -> bool:
        """Whether a backup worker has claimed ``job_id`` (the backup catalog's job item exists)."""
        return self._get(job_key(job_id)) is not None

    def release_claim(self, record: PolicyRecord, run: RunRecord, *, claimed_next_run_at: datetime) -> bool:
        """Undo a claim whose job could not be sent, so the next dispatcher run tries again."""
        policy = record.policy
        if record.next_run_at is None:
            raise ValueError(f"policy {policy.name} has no next run to restore")
        claimed = iso(claimed_next_run_at)
        items = [
            {
                "Update": {
                    "TableName": self._table,
                    "Key": policy_key(policy.cluster, policy.name),
                    "UpdateExpression": (
                        f"SET next_run_at = :seen, {GSI2_SK} = :gsk, last_run = :run ADD runs_dispatched :minus"
                    ),
                    "ConditionExpression": "next_run_at = :claimed",
                    "ExpressionAttributeValues": {
                        ":seen": {"S": record.next_run_at},
                        ":run": encode({**run.to_dict(), "outcome": "send_failed"}),
                        ":gsk": {"S": _due_sort_key(record.next_run_at, policy.cluster, policy.name)},
                        ":claimed": {"S": claimed},
                        ":minus": {"N": "-1"},
                    },
                }
            },
            {"Delete": {"TableName": self._table, "Key": run_key(policy.cluster, policy.name, run.scheduled_for)}},
        ]
        try:
            self._transact(items)
        except _Cancelled as exc:
            if "ConditionalCheckFailed" in exc.codes:
                return False
            raise translate_error(exc.error, self._table) from exc
        return True

    # -- plumbing -------------------------------------------------------------------------------------------------

    def _shard(self, name: str) -> str:
        return f"DUE#{zlib.crc32(name.encode()) % self._shards}"

    def _item(self, record: PolicyRecord) -> dict[str, Any]:
        policy = record.policy
        item: dict[str, Any] = {
            **policy_key(policy.cluster, policy.name),
            "type": {"S": ITEM_TYPE},
            "name": {"S": policy.name},
            "cluster": {"S": policy.cluster},
            "spec": encode(policy.to_dict()),
            "enabled": {"BOOL": policy.enabled},
            "created_at": {"S": record.created_at},
            "updated_at": {"S": record.updated_at},
            "version": {"N": str(record.version)},
        }
        if policy.enabled and record.next_run_at:
            item["next_run_at"] = {"S": record.next_run_at}
            item[GSI2_PK] = {"S": self._shard(policy.name)}
            item[GSI2_SK] = {"S": _due_sort_key(record.next_run_at, policy.cluster, policy.name)}
        return item

    def _get(self, key: dict[str, Any]) -> dict[str, Any] | None:
        item = self._call("get_item", TableName=self._table, Key=key, ConsistentRead=True).get("Item")
        return decode_item(item) if item else None

    def _query(self, query: dict[str, Any]) -> Iterator[dict[str, Any]]:
        query = {"TableName": self._table, **query}
        while True:
            page = self._call("query", **query)
            yield from page.get("Items", [])
            if "LastEvaluatedKey" not in page:
                return
            query = {**query, "ExclusiveStartKey": page["LastEvaluatedKey"]}

    def _conditional_update(
        self, key: dict[str, Any], expression: str, values: dict[str, Any], condition: str
    ) -> dict[str, Any] | None:
        from botocore.exceptions import ClientError

        try:
            response = self._client.update_item(
                TableName=self._table,
                Key=key,
                UpdateExpression=expression,
                ConditionExpression=condition,
                ExpressionAttributeValues=values,
                ReturnValues="ALL_NEW",
            )
        except ClientError as exc:
            if error_code(exc) == "ConditionalCheckFailedException":
                return None
            raise translate_error(exc, self._table) from exc
        return dict(response["Attributes"])

    def _transact(self, items: builtins.list[dict[str, Any]]) -> None:
        from botocore.exceptions import ClientError

        try:
            self._client.transact_write_items(TransactItems=items)
        except ClientError as exc:
            if error_code(exc) == "TransactionCanceledException":
                raise _Cancelled(exc, cancellation_codes(exc)) from exc
            raise translate_error(exc, self._table) from exc

    def _call(self, operation: str, **kwargs: Any) -> dict[str, Any]:
        from botocore.exceptions import ClientError

        try:
            return dict(getattr(self._client, operation)(**kwargs))
        except ClientError as exc:
            raise translate_error(exc, self._table) from exc


class _Cancelled(CatalogError):
    """Internal: a transaction was cancelled; ``codes`` are the per-item reasons."""

    def __init__(self, error: Exception, codes: list[str]) -> None:
        super().__init__(str(error))
        self.error = error
        self.codes = codes


def _due_sort_key(when: str, cluster: str, name: str) -> str:
    return f"{when}#{cluster}#{name}"


def _to_record(item: dict[str, Any]) -> PolicyRecord:
    if "pk" in item and isinstance(item["pk"], dict):  # still in DynamoDB's wire format
        item = decode_item(item)
    return PolicyRecord(
        policy=Policy.from_dict(item["spec"], where=f"stored policy {item.get('name')}"),
        next_run_at=item.get("next_run_at"),
        last_run=item.get("last_run"),
        runs={
            "dispatched": int(item.get("runs_dispatched", 0)),
            "skipped": int(item.get("runs_skipped", 0)),
            "missed": int(item.get("runs_missed", 0)),
        },
        created_at=str(item.get("created_at", "")),
        updated_at=str(item.get("updated_at", "")),
        version=int(item.get("version", 1)),
    )
