"""A policy's separate etcd schedule against moto: etcd-only jobs dispatched exactly once per scheduled time, the
policy's own backups without etcd, the schedule following the policy, and status and retention kept apart."""

from __future__ import annotations

import json
import threading
from collections import Counter
from typing import Any

import pytest

from chalicelib.backup.queue import BackupWorkQueue
from chalicelib.catalog import BackupCatalog, side_schedules
from chalicelib.catalog.clusters import ClusterCatalog
from chalicelib.catalog.policies import PolicyCatalog
from chalicelib.core.jobs import BackupJob
from chalicelib.core.models import BackupState
from chalicelib.maintenance.retention import RetentionService
from chalicelib.scheduling.dispatcher import Dispatcher
from chalicelib.scheduling.etcd_dispatch import EtcdDispatcher, etcd_job_id
from chalicelib.scheduling.policies import PolicyService
from chalicelib.scheduling.status import StatusService
from tests.conftest import TEST_REGION
from tests.support.aws import SerializedClient
from tests.support.clocks import Clock, utc

AUTH = {"type": "kubeconfig", "kubeconfig": "apiVersion: v1\nkind: Config\n"}
ETCD = {"endpoints": ["https://10.0.0.1:2379"], "secret_id": "lifeboat/etcd"}
HOURLY_ETCD = {"enabled": True, "schedule": {"cron": "0 * * * *"}, "rpo_target_minutes": 90}


def policy_file(**etcd: Any) -> dict[str, Any]:
    policy = {
        "name": "cp",
        "cluster": "prod",
        "schedule": {"cron": "0 2 * * *"},
        "scope": {"include_namespaces": ["*"]},
        "retention": {"keep_daily": 7},
        "rpo_target_minutes": 1500,
        "etcd": etcd or HOURLY_ETCD,
    }
    return {"policies": [policy]}


class Env:
    def __init__(self, dynamodb: Any, table: str, sqs: Any, clock: Clock) -> None:
        self.client = SerializedClient(dynamodb)
        self.sqs = sqs
        self.queue_url = sqs.create_queue(QueueName="lifeboat-backup-jobs")["QueueUrl"]
        self.clock = clock
        self.policies = PolicyCatalog(self.client, table)
        self.backups = BackupCatalog(self.client, table)
        self.clusters = ClusterCatalog(self.client, table)
        self.schedules = side_schedules.SideScheduleCatalog(self.client, table, side_schedules.ETCD)
        self.clusters.register("prod", AUTH, kubernetes_version="v1.31.0", now=clock(), etcd=ETCD)
        self.service = PolicyService(self.policies, self.clusters, clock=clock, etcd_schedules=self.schedules)

    def dispatcher(self) -> Dispatcher:
        queue = BackupWorkQueue(SerializedClient(self.sqs), self.queue_url)
        etcd = EtcdDispatcher(self.schedules, self.policies, self.backups, self.clusters, queue)
        return Dispatcher(self.policies, self.backups, self.clusters, queue, clock=self.clock, etcd=etcd)

    def jobs(self) -> list[BackupJob]:
        out = []
        while True:
            got = self.sqs.receive_message(QueueUrl=self.queue_url, MaxNumberOfMessages=10).get("Messages", [])
            if not got:
                return out
            for m in got:
                out.append(BackupJob.from_dict(json.loads(m["Body"])))
                self.sqs.delete_message(QueueUrl=self.queue_url, ReceiptHandle=m["ReceiptHandle"])

    def complete(self, job: BackupJob, backup_id: str) -> None:
        extra = {"kind": "etcd"} if job.etcd_only else None
        self.backups.claim_job(job.job_id, "prod", backup_id, policy=job.policy, now=self.clock(), extra=extra)
        self.backups.transition("prod", backup_id, BackupState.RUNNING, now=self.clock(), started_at=self.clock())
        self.backups.transition("prod", backup_id, BackupState.COMPLETED, now=self.clock(), finished_at=self.clock())


@pytest.fixture
def env(dynamodb: Any, table: str) -> Env:
    import boto3

    return Env(dynamodb, table, boto3.client("sqs", region_name=TEST_REGION), Clock(utc(2026, 1, 10, 0, 30)))


def test_etcd_runs_are_dispatched_on_their_own_schedule_and_backups_take_no_snapshot(env: Env) -> None:
    env.service.apply_document(policy_file())
    record = env.schedules.get("prod", "cp")
    assert record is not None and record.next_run_at.startswith("2026-01-10T01:00:00")
    env.clock.now = utc(2026, 1, 10, 1, 0, 20)
    assert env.dispatcher().dispatch_due().counts() == {"dispatched": 1}
    (job,) = env.jobs()
    assert job.etcd_only and job.job_id == etcd_job_id("cp", utc(2026, 1, 10, 1)) == "etcd:cp:20260110T010000Z"
    assert job.cluster.etcd is not None and job.cluster.etcd.endpoints == ("https://10.0.0.1:2379",)
    assert job.policy == "cp"
    (run,) = env.policies.runs("prod", "cp:etcd")
    assert run.outcome == "dispatched" and run.job_id == job.job_id
    assert env.policies.runs("prod", "cp") == []  # the policy's own runs are apart
    env.complete(job, "20260110T010020Z-etcd")
    env.clock.now = utc(2026, 1, 10, 2, 0, 10)  # both schedules are due now
    env.dispatcher().dispatch_due()
    jobs = sorted(env.jobs(), key=lambda j: j.job_id)
    assert [j.job_id for j in jobs] == ["etcd:cp:20260110T020000Z", "schedule:cp:20260110T020000Z"]
    assert jobs[0].etcd_only and not jobs[1].etcd_only
    assert jobs[1].cluster.etcd is None  # the separate schedule takes the snapshots, not the backups


def race(dispatcher: Dispatcher, barrier: threading.Barrier, reports: list[Any]) -> None:
    barrier.wait()
    reports.append(dispatcher.dispatch_due())


def test_racing_dispatchers_send_each_etcd_run_once(env: Env) -> None:
    env.service.apply_document(policy_file(enabled=True, schedule={"cron": "*/5 * * * *"}))
    results: Counter[str] = Counter()
    for tick in range(3):
        env.clock.now = utc(2026, 1, 10, 0, 35 + 5 * tick, 5)
        barrier = threading.Barrier(3)
        reports: list[Any] = []

        threads = [threading.Thread(target=race, args=(env.dispatcher(), barrier, reports)) for _ in range(3)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        for report in reports:
            results.update(report.counts())
        (job,) = env.jobs()
        assert job.job_id == etcd_job_id("cp", utc(2026, 1, 10, 0, 35 + 5 * tick))
        env.complete(job, f"2026011000{35 + 5 * tick}05Z-etcd")
    assert results["dispatched"] == 3 and set(results) <= {"dispatched", "lost"}


def test_the_etcd_schedule_follows_the_policy(env: Env) -> None:
    env.service.apply_document(policy_file())
    first = env.schedules.get("prod", "cp")
    env.clock.now = utc(2026, 1, 10, 0, 40)
    env.service.apply_document(policy_file())  # unchanged: the next run stays
    assert env.schedules.get("prod", "cp") == first
    env.service.apply_document(policy_file(enabled=True, schedule={"cron": "30 * * * *"}))
    moved = env.schedules.get("prod", "cp")
    assert moved is not None and moved.next_run_at.startswith("2026-01-10T01:30:00")
    env.service.apply_document(policy_file(enabled=True, schedule="with-every-backup"))
    assert env.schedules.get("prod", "cp") is None
    env.service.apply_document(policy_file())
    env.service.delete("cp")
    assert env.schedules.get("prod", "cp") is None


def test_etcd_only_backups_neither_reset_the_policys_rpo_nor_share_its_retention(env: Env) -> None:
    env.service.apply_document(policy_file())
    env.clock.now = utc(2026, 1, 10, 2, 0, 10)
    env.dispatcher().dispatch_due()
    jobs = {j.etcd_only: j for j in env.jobs()}
    env.complete(jobs[False], "20260110T020010Z-res")
    # Hourly etcd-only backups over the next days: each day's newest would win the policy's daily bucket.
    for hour in range(3, 48, 3):
        env.clock.now = utc(2026, 1, 10 + hour // 24, hour % 24, 0, 5)
        env.dispatcher().dispatch_due()
        for job in env.jobs():
            if job.etcd_only:
                env.complete(job, f"{env.clock.now:%Y%m%dT%H%M%S}Z-etcd")
    env.clock.now = utc(2026, 1, 11, 23, 50)
    (status,) = [s for s in StatusService(env.policies, env.backups, clock=env.clock).statuses() if s.name == "cp"]
    assert status.last_success_id == "20260110T020010Z-res"  # not the newest etcd-only backup
    assert status.rpo_minutes > 45 * 60 and status.rpo_exceeded
    plans = RetentionService(env.policies, env.backups, clock=env.clock).plans()
    resources = next(p for p in plans if not p.etcd_only)
    assert [d.backup_id for d in resources.kept] == ["20260110T020010Z-res"]
    etcd = next(p for p in plans if p.etcd_only)
    assert all(d.backup_id.endswith("-etcd") for d in etcd.decisions)
    assert 2 <= len(etcd.kept) < len(etcd.decisions)  # kept by day among themselves, the rest dropped


def test_the_etcd_status_uses_the_etcd_target_and_shows_an_unverified_snapshot(env: Env, table: str) -> None:
    from chalicelib.catalog.etcd_verifications import EtcdVerificationCatalog, EtcdVerificationRecord
    from chalicelib.scheduling.etcd_status import EtcdStatusService

    env.service.apply_document(policy_file())
    results = EtcdVerificationCatalog(env.client, table)
    stamp = "2026-01-10T00:00:00Z"
    results.record(EtcdVerificationRecord("prod", "20260110T000000Z-a", True, stamp, stamp, keys=5))
    later = EtcdVerificationRecord(
        "prod",
        "20260110T010000Z-b",
        False,
        "2026-01-10T01:01:00Z",
        "2026-01-10T01:00:30Z",
        error="etcd verification not available in this deployment",
        unverified=True,
    )
    results.record(later)
    env.clock.now = utc(2026, 1, 10, 1, 20)
    (status,) = EtcdStatusService(env.policies, results, clock=env.clock).statuses()
    assert status.rpo_target_minutes == 90  # the etcd block's, not the policy's 1500
    assert status.backup_id == "20260110T000000Z-a" and not status.rpo_exceeded  # 80 minutes old
    assert status.schedules == ("cp: 0 * * * * (UTC)",)
    assert status.latest_backup_id == "20260110T010000Z-b"
    assert status.latest_result == "unverified: etcd verification not available in this deployment"
    env.clock.now = utc(2026, 1, 10, 1, 31)
    (status,) = EtcdStatusService(env.policies, results, clock=env.clock).statuses()
    assert status.rpo_exceeded  # an unverified snapshot does not reset it
