"""When a backup job without ``"shard"`` is sharded: above the one-shot capacity of one invocation, not below it."""

from __future__ import annotations

from typing import Any

import pytest

from chalicelib.backup.sharded.context import ShardingOptions
from chalicelib.backup.sharded.planner import ShardPlanner
from chalicelib.core.capacity import oneshot_capacity, shard_threshold
from chalicelib.core.jobs import BackupJob, ClusterRef
from chalicelib.core.resources import Resource

CONFIGMAPS = Resource("", "v1", "ConfigMap", "configmaps", True, frozenset({"list"}))
SECRETS = Resource("", "v1", "Secret", "secrets", True, frozenset({"list"}))


class CountingClient:
    """Answers the planner's ``limit=1`` lists with the server's ``remainingItemCount``."""

    def __init__(self, counts: dict[str, int]) -> None:
        self.counts = counts

    def get(self, path: str, params: dict[str, Any]) -> dict[str, Any]:
        assert params == {"limit": 1}
        total = self.counts[path.rsplit("/", 1)[1]]
        meta = {"continue": "next", "remainingItemCount": total - 1} if total > 1 else {}
        return {"items": [{}] * min(total, 1), "metadata": meta}


def planner(options: ShardingOptions | None = None) -> ShardPlanner:
    return ShardPlanner(
        None,
        None,
        None,  # type: ignore[arg-type]
        None,  # type: ignore[arg-type]
        lambda: None,
        clock=lambda: None,  # type: ignore[arg-type, return-value]
        options=options or ShardingOptions(),
        list_workers=2,
        page_size=500,
        writer_options={},
    )


def decide(objects: int, namespaces: int = 200, shard: bool | None = None) -> bool:
    job = BackupJob(job_id="j", cluster=ClusterRef("c", {"type": "kubeconfig"}), shard=shard)
    client = CountingClient({"configmaps": objects // 2, "secrets": objects - objects // 2})
    sharded, counts = planner().wants_shards(job, client, [CONFIGMAPS, SECRETS], namespaces)
    if shard is not False:
        assert sum(counts.values()) == objects  # type: ignore[arg-type]
    return sharded


def test_the_object_threshold_is_the_measured_one_shot_capacity():
    assert ShardingOptions().min_objects == shard_threshold(oneshot_capacity())


@pytest.mark.parametrize(
    ("objects", "sharded"),
    [(30_000, False), (ShardingOptions().min_objects - 1, False), (ShardingOptions().min_objects, True)],
)
def test_a_cluster_at_or_above_the_threshold_is_sharded_and_one_below_is_not(objects, sharded):
    assert decide(objects) is sharded


def test_many_namespaces_alone_shard_only_past_the_measured_count():
    threshold = ShardingOptions().min_namespaces
    assert decide(30_000, namespaces=threshold - 1) is False
    assert decide(30_000, namespaces=threshold) is True


def test_the_jobs_flag_wins_over_the_size():
    assert decide(ShardingOptions().min_objects * 2, shard=False) is False
    assert decide(10, shard=True) is True
