"""Restore job records in the catalog table (moto): idempotent creation, claims, checkpoints, forward-only states."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from chalicelib.catalog.restore_records import (
    MAX_ERROR_TEXT,
    MAX_FAILURES,
    IdempotencyKeyReused,
    RestoreRecord,
    RestoreStateConflict,
)
from chalicelib.catalog.restores import IDEMPOTENCY_TTL, RestoreCatalog
from chalicelib.core.restore_jobs import RestoreState

T0 = datetime(2026, 11, 22, 10, 0, tzinfo=UTC)
STALE = timedelta(minutes=5)


@pytest.fixture
def catalog(dynamodb: Any, table: str) -> RestoreCatalog:
    return RestoreCatalog(dynamodb, table)


def pending(restore_id: str = "r-20261122T100000Z-0000000a") -> RestoreRecord:
    return RestoreRecord(
        restore_id=restore_id,
        state=RestoreState.PENDING,
        backup_cluster="prod",
        backup_id="20261122T090000Z-abcdef",
        target_cluster={"name": "dr", "auth": {"type": "eks", "cluster_name": "dr"}},
        options={"existing_policy": "skip", "namespace_mapping": {"a": "b"}},
        created_at="2026-11-22T10:00:00.000Z",
    )


def created(catalog: RestoreCatalog, record: RestoreRecord | None = None) -> RestoreRecord:
    record = record or pending()
    stored, new = catalog.create(record, idem_key=record.restore_id, request_hash="h", now=T0)
    assert new
    return stored


def test_create_stores_typed_values(catalog: RestoreCatalog) -> None:
    record = created(catalog)
    assert catalog.get(record.restore_id) == record


def test_same_key_same_request_returns_the_first_job(catalog: RestoreCatalog) -> None:
    first = pending("r-20261122T100000Z-00000001")
    catalog.create(first, idem_key="k", request_hash="h1", now=T0)
    again, new = catalog.create(pending("r-20261122T100001Z-00000002"), idem_key="k", request_hash="h1", now=T0)
    assert not new and again.restore_id == first.restore_id
    with pytest.raises(Exception, match="not found"):
        catalog.get("r-20261122T100001Z-00000002")  # the transaction wrote neither item


def test_same_key_other_request_is_refused(catalog: RestoreCatalog) -> None:
    catalog.create(pending("r-20261122T100000Z-00000001"), idem_key="k", request_hash="h1", now=T0)
    with pytest.raises(IdempotencyKeyReused):
        catalog.create(pending("r-20261122T100001Z-00000002"), idem_key="k", request_hash="h2", now=T0)


def test_an_expired_key_can_be_used_again(catalog: RestoreCatalog) -> None:
    catalog.create(pending("r-20261122T100000Z-00000001"), idem_key="k", request_hash="h1", now=T0)
    later = T0 + IDEMPOTENCY_TTL + timedelta(seconds=1)  # TTL deletion is lazy: the item is still there
    record, new = catalog.create(pending("r-20261123T100001Z-00000002"), idem_key="k", request_hash="h2", now=later)
    assert new and record.restore_id == "r-20261123T100001Z-00000002"


def test_keys_with_separators_are_hashed_not_parsed(catalog: RestoreCatalog, dynamodb: Any, table: str) -> None:
    catalog.create(pending(), idem_key="a#RESTORE#b", request_hash="h", now=T0)
    pks = {i["pk"]["S"] for i in dynamodb.scan(TableName=table)["Items"]}
    assert any(pk.startswith("IDEMPOTENCY#") and "RESTORE" not in pk for pk in pks)


def test_claim_once_then_duplicates_leave_a_live_worker_alone(catalog: RestoreCatalog) -> None:
    record = created(catalog)
    claimed, ok = catalog.claim(record.restore_id, "w1", T0, stale_after=STALE)
    assert ok and claimed.state == "Running" and claimed.worker == "w1" and claimed.attempts == 1
    current, ok = catalog.claim(record.restore_id, "w2", T0 + timedelta(minutes=4), stale_after=STALE)
    assert not ok and current.worker == "w1"


def test_a_stale_claim_is_taken_over_and_the_old_worker_is_fenced(catalog: RestoreCatalog) -> None:
    record = created(catalog)
    catalog.claim(record.restore_id, "w1", T0, stale_after=STALE)
    taken, ok = catalog.claim(record.restore_id, "w2", T0 + timedelta(minutes=6), stale_after=STALE)
    assert ok and taken.worker == "w2" and taken.attempts == 2 and taken.started_at == "2026-11-22T10:00:00.000Z"
    with pytest.raises(RestoreStateConflict):
        catalog.heartbeat(record.restore_id, "w1", T0 + timedelta(minutes=7))
    with pytest.raises(RestoreStateConflict):
        catalog.record_results(
            record.restore_id, "w1", seq=0, keys=["x"], outcomes={"created": 1}, failures=[], stored_failures=0, now=T0
        )
    with pytest.raises(RestoreStateConflict):
        catalog.finish(record.restore_id, "w1", RestoreState.COMPLETED, T0)
    assert catalog.done_markers(record.restore_id).keys == frozenset()


def test_release_lets_the_next_delivery_claim_at_once(catalog: RestoreCatalog) -> None:
    record = created(catalog)
    catalog.claim(record.restore_id, "w1", T0, stale_after=STALE)
    catalog.release(record.restore_id, "w1", T0)
    _, ok = catalog.claim(record.restore_id, "w2", T0 + timedelta(seconds=1), stale_after=STALE)
    assert ok


def test_results_checkpoint_markers_and_counters_together(catalog: RestoreCatalog) -> None:
    record = created(catalog)
    catalog.claim(record.restore_id, "w1", T0, stale_after=STALE)
    catalog.record_results(
        record.restore_id,
        "w1",
        seq=0,
        keys=["a", "b"],
        outcomes={"created": 2},
        failures=[],
        stored_failures=0,
        now=T0,
        total=5,
    )
    stored = catalog.record_results(
        record.restore_id,
        "w1",
        seq=1,
        keys=["c", "d"],
        outcomes={"created": 1, "failed": 1},
        failures=[{"key": "d", "error": "x" * 1000}],
        stored_failures=0,
        now=T0,
    )
    assert stored == 1
    current = catalog.get(record.restore_id)
    assert current.done == 4 and current.total == 5
    assert current.counts == {"created": 3, "failed": 1} and current.failures_total == 1
    assert current.failures == [{"key": "d", "error": "x" * MAX_ERROR_TEXT}]
    markers = catalog.done_markers(record.restore_id)
    assert markers.keys == {"a", "b", "c", "d"} and markers.next_seq == 2
    with pytest.raises(RestoreStateConflict):  # a chunk number is written once
        catalog.record_results(
            record.restore_id, "w1", seq=1, keys=["e"], outcomes={"created": 1}, failures=[], stored_failures=1, now=T0
        )
    assert catalog.get(record.restore_id).done == 4


def test_failures_kept_in_the_record_are_capped(catalog: RestoreCatalog) -> None:
    record = created(catalog)
    catalog.claim(record.restore_id, "w1", T0, stale_after=STALE)
    failures = [{"key": f"k{i}", "error": "boom"} for i in range(MAX_FAILURES + 50)]
    stored = catalog.record_results(
        record.restore_id,
        "w1",
        seq=0,
        keys=[f["key"] for f in failures],
        outcomes={"failed": len(failures)},
        failures=failures,
        stored_failures=0,
        now=T0,
    )
    assert stored == MAX_FAILURES
    current = catalog.get(record.restore_id)
    assert len(current.failures) == MAX_FAILURES and current.failures_total == MAX_FAILURES + 50
    assert (
        catalog.record_results(
            record.restore_id,
            "w1",
            seq=1,
            keys=["z"],
            outcomes={"failed": 1},
            failures=[{"key": "z", "error": "e"}],
            stored_failures=stored,
            now=T0,
        )
        == 0
    )


@pytest.mark.parametrize("final", [RestoreState.COMPLETED, RestoreState.PARTIALLY_FAILED, RestoreState.FAILED])
def test_a_finished_restore_never_moves_again(catalog: RestoreCatalog, final: RestoreState) -> None:
    record = created(catalog)
    catalog.claim(record.restore_id, "w1", T0, stale_after=STALE)
    done = catalog.finish(record.restore_id, "w1", final, T0 + timedelta(seconds=3), failure="f" if final else None)
    assert done.state == final and done.finished_at
    _, ok = catalog.claim(record.restore_id, "w2", T0 + timedelta(days=1), stale_after=STALE)
    assert not ok
    with pytest.raises(RestoreStateConflict):
        catalog.finish(record.restore_id, "w1", RestoreState.COMPLETED, T0)
    assert catalog.get(record.restore_id).state == final


def test_a_pending_restore_cannot_finish_without_a_claim(catalog: RestoreCatalog) -> None:
    record = created(catalog)
    with pytest.raises(RestoreStateConflict):
        catalog.finish(record.restore_id, "w1", RestoreState.COMPLETED, T0)


def test_a_dry_run_plan_is_stored(catalog: RestoreCatalog) -> None:
    record = created(catalog)
    catalog.claim(record.restore_id, "w1", T0, stale_after=STALE)
    plan = {"counts": {"create": 2, "update": 0, "skip": 1}, "items": [{"key": "configmaps/a/b", "action": "create"}]}
    catalog.finish(record.restore_id, "w1", RestoreState.COMPLETED, T0, plan=plan)
    assert catalog.get(record.restore_id).plan == plan
