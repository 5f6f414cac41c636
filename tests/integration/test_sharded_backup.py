"""Sharded backups (one shard per namespace, checkpoints, retries) against the Kubernetes API and emulated AWS.

The queue is a list driven in-process; every message goes through ``handle_message`` as the Lambda handler does.
"""

from __future__ import annotations

import uuid
from collections import deque
from typing import Any

import pytest

from chalicelib.backup.errors import RetryLater
from chalicelib.backup.sharded.context import ShardingOptions
from chalicelib.backup.worker import handle_message
from chalicelib.core.jobs import BackupJob, ClusterRef, CommitMessage, ShardMessage
from chalicelib.core.resources import Resource
from chalicelib.core.scope import BackupScope
from chalicelib.core.shards import ShardState
from chalicelib.services import Services
from chalicelib.settings import Settings
from tests.conftest import TEST_BUCKET, TEST_REGION, TEST_TABLE

CM = Resource("", "v1", "ConfigMap", "configmaps", True, frozenset({"create", "list"}))


class ListQueue:
    """The backup-jobs queue as a list: what was sent, with delays, handled first in, first out."""

    def __init__(self) -> None:
        self.messages: deque[dict[str, Any]] = deque()
        self.sent: list[tuple[dict[str, Any], int]] = []

    def send(self, message: dict[str, Any], *, delay_s: int = 0) -> None:
        self.messages.append(message)
        self.sent.append((message, delay_s))

    def send_many(self, messages: Any) -> int:
        count = 0
        for message in messages:
            self.send(message)
            count += 1
        return count


def drain(service: Any, queue: ListQueue, *, remaining_ms: Any = None, stop: Any = None) -> list[dict[str, Any]]:
    """Handle messages until the queue is empty (or ``stop(message)`` says so); RetryLater goes to the back."""
    results = []
    for _ in range(5000):
        if not queue.messages or (stop is not None and stop(queue.messages[0])):
            return results
        message = queue.messages.popleft()
        try:
            results.append(handle_message(service, message, remaining_ms=remaining_ms))
        except RetryLater:
            queue.messages.append(message)
    raise AssertionError("the queue never drained")


def _services(prefix: str) -> Services:
    return Services(Settings(table=TEST_TABLE, bucket=TEST_BUCKET, region=TEST_REGION, repository_prefix=prefix))


@pytest.fixture
def repos(bucket: str, table: str) -> tuple[Services, Services]:
    """Two repositories in one bucket: the one-shot backup's and the sharded backup's (each writes every blob)."""
    return _services("oneshot/lifeboat/v1/"), _services("sharded/lifeboat/v1/")


@pytest.fixture
def app_ns(kube_client: Any) -> Any:
    from sandbox.sample_app import remove_sample_app, seed_sample_app

    suffix = f"-{uuid.uuid4().hex[:6]}"
    report = seed_sample_app(kube_client, suffix=suffix)
    yield report
    remove_sample_app(kube_client, suffix=suffix)


@pytest.fixture
def big_namespace(kube_client: Any, test_namespace: str) -> str:
    for i in range(300):
        body = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": f"cfg-{i:04d}"}, "data": {"i": str(i)}}
        kube_client.create(CM, body, namespace=test_namespace)
    return test_namespace


def _job(kubeconfig_path: Any, cluster: str, namespaces: list[str], *, shard: bool | None, **scope: Any) -> BackupJob:
    auth = {"type": "kubeconfig", "kubeconfig": kubeconfig_path.read_text()}
    return BackupJob(
        job_id=f"t-{uuid.uuid4()}",
        cluster=ClusterRef(cluster, auth),
        scope=BackupScope(include_namespaces=tuple(namespaces), **scope),
        shard=shard,
    )


def _one_shot(services: Services, kubeconfig_path: Any, namespaces: list[str], **scope: Any) -> Any:
    record = services.backup_service().run(_job(kubeconfig_path, "oneshot", namespaces, shard=False, **scope)).record
    assert record.state == "Completed", record.failure or record.errors
    return _manifest(services, record)


def _sharded(services: Services, job: BackupJob, queue: ListQueue, **options: Any) -> Any:
    remaining_ms = options.pop("remaining_ms", None)
    service = services.backup_service(queue=queue, **options)
    started = handle_message(service, job.to_dict())
    assert started["status"] == "Running", started
    results = drain(service, queue, remaining_ms=remaining_ms)
    record = services.catalog().get(job.cluster.name, started["backup_id"])
    return record, results


def _manifest(services: Services, record: Any) -> Any:
    from chalicelib.repository import RepositoryReader

    reader = RepositoryReader(services.repository())
    return reader.load_manifest(record.cluster, record.backup_id)


def _same_backup(a: Any, b: Any) -> None:
    assert a.root_tree == b.root_tree
    assert a.kinds == b.kinds
    for key in ("objects", "trees", "namespaces", "errors"):
        assert a.counts[key] == b.counts[key], key
    assert a.scope == b.scope and a.errors == b.errors


def _shards(services: Services) -> Any:
    from chalicelib.catalog.shards import ShardCatalog

    return ShardCatalog(services.client("dynamodb"), TEST_TABLE)


def _assert_self_contained(services: Services, manifest: Any) -> None:
    """Every blob the manifest reaches is in an index file it names, and the repository checks clean."""
    from chalicelib.repository import RepositoryReader, check_repository

    reader = RepositoryReader(services.repository())
    holders: dict[str, set[str]] = {}
    for index_id, index_file in reader.index_files().items():
        for blobs in index_file.packs.values():
            for blob in blobs:
                holders.setdefault(blob[0], set()).add(index_id)
    root = reader.root(manifest)
    reached = {manifest.root_tree, *root.values(), *(entry.blob for _, entry in reader.walk(manifest))}
    named = set(manifest.index_files)
    assert all(holders.get(blob, set()) & named for blob in reached), "a reached blob's index file is not named"
    report = check_repository(reader, read_data=True)
    assert report.ok, report.problems


@pytest.mark.parametrize("mode", ["auto", "on"])
def test_sharded_backup_of_the_sample_app_equals_the_one_shot_backup(repos, kubeconfig_path, app_ns, mode):
    one, sharded = repos
    expected = _one_shot(one, kubeconfig_path, app_ns.namespaces, cluster_scoped=mode)
    queue = ListQueue()
    job = _job(kubeconfig_path, "sharded", app_ns.namespaces, shard=True, cluster_scoped=mode)
    record, results = _sharded(sharded, job, queue)

    assert record.state == "Completed", record.failure or record.errors
    manifest = _manifest(sharded, record)
    _same_backup(manifest, expected)
    assert record.counts == manifest.counts and record.manifest_key.endswith("/manifest.json")
    # One message per namespace, then the cluster-scoped shard, then the commit.
    kinds = [(m.get("type"), m.get("namespace")) for m, _ in queue.sent]
    assert sorted(kinds) == sorted([("shard", ns) for ns in app_ns.namespaces] + [("shard", ""), ("commit", None)])
    assert [r["status"] for r in results] == ["Done"] * (len(app_ns.namespaces) + 1) + ["Completed"]
    shards = _shards(sharded).list_shards("sharded", record.backup_id)
    assert {s.namespace for s in shards} == {"", *app_ns.namespaces}
    assert all(s.state == ShardState.DONE and s.result is not None for s in shards)
    # Each shard wrote its own index file, and the manifest names them all.
    assert len(manifest.index_files) >= len(app_ns.namespaces) + 1
    _assert_self_contained(sharded, manifest)


@pytest.mark.fakeonly
def test_checkpointing_every_page_gives_the_same_tree(repos, kubeconfig_path, big_namespace, fake_kube):
    one, sharded = repos
    expected = _one_shot(one, kubeconfig_path, [big_namespace])
    queue = ListQueue()
    job = _job(kubeconfig_path, "sharded", [big_namespace], shard=True)
    # No time at all: every invocation handles one page, checkpoints and sends itself again.
    record, results = _sharded(sharded, job, queue, page_size=40, remaining_ms=lambda: 0)

    assert record.state == "Completed", record.failure or record.errors
    manifest = _manifest(sharded, record)
    _same_backup(manifest, expected)
    continued = [r for r in results if r["status"] == "continued" and r["namespace"] == big_namespace]
    assert len(continued) >= 300 // 40, "one checkpoint per page of ConfigMaps at least"
    assert [r["seq"] for r in continued] == list(range(1, len(continued) + 1))
    s3 = sharded.client("s3")
    prefix = f"sharded/lifeboat/v1/checkpoints/sharded/{record.backup_id}/"
    listed = s3.list_objects_v2(Bucket=TEST_BUCKET, Prefix=prefix)
    keys = [o["Key"] for o in listed.get("Contents", [])]
    assert sum(f"/{big_namespace}/" in k for k in keys) == len(continued)
    # Every checkpoint flushed its packs into an index file, and the manifest names them all.
    _assert_self_contained(sharded, manifest)


def test_a_work_item_of_several_namespaces_gives_the_same_backup(repos, kubeconfig_path, app_ns):
    one, sharded = repos
    expected = _one_shot(one, kubeconfig_path, app_ns.namespaces)
    queue = ListQueue()
    job = _job(kubeconfig_path, "sharded", app_ns.namespaces, shard=True)
    options = ShardingOptions(item_share=1.0)  # every namespace fits one item
    record, results = _sharded(sharded, job, queue, sharding_options=options)

    assert record.state == "Completed", record.failure or record.errors
    manifest = _manifest(sharded, record)
    _same_backup(manifest, expected)
    first = sorted(app_ns.namespaces)[0]
    kinds = [(m.get("type"), m.get("namespace")) for m, _ in queue.sent]
    assert sorted(kinds) == sorted([("shard", first), ("shard", ""), ("commit", None)])
    shards = {s.namespace: s for s in _shards(sharded).list_shards("sharded", record.backup_id)}
    assert set(shards) == {"", first} and shards[first].namespaces == tuple(sorted(app_ns.namespaces))
    result = shards[first].result
    assert result is not None and set(result.trees) == set(app_ns.namespaces)
    assert record.stats["shards"] == 2
    _assert_self_contained(sharded, manifest)


@pytest.mark.fakeonly
def test_checkpoints_inside_a_work_item_give_the_same_tree(repos, kubeconfig_path, app_ns, fake_kube):
    one, sharded = repos
    expected = _one_shot(one, kubeconfig_path, app_ns.namespaces)
    queue = ListQueue()
    job = _job(kubeconfig_path, "sharded", app_ns.namespaces, shard=True)
    options = ShardingOptions(item_share=1.0)
    # No time at all: every invocation handles one page, checkpoints and sends itself again, across namespaces.
    record, results = _sharded(sharded, job, queue, sharding_options=options, page_size=2, remaining_ms=lambda: 0)

    assert record.state == "Completed", record.failure or record.errors
    _same_backup(_manifest(sharded, record), expected)
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
    expected = _one_shot(one, kubeconfig_path, [big_namespace])
    queue = ListQueue()
    service = sharded.backup_service(queue=queue, page_size=40)
    job = _job(kubeconfig_path, "sharded", [big_namespace], shard=True)
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
    _same_backup(_manifest(sharded, record), expected)
    gone = [r for r in fake_kube.requests if r.status == 410]
    assert gone and "/configmaps" in gone[0].path


@pytest.mark.fakeonly
def test_a_shard_whose_list_fails_beyond_retries_is_retried_and_the_backup_completes(
    repos, kubeconfig_path, app_ns, fake_kube, monkeypatch
):
    from chalicelib.kube.client import KubeClient

    monkeypatch.setattr(KubeClient, "_pause", lambda self, *args: None)  # no backoff sleeps in tests
    one, sharded = repos
    expected = _one_shot(one, kubeconfig_path, app_ns.namespaces)
    shop = app_ns.namespaces[0]
    # The first attempt's request and all its retries fail; the next attempt of the shard succeeds.
    fake_kube.faults.inject(500, method="GET", path=rf"/namespaces/{shop}/configmaps$", count=6)
    queue = ListQueue()
    job = _job(kubeconfig_path, "sharded", app_ns.namespaces, shard=True)
    record, results = _sharded(sharded, job, queue)

    assert record.state == "Completed", record.failure or record.errors
    _same_backup(_manifest(sharded, record), expected)
    retried = [r for r in results if r["status"] == "retrying"]
    assert [r["namespace"] for r in retried] == [shop] and "ServerError" in retried[0]["error"]
    assert any(m.get("namespace") == shop and delay > 0 for m, delay in queue.sent), "retried after a delay"
    shard = _shards(sharded).get("sharded", record.backup_id, shop)
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
    record, results = _sharded(sharded, _job(kubeconfig_path, "sharded", app_ns.namespaces, shard=True), ListQueue())
    assert record.state == "Completed", record.failure
    assert [r["status"] for r in results].count("retrying") == 1

    failures["left"] = 10**6  # now every attempt fails
    queue = ListQueue()
    options = ShardingOptions(max_attempts=2)
    record, results = _sharded(
        sharded, _job(kubeconfig_path, "sharded", app_ns.namespaces, shard=True), queue, sharding_options=options
    )
    assert record.state == "Failed"
    assert shop in record.failure and "disk on fire" in record.failure and "2 attempts" in record.failure
    assert record.manifest_key is None
    assert not any(m.get("type") == "commit" for m, _ in queue.sent)
    # A shard of the failed backup delivered late does no work.
    late = ShardMessage(ClusterRef("sharded", {"type": "kubeconfig", "kubeconfig": "unused"}), record.backup_id, shop)
    assert handle_message(sharded.backup_service(queue=ListQueue()), late.to_dict())["status"] == "stopped"


def test_the_backup_is_not_completed_while_a_shard_is_pending(repos, kubeconfig_path, app_ns):
    _, sharded = repos
    queue = ListQueue()
    service = sharded.backup_service(queue=queue)
    job = _job(kubeconfig_path, "sharded", app_ns.namespaces, shard=True)
    backup_id = handle_message(service, job.to_dict())["backup_id"]
    last = app_ns.namespaces[-1]
    held = [m for m in queue.messages if m.get("namespace") == last]
    queue.messages = deque(m for m in queue.messages if m.get("namespace") != last)
    drain(service, queue)

    record = sharded.catalog().get("sharded", backup_id)
    assert record.state == "Running" and record.manifest_key is None
    assert _shards(sharded).remaining("sharded", backup_id) == 1
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
    job = _job(kubeconfig_path, "sharded", app_ns.namespaces, shard=True)
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


def test_a_shard_owned_by_a_live_worker_is_retried_later(repos, kubeconfig_path, app_ns):
    from datetime import UTC, datetime

    _, sharded = repos
    queue = ListQueue()
    service = sharded.backup_service(queue=queue)
    job = _job(kubeconfig_path, "sharded", app_ns.namespaces, shard=True)
    backup_id = handle_message(service, job.to_dict())["backup_id"]
    shop = app_ns.namespaces[0]
    now = datetime.now(UTC)
    _, claimed = _shards(sharded).claim("sharded", backup_id, shop, "other-worker", now=now, stale_before=now)
    assert claimed
    with pytest.raises(RetryLater):
        handle_message(service, ShardMessage(job.cluster, backup_id, shop).to_dict())
    assert _shards(sharded).get("sharded", backup_id, shop).run_id == "other-worker"


def test_a_job_without_the_shard_flag_is_sharded_by_its_size(repos, kubeconfig_path, app_ns):
    _, sharded = repos
    job = _job(kubeconfig_path, "sharded", app_ns.namespaces, shard=None)
    small = sharded.backup_service(queue=ListQueue()).run(job).record
    assert small.state == "Completed", "two namespaces are far below the default thresholds"
    queue = ListQueue()
    options = ShardingOptions(min_namespaces=len(app_ns.namespaces))
    job = _job(kubeconfig_path, "sharded", app_ns.namespaces, shard=None)
    record, _ = _sharded(sharded, job, queue, sharding_options=options)
    assert record.state == "Completed" and record.stats["shards"] == len(app_ns.namespaces) + 1
    _same_backup(_manifest(sharded, record), _manifest(sharded, small))


def test_a_duplicate_job_adopts_the_plan_of_a_coordinator_that_died(repos, kubeconfig_path, app_ns, monkeypatch):
    from datetime import UTC, datetime, timedelta

    from chalicelib.catalog.shards import ShardCatalog

    one, sharded = repos
    expected = _one_shot(one, kubeconfig_path, app_ns.namespaces)
    real_seal = ShardCatalog.seal

    def die(self, *args, **kwargs):
        raise SystemExit("the coordinator's Lambda timed out")  # not an Exception: nothing records a failure

    monkeypatch.setattr(ShardCatalog, "seal", die)
    queue = ListQueue()
    job = _job(kubeconfig_path, "sharded", app_ns.namespaces, shard=True)
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
    _same_backup(_manifest(sharded, final), expected)


def test_the_sqs_worker_runs_a_sharded_backup_through_the_queue(bucket, table, kubeconfig_path, app_ns):
    import json

    import boto3
    from chalice.test import Client

    import app as app_module
    from chalicelib import services as services_module

    sqs = boto3.client("sqs", region_name=TEST_REGION)
    url = sqs.create_queue(QueueName="lifeboat-backup-jobs")["QueueUrl"]
    settings = Settings(table=TEST_TABLE, bucket=TEST_BUCKET, region=TEST_REGION, backup_queue_url=url)
    services_module.set_services(Services(settings))
    try:
        with Client(app_module.app) as client:
            body = json.dumps(_job(kubeconfig_path, "handler", app_ns.namespaces, shard=True).to_dict())
            handled = []
            for _ in range(20):
                event = client.events.generate_sqs_event(message_bodies=[body], queue_name="lifeboat-backup-jobs")
                client.lambda_.invoke("backup_worker", event)
                handled.append(json.loads(body).get("type", "job"))
                messages = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=1).get("Messages", [])
                if not messages:
                    break
                body = messages[0]["Body"]
                sqs.delete_message(QueueUrl=url, ReceiptHandle=messages[0]["ReceiptHandle"])
            records, _ = services_module.get_services().catalog().list("handler")
    finally:
        services_module.set_services(None)
    assert handled == ["job"] + ["shard"] * (len(app_ns.namespaces) + 1) + ["commit"]
    assert len(records) == 1 and records[0].state == "Completed", records[0].failure


def test_a_next_step_that_could_not_be_sent_is_sent_by_the_redelivery(repos, kubeconfig_path, app_ns):
    from chalicelib.backup.errors import QueueUnavailable

    _, sharded = repos

    class Flaky(ListQueue):
        failed: list[dict[str, Any]] = []

        def send(self, message: dict[str, Any], *, delay_s: int = 0) -> None:
            if message.get("namespace") == "" and not self.failed:
                self.failed.append(message)
                raise QueueUnavailable("SQS is having a moment")
            super().send(message, delay_s=delay_s)

    queue = Flaky()
    service = sharded.backup_service(queue=queue)
    job = _job(kubeconfig_path, "sharded", app_ns.namespaces, shard=True)
    backup_id = handle_message(service, job.to_dict())["backup_id"]
    statuses = []
    while queue.messages:
        message = queue.messages.popleft()
        try:
            statuses.append(handle_message(service, message)["status"])
        except QueueUnavailable:
            queue.messages.append(message)  # the Lambda failed: SQS delivers the message again
            statuses.append("raised")
    assert queue.failed, "the cluster shard's message failed to send once"
    assert statuses.count("raised") == 1 and "duplicate" in statuses
    assert sharded.catalog().get("sharded", backup_id).state == "Completed"


def test_a_pack_deleted_between_shards_and_commit_fails_the_backup_instead_of_committing(
    repos: Any, kubeconfig_path: Any, app_ns: Any
) -> None:
    _, sharded = repos
    queue = ListQueue()
    service = sharded.backup_service(queue=queue)
    job = _job(kubeconfig_path, "sharded", app_ns.namespaces, shard=True)
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
