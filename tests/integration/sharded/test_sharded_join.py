"""Joining shards into one commit: not before every shard is done, duplicates harmless, a lost pack fails it."""

from __future__ import annotations

from collections import deque
from typing import Any

from chalicelib.backup.worker import handle_message
from chalicelib.core.jobs import CommitMessage, ShardMessage
from tests.conftest import TEST_BUCKET
from tests.support.sharded import ListQueue, drain, make_job, shard_records


def test_the_backup_is_not_completed_while_a_shard_is_pending(repos, kubeconfig_path, app_ns):
    _, sharded = repos
    queue = ListQueue()
    service = sharded.backup_service(queue=queue)
    job = make_job(kubeconfig_path, "sharded", app_ns.namespaces, shard=True)
    backup_id = handle_message(service, job.to_dict())["backup_id"]
    last = app_ns.namespaces[-1]
    held = [m for m in queue.messages if m.get("namespace") == last]
    queue.messages = deque(m for m in queue.messages if m.get("namespace") != last)
    drain(service, queue)

    record = sharded.catalog().get("sharded", backup_id)
    assert record.state == "Running" and record.manifest_key is None
    assert shard_records(sharded).remaining("sharded", backup_id) == 1
    # A commit that arrives early (a stray duplicate) waits; the cluster shard was not sent yet either.
    early = handle_message(service, CommitMessage(job.cluster, backup_id).to_dict())
    assert early["status"] == "waiting"
    cluster_shard = handle_message(service, ShardMessage(job.cluster, backup_id, "").to_dict())
    assert cluster_shard["status"] == "waiting"
    assert sharded.catalog().get("sharded", backup_id).state == "Running"

    queue.messages.extend(held)
    drain(service, queue)
    assert sharded.catalog().get("sharded", backup_id).state == "Completed"


def test_duplicate_shard_commit_and_job_messages_are_harmless(repos, kubeconfig_path, app_ns):
    _, sharded = repos
    queue = ListQueue()
    service = sharded.backup_service(queue=queue)
    job = make_job(kubeconfig_path, "sharded", app_ns.namespaces, shard=True)
    backup_id = handle_message(service, job.to_dict())["backup_id"]
    # Every message is delivered twice in a row, as SQS may; the second finds its work done.
    seen: list[tuple[str, str]] = []
    while queue.messages:
        message = queue.messages.popleft()
        first = handle_message(service, message)
        second = handle_message(service, dict(message))
        seen.append((first["status"], second["status"]))
    record = sharded.catalog().get("sharded", backup_id)
    assert record.state == "Completed"
    assert seen.count(("Done", "duplicate")) == len(app_ns.namespaces) + 1
    assert seen.count(("Completed", "duplicate")) == 1
    # A duplicate of a finished shard sends the next step again: harmless, the commit is already recorded.
    assert all(s == ("duplicate", "duplicate") for s in seen if s[0] not in ("Done", "Completed")), seen
    manifests = sharded.client("s3").list_objects_v2(Bucket=TEST_BUCKET, Prefix="sharded/lifeboat/v1/clusters/")
    assert [o["Key"] for o in manifests["Contents"]] == [f"sharded/lifeboat/v1/{record.manifest_key}"]
    again = handle_message(service, job.to_dict())
    assert again["duplicate"] and again["backup_id"] == backup_id and again["status"] == "Completed"
    records, _ = sharded.catalog().list("sharded")
    assert [r.backup_id for r in records] == [backup_id]


def test_a_pack_deleted_between_shards_and_commit_fails_the_backup_instead_of_committing(
    repos: Any, kubeconfig_path: Any, app_ns: Any
) -> None:
    _, sharded = repos
    queue = ListQueue()
    service = sharded.backup_service(queue=queue)
    job = make_job(kubeconfig_path, "sharded", app_ns.namespaces, shard=True)
    backup_id = handle_message(service, job.to_dict())["backup_id"]
    drain(service, queue, stop=lambda message: message.get("type") == "commit")
    assert [m.get("type") for m in queue.messages] == ["commit"]

    # What a garbage collection running in the hand-over gap would do to a pack the backup relies on.
    repo = sharded.repository()
    packs = sorted(repo.store.list("packs/"))
    assert packs
    repo.store.delete(packs[0])

    drain(service, queue)
    record = sharded.catalog().get("sharded", backup_id)
    assert record.state == "Failed"
    assert "no longer in the repository" in (record.failure or "")
    assert record.manifest_key is None
    assert not list(repo.store.list(f"clusters/sharded/backups/{backup_id}/"))
