"""What a sharded backup waits for after a shard is done: the one decision in ``backup/sharded/context.py``."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from chalicelib.backup.commit import build_manifest
from chalicelib.backup.sharded.context import NextStep
from chalicelib.catalog.errors import StaleState
from chalicelib.core.ids import BlobId
from chalicelib.core.jobs import ClusterRef
from chalicelib.core.models import BackupRecord, BackupState
from chalicelib.core.shards import ShardRecord, ShardState
from chalicelib.core.trees import CLUSTER_SCOPE

NOW = datetime(2026, 3, 1, 3, 0, tzinfo=UTC)
REF = ClusterRef("prod", {"type": "eks", "cluster_name": "prod", "region": "eu-west-1"})


class FakeShards:
    def __init__(self, remaining: int | None, cluster_state: ShardState | None, counted: int | None = 0) -> None:
        self._remaining = remaining
        self._cluster = cluster_state
        self._counted = counted
        self.counted: list[int] = []

    def count_done(self, cluster: str, backup_id: str, index: int, *, now: datetime) -> int | None:
        if self._counted == -1:
            raise StaleState(cluster, backup_id, "Failed", "a shard counted")
        self.counted.append(index)
        return self._counted

    def remaining(self, cluster: str, backup_id: str) -> int | None:
        return self._remaining

    def get(self, cluster: str, backup_id: str, namespace: str) -> ShardRecord | None:
        return None if self._cluster is None else _shard(CLUSTER_SCOPE, self._cluster)


class FakeQueue:
    def __init__(self) -> None:
        self.sent: list[dict[str, Any]] = []

    def send(self, body: dict[str, Any], delay_s: int = 0) -> None:
        self.sent.append(body)

    def send_many(self, bodies: Any) -> None:
        self.sent.extend(bodies)


def _shard(namespace: str, state: ShardState, index: int | None = None) -> ShardRecord:
    return ShardRecord(namespace=namespace, state=state, index=index)


def _step(shards: FakeShards) -> tuple[NextStep, FakeQueue]:
    queue = FakeQueue()
    return NextStep(shards, queue, lambda: NOW), queue


def test_the_last_work_item_sends_the_cluster_shard() -> None:
    shards = FakeShards(remaining=5, cluster_state=ShardState.PENDING, counted=0)
    step, queue = _step(shards)
    assert step.advance(REF, "b1", _shard("shop", ShardState.DONE, index=3)) == "cluster"
    assert shards.counted == [3]
    assert [m.get("namespace") for m in queue.sent] == [CLUSTER_SCOPE]


def test_a_work_item_with_others_left_waits() -> None:
    step, queue = _step(FakeShards(remaining=None, cluster_state=ShardState.PENDING, counted=2))
    assert step.advance(REF, "b1", _shard("shop", ShardState.DONE, index=0)) == "waiting"
    assert queue.sent == []


def test_the_cluster_shard_sends_the_commit() -> None:
    step, queue = _step(FakeShards(remaining=0, cluster_state=ShardState.DONE))
    assert step.advance(REF, "b1", _shard(CLUSTER_SCOPE, ShardState.DONE)) == "commit"
    assert [m["type"] for m in queue.sent] == ["commit"]


@pytest.mark.parametrize(
    ("remaining", "cluster_state", "expected", "sent"),
    [
        (None, None, "waiting", 0),
        (2, ShardState.PENDING, "waiting", 0),
        (0, None, "no-plan", 0),
        (0, ShardState.DONE, "commit", 1),
        (0, ShardState.FAILED, "failed", 0),
        (0, ShardState.RUNNING, "cluster", 1),
    ],
)
def test_without_a_finished_shard_the_backup_record_decides(
    remaining: int | None, cluster_state: ShardState | None, expected: str, sent: int
) -> None:
    step, queue = _step(FakeShards(remaining=remaining, cluster_state=cluster_state))
    assert step.advance(REF, "b1") == expected
    assert len(queue.sent) == sent


def test_a_work_item_counted_before_asks_the_backup_record() -> None:
    step, _ = _step(FakeShards(remaining=0, cluster_state=ShardState.DONE, counted=None))
    assert step.advance(REF, "b1", _shard("shop", ShardState.DONE, index=1)) == "commit"


def test_a_backup_no_longer_running_is_stale() -> None:
    step, queue = _step(FakeShards(remaining=0, cluster_state=ShardState.PENDING, counted=-1))
    with pytest.raises(StaleState):
        step.advance(REF, "b1", _shard("shop", ShardState.DONE, index=1))
    assert queue.sent == []


def test_the_manifest_counts_the_root_tree_and_derives_counts() -> None:
    record = BackupRecord("prod", "b1", BackupState.RUNNING, "job-1", policy="nightly", parent="b0")
    manifest = build_manifest(
        record,
        policy="nightly",
        started_at="2026-03-01T02:59:00Z",
        finished_at=NOW,
        kubernetes_version="v1.30.0",
        scope={},
        root_tree=BlobId("a" * 64),
        trees=2,
        objects=7,
        namespaces=1,
        kinds={"v1/Secret": 2, "v1/ConfigMap": 5},
        index_files=["i1"],
        stats={"blobs_new": 4},
        errors=[{"resource": "pods", "error": "boom"}],
    )
    assert manifest.counts == {"objects": 7, "blobs_new": 4, "trees": 3, "namespaces": 1, "errors": 1}
    assert list(manifest.kinds) == ["v1/ConfigMap", "v1/Secret"]
    assert (manifest.parent, manifest.finished_at) == ("b0", "2026-03-01T03:00:00Z")
