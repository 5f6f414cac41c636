"""Verification schedules: applied with the policy, dispatched exactly once per scheduled time, removed with it."""

from __future__ import annotations

import json
import threading
from collections import Counter
from datetime import timedelta
from typing import Any

import pytest

from chalicelib.backup.queue import BackupWorkQueue
from chalicelib.catalog import BackupCatalog, side_schedules
from chalicelib.catalog.clusters import ClusterCatalog
from chalicelib.catalog.policies import PolicyCatalog
from chalicelib.catalog.verifications import VerificationCatalog
from chalicelib.scheduling.dispatcher import Dispatcher
from chalicelib.scheduling.policies import PolicyService
from chalicelib.scheduling.verify_dispatch import VerifyDispatcher
from chalicelib.verification.queue import VerificationQueue
from chalicelib.verification.worker import VerificationWorker, VerifyMessage, verification_id
from tests.conftest import TEST_REGION
from tests.support.aws import SerializedClient
from tests.support.clocks import Clock, utc

AUTH = {"type": "kubeconfig", "kubeconfig": "apiVersion: v1\nkind: Config\n"}


def policy_file(verify: dict[str, Any] | None = None, enabled: bool = True) -> dict[str, Any]:
    policy: dict[str, Any] = {
        "name": "shop",
        "cluster": "prod",
        "schedule": {"cron": "0 2 1 1 *"},  # yearly: no backup run is due in these tests
        "scope": {"include_namespaces": ["shop"]},
        "enabled": enabled,
    }
    if verify is not None:
        policy["verify"] = verify
    return {"policies": [policy]}


class Env:
    def __init__(self, dynamodb: Any, table: str, sqs: Any, clock: Clock) -> None:
        self.client = SerializedClient(dynamodb)
        self.sqs = sqs
        self.backup_url = sqs.create_queue(QueueName="lifeboat-backup-jobs")["QueueUrl"]
        self.verify_url = sqs.create_queue(QueueName="lifeboat-verification-jobs")["QueueUrl"]
        self.clock = clock
        self.policies = PolicyCatalog(self.client, table)
        self.backups = BackupCatalog(self.client, table)
        self.clusters = ClusterCatalog(self.client, table)
        self.schedules = side_schedules.SideScheduleCatalog(self.client, table, side_schedules.VERIFY)
        self.verifications = VerificationCatalog(self.client, table)
        self.clusters.register("prod", AUTH, kubernetes_version="v1.31.0", now=clock())
        self.service = PolicyService(self.policies, self.clusters, clock=clock, verify_schedules=self.schedules)

    def dispatcher(self) -> Dispatcher:
        worker = VerificationWorker(
            verifications=self.verifications,
            backups=self.backups,
            policies=self.policies,
            connect=lambda name: None,
            reader=lambda: None,
            clock=self.clock,
        )
        queue = VerificationQueue(SerializedClient(self.sqs), self.verify_url)
        verify = VerifyDispatcher(self.schedules, self.policies, worker.start, queue)
        backups = BackupWorkQueue(SerializedClient(self.sqs), self.backup_url)
        return Dispatcher(self.policies, self.backups, self.clusters, backups, clock=self.clock, verify=verify)

    def messages(self) -> list[VerifyMessage]:
        out = []
        while True:
            got = self.sqs.receive_message(QueueUrl=self.verify_url, MaxNumberOfMessages=10).get("Messages", [])
            if not got:
                return out
            for m in got:
                out.append(VerifyMessage.from_json(m["Body"]))
                self.sqs.delete_message(QueueUrl=self.verify_url, ReceiptHandle=m["ReceiptHandle"])


@pytest.fixture
def env(dynamodb: Any, table: str) -> Env:
    import boto3

    return Env(dynamodb, table, boto3.client("sqs", region_name=TEST_REGION), Clock(utc(2026, 1, 10, 0, 30)))


WEEKLY = {"schedule": {"cron": "0 4 * * 6", "timezone": "UTC"}, "rto_target_minutes": 30}


def test_a_verification_is_dispatched_on_its_schedule_as_a_pending_run(env: Env) -> None:
    env.service.apply_document(policy_file(WEEKLY))
    record = env.schedules.get("prod", "shop")
    assert record is not None and record.next_run_at.startswith("2026-01-10T04:00:00")

    env.clock.now = utc(2026, 1, 10, 4, 0, 30)
    report = env.dispatcher().dispatch_due()

    assert report.counts() == {"dispatched": 1}
    (message,) = env.messages()
    assert message.verification_id == verification_id("shop", "2026-01-10T04:00:00.000Z")
    run = env.verifications.get(message.verification_id)
    assert run.state == "Pending" and run.policy == "shop" and run.rto_target_minutes == 30
    assert run.scheduled_for.startswith("2026-01-10T04:00:00")
    (recorded,) = env.policies.runs("prod", "shop:verify")
    assert recorded.outcome == "dispatched" and recorded.job_id == message.verification_id
    assert env.policies.runs("prod", "shop") == []  # apart from the policy's backup runs


def _race(dispatcher: Dispatcher, barrier: threading.Barrier, reports: list[Any]) -> None:
    barrier.wait()
    reports.append(dispatcher.dispatch_due())


def test_racing_dispatchers_start_each_verification_once(env: Env) -> None:
    env.service.apply_document(policy_file({"schedule": "*/10 * * * *"}))
    results: Counter[str] = Counter()
    for tick in range(3):
        env.clock.now = utc(2026, 1, 10, 0, 40, 5) + timedelta(minutes=10 * tick)
        barrier = threading.Barrier(3)
        reports: list[Any] = []

        threads = [threading.Thread(target=_race, args=(env.dispatcher(), barrier, reports)) for _ in range(3)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        for report in reports:
            results.update(report.counts())
        (message,) = env.messages()
        assert env.verifications.get(message.verification_id).state == "Pending"
    assert results["dispatched"] == 3 and set(results) <= {"dispatched", "lost"}
    assert len(env.verifications.list_for_policy("shop")) == 3


def test_the_verify_schedule_follows_the_policy(env: Env) -> None:
    env.service.apply_document(policy_file(WEEKLY))
    first = env.schedules.get("prod", "shop")
    env.service.apply_document(policy_file(WEEKLY))  # unchanged: the next run stays
    assert env.schedules.get("prod", "shop") == first
    env.service.apply_document(policy_file({"schedule": "0 5 * * *"}))
    moved = env.schedules.get("prod", "shop")
    assert moved is not None and moved.next_run_at.startswith("2026-01-10T05:00:00")
    env.service.apply_document(policy_file(WEEKLY, enabled=False))
    assert env.schedules.get("prod", "shop") is None
    env.service.apply_document(policy_file(WEEKLY))
    env.service.delete("shop")
    assert env.schedules.get("prod", "shop") is None
    assert json.dumps(policy_file())  # a policy without verify has no schedule
    env.service.apply_document(policy_file())
    assert env.schedules.get("prod", "shop") is None
