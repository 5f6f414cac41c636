"""Verification runs: one item per run (``VERIFY#<id>`` / ``VERIFY``), listed per policy through gsi1.

A run is created Pending by whoever starts it (the dispatcher's job, or ``lifeboat verify run``), with a condition
so a second delivery of the same run finds it instead of starting another. A worker claims it with a token
(Pending, or Running with a heartbeat older than the run's timeout: the worker that had it crashed), and only the
token's holder may record its end.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from typing import Any

from chalicelib.catalog import keys
from chalicelib.catalog.dynamo import UpdateBuilder, conditional_update, decode_item, encode, translate_error
from chalicelib.catalog.errors import ConditionFailed, RecordNotFound

PK_PREFIX = "VERIFY#"
SK = "VERIFY"
GSI1 = "gsi1"
GSI1_PREFIX = "VERIFICATIONS#"
PENDING, RUNNING, SUCCEEDED, FAILED = "Pending", "Running", "Succeeded", "Failed"
TERMINAL = frozenset({SUCCEEDED, FAILED})
_NOT_RESULTS = frozenset({"verification_id", "worker", "progress"})
MAX_PROBLEMS = 50  # per record; a run with more says how many it left out


@dataclass(frozen=True)
class VerificationRecord:
    verification_id: str
    policy: str
    cluster: str  # the cluster the policy backs up
    target_cluster: str  # where the run restores (the policy's own cluster unless the verify block names another)
    state: str = PENDING
    created_at: str = ""
    scheduled_for: str = ""  # the dispatcher's scheduled time; empty for a run started by hand
    timeout_s: int = 1800
    rto_target_minutes: int | None = None
    kinds: list[str] = field(default_factory=lambda: ["resources"])
    worker: str | None = None
    started_at: str | None = None
    heartbeat_at: str | None = None
    finished_at: str | None = None
    backup_id: str | None = None
    rto_s: float | None = None
    rto_exceeded: bool = False
    phases: dict[str, float] = field(default_factory=dict)
    checked: int = 0
    skipped: int = 0
    problems: list[dict[str, Any]] = field(default_factory=list)
    problems_total: int = 0
    checks: str = ""
    message: str = ""
    cleanup: dict[str, Any] = field(default_factory=dict)
    outcomes: dict[str, str] = field(default_factory=dict)  # per kind asked for: verified / not verified / failed
    dumps: list[dict[str, Any]] = field(default_factory=list)  # the dumps kind: per dump, its state and error
    progress: dict[str, Any] | None = None  # while a Running run waits for readiness between invocations

    @property
    def passed(self) -> bool:
        return self.state == SUCCEEDED


class VerificationCatalog:
    def __init__(self, dynamodb_client: Any, table_name: str) -> None:
        self._client = dynamodb_client
        self._table = table_name

    def create(self, record: VerificationRecord) -> bool:
        """Store a new Pending run; False when a run of that id exists already (a second delivery)."""
        from botocore.exceptions import ClientError

        item = {name: encode(value) for name, value in asdict(record).items() if value is not None}
        item.update(_key(record.verification_id))
        item["gsi1pk"] = {"S": GSI1_PREFIX + keys.check_part("policy", record.policy)}
        item["gsi1sk"] = {"S": f"{record.created_at}#{record.verification_id}"}
        item["type"] = {"S": "verification"}
        try:
            self._client.put_item(TableName=self._table, Item=item, ConditionExpression="attribute_not_exists(pk)")
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") == "ConditionalCheckFailedException":
                return False
            raise translate_error(exc, self._table) from exc
        return True

    def get(self, verification_id: str) -> VerificationRecord:
        response = self._call("get_item", TableName=self._table, Key=_key(verification_id), ConsistentRead=True)
        if "Item" not in response:
            raise RecordNotFound(f"verification {verification_id!r} is not in the catalog")
        return _to_record(decode_item(response["Item"]))

    def claim(self, verification_id: str, worker: str, now: str, stale_before: str) -> VerificationRecord | None:
        """Pending (or Running with a heartbeat before ``stale_before``) → Running for ``worker``; None when another
        worker holds the run or it has ended."""
        update = UpdateBuilder()
        update.set("state", RUNNING)
        update.set("worker", worker)
        update.set("heartbeat_at", now)
        update.set_if_absent("started_at", now)
        condition = "attribute_exists(pk) AND (#st = :pending OR (#st = :running AND #hb < :stale))"
        names = {"#st": "state", "#hb": "heartbeat_at"}
        values = {":pending": {"S": PENDING}, ":running": {"S": RUNNING}, ":stale": {"S": stale_before}}
        try:
            return self._update(verification_id, update, condition, names, values)
        except ConditionFailed as exc:
            if not exc.old:
                raise RecordNotFound(f"verification {verification_id!r} is not in the catalog") from exc
            return None

    def checkpoint(
        self, verification_id: str, worker: str, progress: dict[str, Any], now: str
    ) -> VerificationRecord | None:
        """Keep a waiting run's progress (and refresh its heartbeat); None when ``worker`` no longer holds it."""
        update = UpdateBuilder()
        update.set("progress", progress)
        update.set("heartbeat_at", now)
        return self._held(verification_id, worker, update)

    def finish(self, verification_id: str, worker: str, result: dict[str, Any]) -> VerificationRecord | None:
        """Record the run's end; None when ``worker`` no longer holds it (a takeover recorded its own)."""
        update = UpdateBuilder()
        problems = list(result.get("problems") or [])
        fields = {**result, "problems": problems[:MAX_PROBLEMS], "problems_total": len(problems)}
        for name, value in fields.items():
            if name in VerificationRecord.__dataclass_fields__ and name not in _NOT_RESULTS:
                update.set(name, value)
        update.remove("progress")
        return self._held(verification_id, worker, update)

    def _held(self, verification_id: str, worker: str, update: UpdateBuilder) -> VerificationRecord | None:
        names = {"#st": "state", "#wk": "worker"}
        values = {":running": {"S": RUNNING}, ":me": {"S": worker}}
        try:
            return self._update(verification_id, update, "#st = :running AND #wk = :me", names, values)
        except ConditionFailed:
            return None

    def _update(
        self,
        verification_id: str,
        update: UpdateBuilder,
        condition: str,
        names: dict[str, str],
        values: dict[str, Any],
    ) -> VerificationRecord:
        item = conditional_update(
            self._client,
            self._table,
            Key=_key(verification_id),
            UpdateExpression=update.expression(),
            ConditionExpression=condition,
            ExpressionAttributeNames={**update.names, **names},
            ExpressionAttributeValues={**update.values, **values},
        )
        return _to_record(item)

    def list_for_policy(self, policy: str, *, limit: int = 20) -> list[VerificationRecord]:
        """A policy's runs, newest first."""
        return list(self._iter_policy(policy, limit))

    def latest(self, policy: str, *, passed_only: bool = False) -> VerificationRecord | None:
        """The newest ended run of a policy (the newest that passed, with ``passed_only``)."""
        for record in self._iter_policy(policy, None):
            if record.state in TERMINAL and (record.passed or not passed_only):
                return record
        return None

    def _iter_policy(self, policy: str, limit: int | None) -> Iterator[VerificationRecord]:
        query: dict[str, Any] = {
            "TableName": self._table,
            "IndexName": GSI1,
            "KeyConditionExpression": "gsi1pk = :pk",
            "ExpressionAttributeValues": {":pk": {"S": GSI1_PREFIX + keys.check_part("policy", policy)}},
            "ScanIndexForward": False,
        }
        returned = 0
        while True:
            page = self._call("query", **query)
            for raw in page.get("Items", []):
                yield _to_record(decode_item(raw))
                returned += 1
                if limit is not None and returned >= limit:
                    return
            if "LastEvaluatedKey" not in page:
                return
            query["ExclusiveStartKey"] = page["LastEvaluatedKey"]

    def _call(self, operation: str, **kwargs: Any) -> dict[str, Any]:
        from botocore.exceptions import ClientError

        try:
            return dict(getattr(self._client, operation)(**kwargs))
        except ClientError as exc:
            raise translate_error(exc, self._table) from exc


def _key(verification_id: str) -> dict[str, dict[str, str]]:
    return {"pk": {"S": PK_PREFIX + keys.check_part("verification id", verification_id)}, "sk": {"S": SK}}


def _to_record(item: dict[str, Any]) -> VerificationRecord:
    fields = VerificationRecord.__dataclass_fields__
    values = {name: item[name] for name in fields if name in item}
    for name in ("timeout_s", "checked", "skipped", "problems_total"):
        if name in values:
            values[name] = int(values[name])
    for name in ("rto_s",):
        if values.get(name) is not None:
            values[name] = float(values[name])
    if values.get("rto_target_minutes") is not None:
        values["rto_target_minutes"] = int(values["rto_target_minutes"])
    if "phases" in values:
        values["phases"] = {k: float(v) for k, v in (values["phases"] or {}).items()}
    return VerificationRecord(**values)
