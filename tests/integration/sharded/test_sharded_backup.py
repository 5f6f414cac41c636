"""Sharded backups end to end: the same backup as a one-shot one, through the SQS worker, and resent next steps."""

from __future__ import annotations

from typing import Any

import pytest

from chalicelib.backup.worker import handle_message
from chalicelib.core.shards import ShardState
from chalicelib.services import Services
from chalicelib.settings import Settings
from tests.conftest import TEST_BUCKET, TEST_REGION, TEST_TABLE
from tests.support.sharded import (
    ListQueue,
    assert_same_backup,
    assert_self_contained,
    make_job,
    manifest_of,
    one_shot_backup,
    shard_records,
    sharded_backup,
)


@pytest.mark.parametrize("mode", ["auto", "on"])
def test_sharded_backup_of_the_sample_app_equals_the_one_shot_backup(repos, kubeconfig_path, app_ns, mode):
    one, sharded = repos
    expected = one_shot_backup(one, kubeconfig_path, app_ns.namespaces, cluster_scoped=mode)
    queue = ListQueue()
    job = make_job(kubeconfig_path, "sharded", app_ns.namespaces, shard=True, cluster_scoped=mode)
    record, results = sharded_backup(sharded, job, queue)

    assert record.state == "Completed", record.failure or record.errors
    manifest = manifest_of(sharded, record)
    assert_same_backup(manifest, expected)
    assert record.counts == manifest.counts and record.manifest_key.endswith("/manifest.json")
    # One message per namespace, then the cluster-scoped shard, then the commit.
    kinds = [(m.get("type"), m.get("namespace")) for m, _ in queue.sent]
    assert sorted(kinds) == sorted([("shard", ns) for ns in app_ns.namespaces] + [("shard", ""), ("commit", None)])
    assert [r["status"] for r in results] == ["Done"] * (len(app_ns.namespaces) + 1) + ["Completed"]
    shards = shard_records(sharded).list_shards("sharded", record.backup_id)
    assert {s.namespace for s in shards} == {"", *app_ns.namespaces}
    assert all(s.state == ShardState.DONE and s.result is not None for s in shards)
    # Each shard wrote its own index file, and the manifest names them all.
    assert len(manifest.index_files) >= len(app_ns.namespaces) + 1
    assert_self_contained(sharded, manifest)


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
            body = json.dumps(make_job(kubeconfig_path, "handler", app_ns.namespaces, shard=True).to_dict())
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
    job = make_job(kubeconfig_path, "sharded", app_ns.namespaces, shard=True)
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
