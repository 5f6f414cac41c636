"""Restore job records: key patterns and item encoding (docs/catalog.md lists the keys).

The job's state machine is ``core.restore_jobs``; ``RestoreCatalog`` enforces it with conditional writes.

Items of one restore share the partition ``RESTORE#<restore id>``:

- ``sk = RESTORE``: the job record (request, state, progress, counts, capped failures, plan, timings);
- ``sk = DONE#<seq>``: one chunk of object keys the worker finished (any outcome), written in the same transaction
  as the counters they add to, so a resumed worker skips exactly what is counted.

Idempotency records live at ``pk = IDEMPOTENCY#<sha256 of the key>, sk = IDEMPOTENCY`` (hashed: the key is
client-chosen text and may contain '#') and expire through the table's TTL attribute.
"""

from __future__ import annotations

import dataclasses
import hashlib
from dataclasses import dataclass, field
from typing import Any

from chalicelib.catalog.dynamo import decode_item, encode
from chalicelib.catalog.errors import AlreadyExists, CatalogError
from chalicelib.catalog.keys import check_part
from chalicelib.catalog.schema import GSI1_PK, GSI1_SK
from chalicelib.core.restore_jobs import RestoreState

ITEM_TYPE = "restore"
RECORD_SK = "RESTORE"
DONE_PREFIX = "DONE#"
IDEMPOTENCY_SK = "IDEMPOTENCY"
# Failures are kept in the record, which must stay far below DynamoDB's 400 KB item limit: the first ones are
# what an operator reads first anyway, and counts say how many more there were.
MAX_FAILURES = 500
MAX_ERROR_TEXT = 256
MAX_PLAN_ITEMS = 200


class RestoreStateConflict(CatalogError):
    """A restore record was not in a state (or not owned by the worker) that allows the write."""

    def __init__(self, restore_id: str, current: str | None, wanted: str) -> None:
        super().__init__(f"restore {restore_id} is {current or 'missing'}; refused: {wanted}")
        self.restore_id = restore_id
        self.current = current


class IdempotencyKeyReused(AlreadyExists):
    """An idempotency key was already used for a different request."""


@dataclass(frozen=True)
class RestoreRecord:
    """The catalog's view of one restore job."""

    restore_id: str
    state: RestoreState
    backup_cluster: str
    backup_id: str
    target_cluster: dict[str, Any]  # ClusterRef.to_dict(): name + auth reference (never inline credentials)
    options: dict[str, Any]  # RestoreOptions.to_dict()
    dry_run: bool = False
    created_at: str = ""
    enqueued_at: str | None = None
    started_at: str | None = None
    heartbeat_at: str | None = None
    finished_at: str | None = None
    worker: str | None = None
    attempts: int = 0  # claims, continuations included
    retries: int = 0  # releases after a transient failure
    done: int = 0
    total: int | None = None
    counts: dict[str, int] = field(default_factory=dict)  # per outcome: created, updated, skipped, failed, ...
    failures: list[dict[str, str]] = field(default_factory=list)  # the first MAX_FAILURES
    failure: str | None = None  # why the whole job failed
    plan: dict[str, Any] | None = None  # dry runs: summary + the first MAX_PLAN_ITEMS items
    warnings: list[str] = field(default_factory=list)  # e.g. a CRD that did not become Established in time
    event_sent_at: str | None = None
    version: int = 1

    @property
    def failures_total(self) -> int:
        return int(self.counts.get("failed", 0))


@dataclass(frozen=True)
class DoneMarkers:
    """What a worker already finished: object keys plus the next free chunk number."""

    keys: frozenset[str]
    next_seq: int


_RECORD_FIELDS = frozenset(f.name for f in dataclasses.fields(RestoreRecord))


def restore_pk(restore_id: str) -> str:
    return f"RESTORE#{check_part('restore id', restore_id)}"


def record_key(restore_id: str) -> dict[str, dict[str, str]]:
    return {"pk": {"S": restore_pk(restore_id)}, "sk": {"S": RECORD_SK}}


def done_key(restore_id: str, seq: int) -> dict[str, dict[str, str]]:
    return {"pk": {"S": restore_pk(restore_id)}, "sk": {"S": f"{DONE_PREFIX}{seq:08d}"}}


def idempotency_key(key: str) -> dict[str, dict[str, str]]:
    if not key:
        raise ValueError("an idempotency key must be non-empty")
    digest = hashlib.sha256(key.encode()).hexdigest()
    return {"pk": {"S": f"IDEMPOTENCY#{digest}"}, "sk": {"S": IDEMPOTENCY_SK}}


def state_gsi1pk(state: RestoreState | str) -> str:
    return f"RESTORES#STATE#{state}"


def new_item(record: RestoreRecord) -> dict[str, Any]:
    item: dict[str, Any] = {
        **record_key(record.restore_id),
        "type": {"S": ITEM_TYPE},
        GSI1_PK: {"S": state_gsi1pk(record.state)},
        GSI1_SK: {"S": record.restore_id},
        "updated_at": {"S": record.created_at},
    }
    for name, value in dataclasses.asdict(record).items():
        if value is not None:
            item[name] = encode(str(value) if isinstance(value, RestoreState) else value)
    return item


def to_record(item: dict[str, Any]) -> RestoreRecord:
    """A record from an item in DynamoDB's wire format."""
    return record_from(decode_item(item))


def record_from(item: dict[str, Any]) -> RestoreRecord:
    """A record from a decoded item."""
    values = {k: v for k, v in item.items() if k in _RECORD_FIELDS}
    values["state"] = RestoreState(values["state"])
    return RestoreRecord(**values)


def cap_failures(failures: list[dict[str, Any]], room: int) -> list[dict[str, str]]:
    """At most ``room`` failures, each value cut to MAX_ERROR_TEXT characters."""
    return [{k: str(v)[:MAX_ERROR_TEXT] for k, v in f.items()} for f in failures[: max(0, room)]]
