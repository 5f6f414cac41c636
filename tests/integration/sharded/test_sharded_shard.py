"""Running one shard: failing lists and raising shards are retried, a shard a live worker owns waits."""

from __future__ import annotations

import pytest

from chalicelib.backup.errors import RetryLater
from chalicelib.backup.sharded.context import ShardingOptions
from chalicelib.backup.worker import handle_message
from chalicelib.core.jobs import ClusterRef, ShardMessage
from chalicelib.core.shards import ShardState
from tests.support.sharded import (
    ListQueue,
    assert_same_backup,
    make_job,
    manifest_of,
    one_shot_backup,
    shard_records,
    sharded_backup,
)


@pytest.mark.fakeonly
def test_a_shard_whose_list_fails_beyond_retries_is_retried_and_the_backup_completes(
    repos, kubeconfig_path, app_ns, fake_kube, monkeypatch
):
    from chalicelib.kube.client import KubeClient

    monkeypatch.setattr(KubeClient, "_pause", lambda self, *args: None)  # no backoff sleeps in tests
    one, sharded = repos
    expected = one_shot_backup(one, kubeconfig_path, app_ns.namespaces)
    shop = app_ns.namespaces[0]
    # The first attempt's request and all its retries fail; the next attempt of the shard succeeds.
    fake_kube.faults.inject(500, method="GET", path=rf"/namespaces/{shop}/configmaps$", count=6)
    queue = ListQueue()
    job = make_job(kubeconfig_path, "sharded", app_ns.namespaces, shard=True)
    record, results = sharded_backup(sharded, job, queue)

    assert record.state == "Completed", record.failure or record.errors
    assert_same_backup(manifest_of(sharded, record), expected)
    retried = [r for r in results if r["status"] == "retrying"]
    assert [r["namespace"] for r in retried] == [shop] and "ServerError" in retried[0]["error"]
    assert any(m.get("namespace") == shop and delay > 0 for m, delay in queue.sent), "retried after a delay"
    shard = shard_records(sharded).get("sharded", record.backup_id, shop)
    assert shard.state == ShardState.DONE and shard.failures == 1 and "ServerError" in shard.error


def test_a_shard_that_raises_is_retried_and_one_that_keeps_failing_fails_the_backup(
    repos, kubeconfig_path, app_ns, monkeypatch
):
    from chalicelib.backup.items import ItemCollector

    _, sharded = repos
    shop = app_ns.namespaces[0]
    real = ItemCollector.handle_page
    failures = {"left": 1}

    def flaky(self, page, refs, namespace=None):
        if shop in self.namespaces and page.resource.plural == "secrets" and failures["left"] > 0:
            failures["left"] -= 1
            raise RuntimeError("disk on fire")
        return real(self, page, refs, namespace)

    monkeypatch.setattr(ItemCollector, "handle_page", flaky)
    record, results = sharded_backup(
        sharded, make_job(kubeconfig_path, "sharded", app_ns.namespaces, shard=True), ListQueue()
    )
    assert record.state == "Completed", record.failure
    assert [r["status"] for r in results].count("retrying") == 1

    failures["left"] = 10**6  # now every attempt fails
    queue = ListQueue()
    options = ShardingOptions(max_attempts=2)
    record, results = sharded_backup(
        sharded, make_job(kubeconfig_path, "sharded", app_ns.namespaces, shard=True), queue, sharding_options=options
    )
    assert record.state == "Failed"
    assert shop in record.failure and "disk on fire" in record.failure and "2 attempts" in record.failure
    assert record.manifest_key is None
    assert not any(m.get("type") == "commit" for m, _ in queue.sent)
    # A shard of the failed backup delivered late does no work.
    late = ShardMessage(ClusterRef("sharded", {"type": "kubeconfig", "kubeconfig": "unused"}), record.backup_id, shop)
    assert handle_message(sharded.backup_service(queue=ListQueue()), late.to_dict())["status"] == "stopped"


def test_a_shard_owned_by_a_live_worker_is_retried_later(repos, kubeconfig_path, app_ns):
    from datetime import UTC, datetime

    _, sharded = repos
    queue = ListQueue()
    service = sharded.backup_service(queue=queue)
    job = make_job(kubeconfig_path, "sharded", app_ns.namespaces, shard=True)
    backup_id = handle_message(service, job.to_dict())["backup_id"]
    shop = app_ns.namespaces[0]
    now = datetime.now(UTC)
    _, claimed = shard_records(sharded).claim("sharded", backup_id, shop, "other-worker", now=now, stale_before=now)
    assert claimed
    with pytest.raises(RetryLater):
        handle_message(service, ShardMessage(job.cluster, backup_id, shop).to_dict())
    assert shard_records(sharded).get("sharded", backup_id, shop).run_id == "other-worker"
