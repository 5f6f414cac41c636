"""Shard records of sharded backups against emulated DynamoDB (moto): forward-only states and the counter."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from chalicelib.catalog import BackupCatalog, StaleState
from chalicelib.catalog.errors import ShardConflict
from chalicelib.catalog.shards import ShardCatalog
from chalicelib.core.models import BackupState
from chalicelib.core.shards import ShardResult, ShardState

NOW = datetime(2026, 11, 22, 10, 15, tzinfo=UTC)
BID = "20261122T101500Z-3fa9c2"
NAMESPACES = ["a", "b", "c"]


def result(objects: int = 1) -> ShardResult:
    return ShardResult(trees={}, objects=objects, kinds={"ConfigMap": objects}, index_files=())


@pytest.fixture
def catalogs(dynamodb: Any, table: str) -> tuple[BackupCatalog, ShardCatalog]:
    backups, shards = BackupCatalog(dynamodb, table), ShardCatalog(dynamodb, table)
    backups.claim_job("job-1", "c1", BID, now=NOW)
    backups.transition("c1", BID, BackupState.RUNNING, now=NOW)
    plan, created = shards.create_plan("c1", BID, {"mode": "auto"}, now=NOW)
    assert created and plan["state"] == "Planning"
    shards.add_shards("c1", BID, NAMESPACES, seed={"key": "seed", "seq": 0}, now=NOW, fresh=True)
    assert shards.seal("c1", BID, total=len(NAMESPACES), now=NOW)
    return backups, shards


def claim(shards: ShardCatalog, namespace: str, run_id: str, at: datetime = NOW) -> tuple[Any, bool]:
    return shards.claim("c1", BID, namespace, run_id, now=at, stale_before=at - timedelta(minutes=5))


def test_the_plan_is_stored_once_and_sealed_once(catalogs):
    backups, shards = catalogs
    existing, created = shards.create_plan("c1", BID, {"mode": "on"}, now=NOW)
    assert not created and existing["plan"] == {"mode": "auto"} and existing["state"] == "Planned"
    assert not shards.seal("c1", BID, total=99, now=NOW)
    assert shards.remaining("c1", BID) == 3
    listed = shards.list_shards("c1", BID)
    assert sorted(s.namespace for s in listed) == ["", "a", "b", "c"]
    assert all(s.state == ShardState.PENDING for s in listed)
    assert shards.get("c1", BID, "").checkpoint == {"key": "seed", "seq": 0}
    # The shard items never show up as backups of the cluster.
    assert [r.backup_id for r in backups.list("c1")[0]] == [BID]


def finish(shards: ShardCatalog, ns: str, run_id: str) -> int | None:
    shard, ok = claim(shards, ns, run_id)
    assert ok
    shards.complete("c1", BID, ns, run_id, result(), now=NOW)
    return shards.count_done("c1", BID, shard.index, now=NOW)


def test_the_counter_reaches_zero_exactly_once_and_only_for_the_last_shard(catalogs, dynamodb, table):
    _, shards = catalogs
    assert sorted(shards.get("c1", BID, ns).index for ns in NAMESPACES) == [0, 1, 2]
    assert shards.get("c1", BID, "").index is None
    assert [finish(shards, ns, f"run-{ns}") for ns in NAMESPACES] == [2, 1, 0]
    assert shards.remaining("c1", BID) == 0
    done = shards.get("c1", BID, "b")
    assert done.state == ShardState.DONE and done.result == result()
    # Counting a shard again (its redelivery after a crash) changes nothing.
    assert shards.count_done("c1", BID, done.index, now=NOW) is None
    assert shards.remaining("c1", BID) == 0
    shards.forget_done("c1", BID, now=NOW)
    key = {"pk": {"S": "CLUSTER#c1"}, "sk": {"S": f"BACKUP#{BID}"}}
    assert "shards_done" not in dynamodb.get_item(TableName=table, Key=key)["Item"]


def test_a_shard_completes_once(catalogs):
    _, shards = catalogs
    finish(shards, "a", "run-1")
    with pytest.raises(ShardConflict):
        shards.complete("c1", BID, "a", "run-1", result(), now=NOW)
    assert shards.remaining("c1", BID) == 2
    current, ok = claim(shards, "a", "run-2")
    assert not ok and current.state == ShardState.DONE


def test_a_live_shard_is_not_taken_over_but_a_stale_one_is(catalogs):
    _, shards = catalogs
    claim(shards, "a", "run-1")
    current, ok = claim(shards, "a", "run-2", NOW + timedelta(minutes=1))
    assert not ok and current.run_id == "run-1"
    taken, ok = claim(shards, "a", "run-3", NOW + timedelta(minutes=6))
    assert ok and taken.run_id == "run-3" and taken.runs == 2
    with pytest.raises(ShardConflict):
        shards.heartbeat("c1", BID, "a", "run-1", now=NOW)
    with pytest.raises(ShardConflict):
        shards.complete("c1", BID, "a", "run-1", result(), now=NOW)


def test_release_keeps_a_checkpoint_and_counts_failed_attempts(catalogs):
    _, shards = catalogs
    claim(shards, "a", "run-1")
    released = shards.release("c1", BID, "a", "run-1", now=NOW, checkpoint={"key": "k1", "seq": 1})
    assert released.state == ShardState.PENDING and released.failures == 0 and released.run_id is None
    claim(shards, "a", "run-2")
    released = shards.release("c1", BID, "a", "run-2", now=NOW, error="ServerError: boom")
    assert released.failures == 1 and released.error == "ServerError: boom"
    assert released.checkpoint == {"key": "k1", "seq": 1}, "a failed attempt goes on from the last checkpoint"
    claim(shards, "a", "run-3")
    shards.fail("c1", BID, "a", "run-3", now=NOW, error="still broken")
    failed = shards.get("c1", BID, "a")
    assert failed.state == ShardState.FAILED and failed.failures == 2
    assert not claim(shards, "a", "run-4")[1]


def test_no_shard_is_counted_into_a_backup_that_is_no_longer_running(catalogs):
    backups, shards = catalogs
    shard, _ = claim(shards, "a", "run-1")
    backups.transition("c1", BID, BackupState.FAILED, now=NOW, failure="another shard failed")
    shards.complete("c1", BID, "a", "run-1", result(), now=NOW)
    with pytest.raises(StaleState):
        shards.count_done("c1", BID, shard.index, now=NOW)
    assert shards.remaining("c1", BID) == 3


def test_adding_shards_again_never_resets_one(catalogs):
    _, shards = catalogs
    finish(shards, "a", "run-1")
    shards.add_shards("c1", BID, NAMESPACES + ["d"], seed={"key": "other", "seq": 0}, now=NOW, fresh=False)
    assert shards.get("c1", BID, "a").state == ShardState.DONE
    assert shards.get("c1", BID, "d").state == ShardState.PENDING
    assert shards.get("c1", BID, "").checkpoint == {"key": "seed", "seq": 0}
