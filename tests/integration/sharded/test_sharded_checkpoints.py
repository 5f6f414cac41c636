"""Shard checkpoints: resuming page by page or inside a work item gives the same tree; an expired list restarts."""

from __future__ import annotations

import pytest

from chalicelib.backup.sharded.context import ShardingOptions
from chalicelib.backup.worker import handle_message
from tests.conftest import TEST_BUCKET
from tests.support.sharded import (
    ListQueue,
    assert_same_backup,
    assert_self_contained,
    drain,
    make_job,
    manifest_of,
    one_shot_backup,
    sharded_backup,
)


@pytest.mark.fakeonly
def test_checkpointing_every_page_gives_the_same_tree(repos, kubeconfig_path, big_namespace, fake_kube):
    one, sharded = repos
    expected = one_shot_backup(one, kubeconfig_path, [big_namespace])
    queue = ListQueue()
    job = make_job(kubeconfig_path, "sharded", [big_namespace], shard=True)
    # No time at all: every invocation handles one page, checkpoints and sends itself again.
    record, results = sharded_backup(sharded, job, queue, page_size=40, remaining_ms=lambda: 0)

    assert record.state == "Completed", record.failure or record.errors
    manifest = manifest_of(sharded, record)
    assert_same_backup(manifest, expected)
    continued = [r for r in results if r["status"] == "continued" and r["namespace"] == big_namespace]
    assert len(continued) >= 300 // 40, "one checkpoint per page of ConfigMaps at least"
    assert [r["seq"] for r in continued] == list(range(1, len(continued) + 1))
    s3 = sharded.client("s3")
    prefix = f"sharded/lifeboat/v1/checkpoints/sharded/{record.backup_id}/"
    listed = s3.list_objects_v2(Bucket=TEST_BUCKET, Prefix=prefix)
    keys = [o["Key"] for o in listed.get("Contents", [])]
    assert sum(f"/{big_namespace}/" in k for k in keys) == len(continued)
    # Every checkpoint flushed its packs into an index file, and the manifest names them all.
    assert_self_contained(sharded, manifest)


@pytest.mark.fakeonly
def test_checkpoints_inside_a_work_item_give_the_same_tree(repos, kubeconfig_path, app_ns, fake_kube):
    one, sharded = repos
    expected = one_shot_backup(one, kubeconfig_path, app_ns.namespaces)
    queue = ListQueue()
    job = make_job(kubeconfig_path, "sharded", app_ns.namespaces, shard=True)
    options = ShardingOptions(item_share=1.0)
    # No time at all: every invocation handles one page, checkpoints and sends itself again, across namespaces.
    record, results = sharded_backup(sharded, job, queue, sharding_options=options, page_size=2, remaining_ms=lambda: 0)

    assert record.state == "Completed", record.failure or record.errors
    assert_same_backup(manifest_of(sharded, record), expected)
    first = sorted(app_ns.namespaces)[0]
    continued = [r for r in results if r["status"] == "continued" and r["namespace"] == first]
    assert [r["seq"] for r in continued] == list(range(1, len(continued) + 1))
    from chalicelib.backup.sharded.checkpoints import CheckpointStore

    store = CheckpointStore(sharded.repository().store)
    prefix = f"sharded/lifeboat/v1/checkpoints/sharded/{record.backup_id}/{first}/"
    listed = sharded.client("s3").list_objects_v2(Bucket=TEST_BUCKET, Prefix=prefix)
    keys = [o["Key"].removeprefix("sharded/lifeboat/v1/") for o in listed.get("Contents", [])]
    positions = {store.get(key).position for key in keys}
    assert positions == set(range(len(app_ns.namespaces))), "checkpoints in every namespace of the item"


@pytest.mark.fakeonly
def test_an_expired_continue_token_on_resume_restarts_that_type(repos, kubeconfig_path, big_namespace, fake_kube):
    one, sharded = repos
    expected = one_shot_backup(one, kubeconfig_path, [big_namespace])
    queue = ListQueue()
    service = sharded.backup_service(queue=queue, page_size=40)
    job = make_job(kubeconfig_path, "sharded", [big_namespace], shard=True)
    handle_message(service, job.to_dict())
    ticks = {"n": 0}

    def budget() -> int:
        ticks["n"] += 1
        return 0 if ticks["n"] <= 4 else 10**9  # a couple of checkpoints, then plenty of time

    first = drain(service, queue, remaining_ms=budget, stop=lambda m: ticks["n"] >= 3)
    assert any(r["status"] == "continued" for r in first)
    fake_kube.expire_continue_tokens()  # the token in the checkpoint now answers 410
    fake_kube.clear_requests()
    drain(service, queue, remaining_ms=budget)
    record = sharded.catalog().get("sharded", first[0]["backup_id"])
    assert record.state == "Completed", record.failure
    assert_same_backup(manifest_of(sharded, record), expected)
    gone = [r for r in fake_kube.requests if r.status == 410]
    assert gone and "/configmaps" in gone[0].path
