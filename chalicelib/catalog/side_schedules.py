"""A policy's schedules beside its backup schedule (etcd snapshots, restore verification): next run, due index and
the run's claim.

For the kind ``etcd``: ``CLUSTER#<cluster>`` / ``ETCDSCHEDULE#<policy>`` holds the block's ``schedule`` and
``next_run_at``, with ``gsi2pk = ETCDDUE#0`` / ``gsi2sk = <next run>#<cluster>#<policy>`` in the dispatcher's sparse
due index (a partition apart from the policies' ``DUE#<shard>``, so neither listing sees the other's items); the kind
``verify`` uses ``VERIFYSCHEDULE#`` and ``VERIFYDUE#0``. ``claim`` advances it in one transaction with the run record
``RUN#<policy>:<kind>#<scheduled for>`` (``attribute_not_exists``), as ``PolicyCatalog.claim`` does for backups: each
scheduled run is claimed exactly once. ':' never occurs in a policy name, so these run records neither collide with
nor list among the policy's own (``RUN#<policy>#``).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from chalicelib.catalog.dynamo import cancellation_codes, decode_item, encode, error_code, iso, translate_error
from chalicelib.catalog.keys import check_part, cluster_pk
from chalicelib.catalog.policy_runs import RUN_RECORD_TTL_S, RunRecord, run_key
from chalicelib.catalog.schema import GSI2, GSI2_PK, GSI2_SK, TTL_ATTRIBUTE
from chalicelib.core.schedule import Schedule


@dataclass(frozen=True)
class ScheduleKind:
    name: str
    sk_prefix: str
    due_partition: str
    item_type: str

    @property
    def run_suffix(self) -> str:
        return f":{self.name}"


ETCD = ScheduleKind("etcd", "ETCDSCHEDULE#", "ETCDDUE#0", "etcd-schedule")
VERIFY = ScheduleKind("verify", "VERIFYSCHEDULE#", "VERIFYDUE#0", "verify-schedule")


@dataclass(frozen=True)
class SideScheduleRecord:
    cluster: str
    policy: str
    schedule: Schedule
    next_run_at: str  # ISO-8601 UTC
    last_run: dict[str, Any] | None = None


def schedule_key(kind: ScheduleKind, cluster: str, policy: str) -> dict[str, dict[str, str]]:
    return {
        "pk": {"S": cluster_pk(check_part("cluster", cluster))},
        "sk": {"S": kind.sk_prefix + check_part("policy", policy)},
    }


def run_name(kind: ScheduleKind, policy: str) -> str:
    """The name a kind's run records are keyed by (``run_key``): the policy's, with a suffix no policy name can have."""
    return policy + kind.run_suffix


class SideScheduleCatalog:
    def __init__(self, dynamodb_client: Any, table_name: str, kind: ScheduleKind) -> None:
        self._client = dynamodb_client
        self._table = table_name
        self.kind = kind

    def get(self, cluster: str, policy: str) -> SideScheduleRecord | None:
        item = self._call(
            "get_item", TableName=self._table, Key=schedule_key(self.kind, cluster, policy), ConsistentRead=True
        )
        return _to_record(decode_item(item["Item"])) if "Item" in item else None

    def put(self, cluster: str, policy: str, schedule: Schedule, *, next_run_at: datetime) -> SideScheduleRecord:
        """Schedule a policy's runs of this kind (again): the first at ``next_run_at``."""
        when = iso(next_run_at)
        item = {
            **schedule_key(self.kind, cluster, policy),
            "type": {"S": self.kind.item_type},
            "cluster": {"S": cluster},
            "policy": {"S": policy},
            "schedule": encode(schedule.to_dict()),
            "next_run_at": {"S": when},
            GSI2_PK: {"S": self.kind.due_partition},
            GSI2_SK: {"S": f"{when}#{cluster}#{policy}"},
        }
        self._call("put_item", TableName=self._table, Item=item)
        return SideScheduleRecord(cluster, policy, schedule, when)

    def remove(self, cluster: str, policy: str) -> None:
        self._call("delete_item", TableName=self._table, Key=schedule_key(self.kind, cluster, policy))

    def due(self, now: datetime) -> Iterator[SideScheduleRecord]:
        """Schedules whose next run is at or before ``now`` (the index is eventually consistent)."""
        query: dict[str, Any] = {
            "TableName": self._table,
            "IndexName": GSI2,
            "KeyConditionExpression": f"{GSI2_PK} = :pk AND {GSI2_SK} < :bound",
            "ExpressionAttributeValues": {":pk": {"S": self.kind.due_partition}, ":bound": {"S": iso(now) + "$"}},
        }
        while True:
            page = self._call("query", **query)
            for raw in page.get("Items", []):
                yield _to_record(decode_item(raw))
            if "LastEvaluatedKey" not in page:
                return
            query["ExclusiveStartKey"] = page["LastEvaluatedKey"]

    def claim(self, record: SideScheduleRecord, run: RunRecord, *, next_run_at: datetime, now: datetime) -> bool:
        """Advance the schedule past ``run`` and record the run, if no other dispatcher did: True for the winner."""
        when = iso(next_run_at)
        update: dict[str, dict[str, Any]] = {
            "Update": {
                "TableName": self._table,
                "Key": schedule_key(self.kind, record.cluster, record.policy),
                "UpdateExpression": f"SET next_run_at = :next, {GSI2_SK} = :gsk, last_run = :run",
                "ConditionExpression": "next_run_at = :seen",
                "ExpressionAttributeValues": {
                    ":next": {"S": when},
                    ":gsk": {"S": f"{when}#{record.cluster}#{record.policy}"},
                    ":run": encode(run.to_dict()),
                    ":seen": {"S": record.next_run_at},
                },
            }
        }
        run_item = {
            **run_key(record.cluster, run_name(self.kind, record.policy), run.scheduled_for),
            **encode(run.to_dict())["M"],
            "type": {"S": "policy-run"},
            TTL_ATTRIBUTE: {"N": str(int(now.timestamp()) + RUN_RECORD_TTL_S)},
        }
        put = {"Put": {"TableName": self._table, "Item": run_item, "ConditionExpression": "attribute_not_exists(pk)"}}
        codes = self._transact([update, put])
        if codes == ["None", "ConditionalCheckFailed"]:
            # This scheduled time was handled before (its run record exists), yet the schedule still points at it:
            # move it on, or every later claim would fail on the same record.
            values = {k: v for k, v in update["Update"]["ExpressionAttributeValues"].items() if k != ":run"}
            move_on = {**update["Update"], "UpdateExpression": f"SET next_run_at = :next, {GSI2_SK} = :gsk"}
            self._transact([{"Update": {**move_on, "ExpressionAttributeValues": values}}])
        return codes is None

    def release_claim(self, record: SideScheduleRecord, run: RunRecord, *, claimed_next_run_at: datetime) -> bool:
        """Undo a claim whose job could not be sent, so the next dispatcher run tries again."""
        update = {
            "Update": {
                "TableName": self._table,
                "Key": schedule_key(self.kind, record.cluster, record.policy),
                "UpdateExpression": f"SET next_run_at = :seen, {GSI2_SK} = :gsk",
                "ConditionExpression": "next_run_at = :claimed",
                "ExpressionAttributeValues": {
                    ":seen": {"S": record.next_run_at},
                    ":gsk": {"S": f"{record.next_run_at}#{record.cluster}#{record.policy}"},
                    ":claimed": {"S": iso(claimed_next_run_at)},
                },
            }
        }
        key = run_key(record.cluster, run_name(self.kind, record.policy), run.scheduled_for)
        return self._transact([update, {"Delete": {"TableName": self._table, "Key": key}}]) is None

    def _transact(self, items: list[dict[str, Any]]) -> list[str] | None:
        """None when the transaction went through, else the per-item codes of the conditions that refused it."""
        from botocore.exceptions import ClientError

        try:
            self._client.transact_write_items(TransactItems=items)
        except ClientError as exc:
            if error_code(exc) == "TransactionCanceledException":
                codes = cancellation_codes(exc)
                if "ConditionalCheckFailed" in codes or "TransactionConflict" in codes:
                    return codes
            raise translate_error(exc, self._table) from exc
        return None

    def _call(self, operation: str, **kwargs: Any) -> dict[str, Any]:
        from botocore.exceptions import ClientError

        try:
            return dict(getattr(self._client, operation)(**kwargs))
        except ClientError as exc:
            raise translate_error(exc, self._table) from exc


def _to_record(item: dict[str, Any]) -> SideScheduleRecord:
    spec = item["schedule"]
    return SideScheduleRecord(
        cluster=str(item["cluster"]),
        policy=str(item["policy"]),
        schedule=Schedule(
            cron=str(spec["cron"]),
            timezone=str(spec.get("timezone", "UTC")),
            starting_deadline_seconds=(
                int(spec["starting_deadline_seconds"]) if spec.get("starting_deadline_seconds") is not None else None
            ),
        ),
        next_run_at=str(item["next_run_at"]),
        last_run=item.get("last_run"),
    )
