"""The shard planner: when a job is sharded, work items of several namespaces, adopting a dead coordinator's plan."""

from __future__ import annotations

import pytest

from chalicelib.backup.sharded.context import ShardingOptions
from chalicelib.backup.worker import handle_message
from tests.support.sharded import (
    ListQueue,
    assert_same_backup,
    assert_self_contained,
    drain,
    make_job,
    manifest_of,
    one_shot_backup,
    shard_records,
    sharded_backup,
)


def test_a_work_item_of_several_namespaces_gives_the_same_backup(repos, kubeconfig_path, app_ns):
    one, sharded = repos
    expected = one_shot_backup(one, kubeconfig_path, app_ns.namespaces)
    queue = ListQueue()
    job = make_job(kubeconfig_path, "sharded", app_ns.namespaces, shard=True)
    options = ShardingOptions(item_share=1.0)  # every namespace fits one item
    record, results = sharded_backup(sharded, job, queue, sharding_options=options)

    assert record.state == "Completed", record.failure or record.errors
    manifest = manifest_of(sharded, record)
    assert_same_backup(manifest, expected)
    first = sorted(app_ns.namespaces)[0]
    kinds = [(m.get("type"), m.get("namespace")) for m, _ in queue.sent]
    assert sorted(kinds) == sorted([("shard", first), ("shard", ""), ("commit", None)])
    shards = {s.namespace: s for s in shard_records(sharded).list_shards("sharded", record.backup_id)}
    assert set(shards) == {"", first} and shards[first].namespaces == tuple(sorted(app_ns.namespaces))
    result = shards[first].result
    assert result is not None and set(result.trees) == set(app_ns.namespaces)
    assert record.stats["shards"] == 2
    assert_self_contained(sharded, manifest)


def test_a_job_without_the_shard_flag_is_sharded_by_its_size(repos, kubeconfig_path, app_ns):
    _, sharded = repos
    job = make_job(kubeconfig_path, "sharded", app_ns.namespaces, shard=None)
    small = sharded.backup_service(queue=ListQueue()).run(job).record
    assert small.state == "Completed", "two namespaces are far below the default thresholds"
    queue = ListQueue()
    options = ShardingOptions(min_namespaces=len(app_ns.namespaces))
    job = make_job(kubeconfig_path, "sharded", app_ns.namespaces, shard=None)
    record, _ = sharded_backup(sharded, job, queue, sharding_options=options)
    assert record.state == "Completed" and record.stats["shards"] == len(app_ns.namespaces) + 1
    assert_same_backup(manifest_of(sharded, record), manifest_of(sharded, small))


def test_a_duplicate_job_adopts_the_plan_of_a_coordinator_that_died(repos, kubeconfig_path, app_ns, monkeypatch):
    from datetime import UTC, datetime, timedelta

    from chalicelib.catalog.shards import ShardCatalog

    one, sharded = repos
    expected = one_shot_backup(one, kubeconfig_path, app_ns.namespaces)
    real_seal = ShardCatalog.seal

    def die(self, *args, **kwargs):
        raise SystemExit("the coordinator's Lambda timed out")  # not an Exception: nothing records a failure

    monkeypatch.setattr(ShardCatalog, "seal", die)
    queue = ListQueue()
    job = make_job(kubeconfig_path, "sharded", app_ns.namespaces, shard=True)
    with pytest.raises(SystemExit):
        handle_message(sharded.backup_service(queue=queue), job.to_dict())
    assert not queue.sent
    monkeypatch.setattr(ShardCatalog, "seal", real_seal)
    record = sharded.catalog().list("sharded")[0][0]
    assert record.state == "Running"

    # SQS delivers the job again; the record's heartbeat is stale by then, so this delivery takes over.
    later = datetime.now(UTC) + timedelta(minutes=10)
    service = sharded.backup_service(queue=queue, clock=lambda: later)
    again = handle_message(service, job.to_dict())
    assert again["backup_id"] == record.backup_id and again["status"] == "Running"
    assert sorted(m["namespace"] for m in queue.messages) == sorted(app_ns.namespaces)
    drain(service, queue)
    final = sharded.catalog().get("sharded", record.backup_id)
    assert final.state == "Completed", final.failure
    assert_same_backup(manifest_of(sharded, final), expected)
