"""The dispatcher against moto (DynamoDB, SQS): exactly once under races, one catch-up run, Forbid skips recorded."""

from __future__ import annotations

import json
import threading
from collections import Counter
from typing import Any

import pytest

from chalicelib.backup.queue import BackupWorkQueue
from chalicelib.catalog import BackupCatalog
from chalicelib.catalog.clusters import ClusterCatalog
from chalicelib.catalog.leases import LeaseCatalog
from chalicelib.catalog.policies import PolicyCatalog
from chalicelib.core.jobs import BackupJob
from chalicelib.core.models import BackupState
from chalicelib.maintenance.lock import RepositoryLock
from chalicelib.scheduling.dispatcher import Dispatcher, job_id_for
from chalicelib.scheduling.errors import QueueUnavailable
from chalicelib.scheduling.policies import PolicyService
from tests.conftest import TEST_REGION
from tests.support.aws import SerializedClient
from tests.support.clocks import Clock, utc

EKS = {"type": "eks", "cluster_name": "prod-eks", "region": "eu-central-1"}
SCOPE = "s3://lifeboat-test-primary/lifeboat/v1/"


def policy_file(*policies: dict[str, Any]) -> dict[str, Any]:
    base = {"cluster": "prod", "scope": {"include_namespaces": ["shop*"]}}
    return {"policies": [base | p for p in policies]}


class Env:
    def __init__(self, dynamodb: Any, table: str, sqs: Any, clock: Clock) -> None:
        self.client = SerializedClient(dynamodb)
        self.sqs = sqs
        self.queue_url = sqs.create_queue(QueueName="lifeboat-backup-jobs")["QueueUrl"]
        self.clock = clock
        self.policies = PolicyCatalog(self.client, table)
        self.backups = BackupCatalog(self.client, table)
        self.clusters = ClusterCatalog(self.client, table)
        self.leases = LeaseCatalog(self.client, table)
        self.clusters.register("prod", EKS, kubernetes_version="v1.31.0", now=clock())
        self.service = PolicyService(self.policies, self.clusters, clock=clock)

    def dispatcher(self, queue: Any = None) -> Dispatcher:
        lock = RepositoryLock(self.leases, SCOPE, clock=self.clock)
        queue = queue or BackupWorkQueue(SerializedClient(self.sqs), self.queue_url)
        return Dispatcher(self.policies, self.backups, self.clusters, queue, lock=lock, clock=self.clock)

    def messages(self) -> list[dict[str, Any]]:
        out = []
        while True:
            got = self.sqs.receive_message(QueueUrl=self.queue_url, MaxNumberOfMessages=10).get("Messages", [])
            if not got:
                return out
            for m in got:
                out.append(json.loads(m["Body"]))
                self.sqs.delete_message(QueueUrl=self.queue_url, ReceiptHandle=m["ReceiptHandle"])


@pytest.fixture
def env(dynamodb: Any, table: str) -> Env:
    import boto3

    return Env(dynamodb, table, boto3.client("sqs", region_name=TEST_REGION), Clock(utc(2026, 1, 10, 0, 0)))


def test_a_due_policy_is_dispatched_once_in_the_workers_job_format(env: Env) -> None:
    env.service.apply_document(policy_file({"name": "shop-nightly", "schedule": {"cron": "0 2 * * *"}}))
    env.clock.now = utc(2026, 1, 10, 1, 59)
    assert env.dispatcher().dispatch_due().outcomes == []
    env.clock.now = utc(2026, 1, 10, 2, 0, 30)
    report = env.dispatcher().dispatch_due()
    assert report.counts() == {"dispatched": 1}
    (message,) = env.messages()
    job = BackupJob.from_dict(message)  # exactly what the backup worker parses
    assert job.job_id == "schedule:shop-nightly:20260110T020000Z" == job_id_for("shop-nightly", utc(2026, 1, 10, 2))
    assert job.cluster.name == "prod" and job.cluster.auth == EKS
    assert job.scope.include_namespaces == ("shop*",) and job.policy == "shop-nightly"
    record = env.policies.get("shop-nightly")
    assert record.next_run_at == "2026-01-11T02:00:00.000Z"
    assert record.runs == {"dispatched": 1, "skipped": 0, "missed": 0}
    (run,) = env.policies.runs("prod", "shop-nightly")
    assert run.outcome == "dispatched" and run.job_id == job.job_id and run.late_seconds == 30
    env.clock.now = utc(2026, 1, 10, 2, 1)
    assert env.dispatcher().dispatch_due().outcomes == [] and env.messages() == []


def dispatch(dispatcher: Dispatcher, barrier: threading.Barrier, reports: list[Any]) -> None:
    barrier.wait()
    reports.append(dispatcher.dispatch_due())


def test_racing_dispatchers_dispatch_each_due_run_exactly_once(env: Env) -> None:
    names = [f"p{i:02d}" for i in range(8)]
    env.service.apply_document(policy_file(*({"name": n, "schedule": {"cron": "*/5 * * * *"}} for n in names)))
    results: Counter[str] = Counter()
    for tick in range(3):  # three scheduled times: 00:05, 00:10, 00:15
        env.clock.now = utc(2026, 1, 10, 0, 5 * (tick + 1), 10)
        # Each dispatched backup finishes before the next tick, so Forbid never interferes.
        barrier = threading.Barrier(3)
        reports: list[Any] = []
        threads = [threading.Thread(target=dispatch, args=(env.dispatcher(), barrier, reports)) for _ in range(3)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        for report in reports:
            results.update(report.counts())
        jobs = [BackupJob.from_dict(m) for m in env.messages()]
        assert sorted(j.job_id for j in jobs) == sorted(
            job_id_for(n, utc(2026, 1, 10, 0, 5 * (tick + 1))) for n in names
        ), f"tick {tick}"
        for job in jobs:  # the worker claims and completes each one
            backup_id = f"2026011000{5 * (tick + 1):02d}10Z-{job.policy}"
            env.backups.claim_job(job.job_id, "prod", backup_id, policy=job.policy, now=env.clock())
            env.backups.transition("prod", backup_id, BackupState.RUNNING, now=env.clock())
            env.backups.transition("prod", backup_id, BackupState.COMPLETED, now=env.clock())
    assert results["dispatched"] == 3 * len(names)
    assert set(results) == {"dispatched", "lost"}, "the dispatchers did not actually contend for the same runs"
    assert all(env.policies.get(n).runs["dispatched"] == 3 for n in names)


def test_missed_runs_become_one_catch_up_run(env: Env) -> None:
    env.service.apply_document(
        policy_file({"name": "hourly", "schedule": {"cron": "0 * * * *", "starting_deadline_seconds": 3600}})
    )
    env.clock.now = utc(2026, 1, 10, 5, 10)  # the dispatcher was down since before 01:00
    report = env.dispatcher().dispatch_due()
    assert report.counts() == {"dispatched": 1}
    (job,) = [BackupJob.from_dict(m) for m in env.messages()]
    assert job.job_id == job_id_for("hourly", utc(2026, 1, 10, 5, 0))  # the latest missed run, not a burst
    record = env.policies.get("hourly")
    assert record.next_run_at == "2026-01-10T06:00:00.000Z"
    assert record.runs == {"dispatched": 1, "skipped": 0, "missed": 4}  # 01:00 .. 04:00
    (run,) = env.policies.runs("prod", "hourly")
    assert run.missed == 4 and "4 earlier run(s) missed" in run.reason
    env.clock.now = utc(2026, 1, 10, 5, 11)
    assert env.dispatcher().dispatch_due().outcomes == []


def test_a_catch_up_past_its_deadline_is_skipped_and_recorded(env: Env) -> None:
    env.service.apply_document(
        policy_file({"name": "nightly", "schedule": {"cron": "0 2 * * *", "starting_deadline_seconds": 600}})
    )
    env.clock.now = utc(2026, 1, 10, 3, 0)
    report = env.dispatcher().dispatch_due()
    assert report.counts() == {"skipped": 1}
    assert env.messages() == []
    (run,) = env.policies.runs("prod", "nightly")
    assert run.outcome == "skipped" and "past starting_deadline_seconds (600)" in run.reason and run.job_id is None
    assert env.policies.get("nightly").next_run_at == "2026-01-11T02:00:00.000Z"


def test_forbid_skips_while_the_previous_backup_runs_and_records_it(env: Env) -> None:
    env.service.apply_document(policy_file({"name": "nightly", "schedule": {"cron": "0 2 * * *"}}))
    env.clock.now = utc(2026, 1, 10, 2, 0, 5)
    env.dispatcher().dispatch_due()
    (job,) = [BackupJob.from_dict(m) for m in env.messages()]
    # The worker claims it and is still running (heartbeating) a day later.
    env.backups.claim_job(job.job_id, "prod", "20260110T020006Z-aaaaaa", policy="nightly", now=env.clock())
    env.clock.now = utc(2026, 1, 11, 1, 59, 50)
    env.backups.transition("prod", "20260110T020006Z-aaaaaa", BackupState.RUNNING, now=env.clock())
    env.clock.now = utc(2026, 1, 11, 2, 0, 5)

    report = env.dispatcher().dispatch_due()

    assert report.counts() == {"skipped": 1} and env.messages() == []
    (outcome,) = report.outcomes
    assert "previous backup 20260110T020006Z-aaaaaa is still Running (concurrency policy Forbid)" in outcome.reason
    record = env.policies.get("nightly")
    assert record.runs["skipped"] == 1 and record.last_run is not None and record.last_run["outcome"] == "skipped"
    assert record.next_run_at == "2026-01-12T02:00:00.000Z"
    skipped, dispatched = env.policies.runs("prod", "nightly")
    assert skipped.outcome == "skipped" and dispatched.outcome == "dispatched"
    # Once it finishes, the next run goes out.
    env.backups.transition("prod", "20260110T020006Z-aaaaaa", BackupState.COMPLETED, now=env.clock())
    env.clock.now = utc(2026, 1, 12, 2, 0, 5)
    assert env.dispatcher().dispatch_due().counts() == {"dispatched": 1}


def test_forbid_counts_a_job_still_waiting_in_the_queue(env: Env) -> None:
    env.service.apply_document(policy_file({"name": "often", "schedule": {"cron": "*/10 * * * *"}}))
    env.clock.now = utc(2026, 1, 10, 0, 10, 1)
    assert env.dispatcher().dispatch_due().counts() == {"dispatched": 1}
    env.clock.now = utc(2026, 1, 10, 0, 20, 1)  # nobody has claimed the first job yet
    report = env.dispatcher().dispatch_due()
    assert report.counts() == {"skipped": 1}
    assert "schedule:often:20260110T001000Z is still queued" in report.outcomes[0].reason
    assert len(env.messages()) == 1


def test_a_stale_running_backup_does_not_block_forever(env: Env) -> None:
    env.service.apply_document(policy_file({"name": "nightly", "schedule": {"cron": "0 2 * * *"}}))
    env.backups.claim_job("manual", "prod", "20260109T100000Z-bbbbbb", policy="nightly", now=utc(2026, 1, 9, 10))
    env.backups.transition("prod", "20260109T100000Z-bbbbbb", BackupState.RUNNING, now=utc(2026, 1, 9, 10))
    env.clock.now = utc(2026, 1, 10, 2, 0, 5)  # 16 h without a heartbeat: its worker is gone
    assert env.dispatcher().dispatch_due().counts() == {"dispatched": 1}


def test_an_unregistered_cluster_is_a_recorded_skip(env: Env) -> None:
    env.service.apply_document(policy_file({"name": "nightly", "schedule": {"cron": "0 2 * * *"}}))
    env.clusters.unregister("prod")
    env.clock.now = utc(2026, 1, 10, 2, 0, 5)
    report = env.dispatcher().dispatch_due()
    assert report.counts() == {"skipped": 1} and "cluster 'prod' is not registered" in report.outcomes[0].reason


def test_a_failed_send_releases_the_claim_so_the_next_minute_retries(env: Env) -> None:
    env.service.apply_document(policy_file({"name": "nightly", "schedule": {"cron": "0 2 * * *"}}))

    class DownQueue:
        def send_batch(self, jobs: list[dict[str, Any]]) -> dict[int, str]:
            raise QueueUnavailable("SQS is down")

    env.clock.now = utc(2026, 1, 10, 2, 0, 5)
    assert env.dispatcher(queue=DownQueue()).dispatch_due().counts() == {"failed": 1}
    record = env.policies.get("nightly")
    assert record.next_run_at == "2026-01-10T02:00:00.000Z"
    assert record.runs["dispatched"] == 0 and record.last_run["outcome"] == "send_failed"  # type: ignore[index]
    assert env.policies.runs("prod", "nightly") == []
    env.clock.now = utc(2026, 1, 10, 2, 1, 5)
    assert env.dispatcher().dispatch_due().counts() == {"dispatched": 1}
    (job,) = [BackupJob.from_dict(m) for m in env.messages()]
    assert job.job_id == "schedule:nightly:20260110T020000Z"


def test_dispatch_waits_while_a_collection_holds_the_repository(env: Env) -> None:
    env.service.apply_document(policy_file({"name": "nightly", "schedule": {"cron": "0 2 * * *"}}))
    env.clock.now = utc(2026, 1, 10, 2, 0, 5)
    gc = env.leases.acquire_exclusive(SCOPE, "maintenance-1", ttl_s=600, now=env.clock())
    report = env.dispatcher().dispatch_due()
    assert report.deferred == "repository locked by maintenance-1" and env.messages() == []
    env.leases.release(gc)
    env.clock.now = utc(2026, 1, 10, 2, 3, 5)
    assert env.dispatcher().dispatch_due().counts() == {"dispatched": 1}


def test_a_run_claimed_before_is_not_claimed_again(env: Env) -> None:
    """If a policy ever points at a run that already has a record, the claim moves it on instead of sticking."""
    env.service.apply_document(policy_file({"name": "nightly", "schedule": {"cron": "0 2 * * *"}}))
    env.clock.now = utc(2026, 1, 10, 2, 0, 5)
    env.dispatcher().dispatch_due()
    env.messages()
    record = env.policies.get("nightly")
    # Force the policy back onto the run it already dispatched (as an old, buggy writer could).
    env.policies.update(
        record.policy, next_run_at=utc(2026, 1, 10, 2), expected_version=record.version, now=env.clock()
    )
    assert env.dispatcher().dispatch_due().counts() == {"lost": 1}
    assert env.messages() == []
    assert env.policies.get("nightly").next_run_at == "2026-01-11T02:00:00.000Z"


def test_one_failing_policy_does_not_hold_up_the_others(env: Env) -> None:
    from chalicelib.catalog.errors import Throttled

    env.clusters.register("staging", EKS, kubernetes_version=None, now=env.clock())
    env.service.apply_document(
        {
            "policies": [
                {"name": "a", "cluster": "prod", "schedule": "0 2 * * *", "scope": {"include_namespaces": ["x"]}},
                {"name": "b", "cluster": "staging", "schedule": "0 2 * * *", "scope": {"include_namespaces": ["x"]}},
            ]
        }
    )
    clusters = env.clusters

    class Flaky:
        def get(self, name: str) -> Any:
            if name == "staging":
                raise Throttled("DynamoDB throttled a request")
            return clusters.get(name)

    env.clock.now = utc(2026, 1, 10, 2, 0, 5)
    queue = BackupWorkQueue(env.sqs, env.queue_url)
    report = Dispatcher(env.policies, env.backups, Flaky(), queue, clock=env.clock).dispatch_due()
    assert report.counts() == {"dispatched": 1, "failed": 1}
    failed = next(o for o in report.outcomes if o.result == "failed")
    assert failed.policy == "b" and "Throttled" in failed.reason
    assert env.policies.get("b").next_run_at == "2026-01-10T02:00:00.000Z"  # still due: retried next minute


def test_hundreds_of_due_runs_each_get_one_job_with_a_second_tick_racing(env: Env) -> None:
    names = [f"p{i:03d}" for i in range(120)]
    env.service.apply_document(policy_file(*({"name": n, "schedule": {"cron": "0 * * * *"}} for n in names)))
    env.clock.now = utc(2026, 1, 10, 1, 0, 5)
    barrier = threading.Barrier(2)
    reports: list[Any] = []
    threads = [threading.Thread(target=dispatch, args=(env.dispatcher(), barrier, reports)) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    results: Counter[str] = Counter()
    for report in reports:
        results.update(report.counts())
    jobs = Counter(BackupJob.from_dict(m).job_id for m in env.messages())
    assert jobs == Counter(job_id_for(n, utc(2026, 1, 10, 1)) for n in names)  # each one, once
    assert results["dispatched"] == len(names) and set(results) <= {"dispatched", "lost"}
    assert results["lost"] > 0, "the two ticks did not contend for the same runs"
    assert all(env.policies.get(n).runs["dispatched"] == 1 for n in names[:20])


def test_a_tick_near_its_deadline_sends_what_it_claimed_and_leaves_the_rest_due(env: Env) -> None:
    names = [f"p{i:02d}" for i in range(30)]
    env.service.apply_document(policy_file(*({"name": n, "schedule": {"cron": "0 2 * * *"}} for n in names)))
    env.clock.now = utc(2026, 1, 10, 2, 0, 5)
    calls = {"n": 0}
    lock = threading.Lock()

    def remaining_ms() -> int:
        with lock:  # plenty of time for the first 12 claims, then 5 s: under the reserve
            calls["n"] += 1
            return 50_000 if calls["n"] <= 12 else 5_000

    queue = BackupWorkQueue(SerializedClient(env.sqs), env.queue_url)
    tick = Dispatcher(env.policies, env.backups, env.clusters, queue, clock=env.clock, remaining_ms=remaining_ms)
    report = tick.dispatch_due()
    assert report.counts() == {"dispatched": 12, "left": 18}
    sent = {BackupJob.from_dict(m).policy for m in env.messages()}
    assert sent == {o.policy for o in report.outcomes if o.result == "dispatched"}
    left = [o.policy for o in report.outcomes if o.result == "left"]
    assert all(env.policies.get(n).next_run_at == "2026-01-10T02:00:00.000Z" for n in left)  # still due
    env.clock.now = utc(2026, 1, 10, 2, 1, 5)
    assert env.dispatcher().dispatch_due().counts() == {"dispatched": 18}
    assert {BackupJob.from_dict(m).policy for m in env.messages()} == set(left)


def test_a_job_sqs_refuses_in_a_batch_gives_back_only_its_own_claim(env: Env) -> None:
    names = [f"p{i:02d}" for i in range(12)]
    env.service.apply_document(policy_file(*({"name": n, "schedule": {"cron": "0 2 * * *"}} for n in names)))
    real = BackupWorkQueue(env.sqs, env.queue_url)
    batches: list[int] = []

    class RefusesP03:
        def send_batch(self, jobs: list[dict[str, Any]]) -> dict[int, str]:
            batches.append(len(jobs))
            keep = [j for j in jobs if j["policy"] != "p03"]
            assert real.send_batch(keep) == {}
            return {i: "InternalError" for i, j in enumerate(jobs) if j["policy"] == "p03"}

    env.clock.now = utc(2026, 1, 10, 2, 0, 5)
    report = env.dispatcher(queue=RefusesP03()).dispatch_due()
    assert sorted(batches) == [2, 10]  # ten per SendMessageBatch
    assert report.counts() == {"dispatched": 11, "failed": 1}
    assert next(o for o in report.outcomes if o.result == "failed").policy == "p03"
    assert len(env.messages()) == 11
    assert env.policies.get("p03").next_run_at == "2026-01-10T02:00:00.000Z"
    assert env.policies.get("p04").next_run_at == "2026-01-11T02:00:00.000Z"


class Killed(BaseException):
    """The Lambda stopped mid-tick (its timeout, an out-of-memory kill): nothing after it runs."""


def test_a_tick_killed_mid_claims_has_sent_the_jobs_of_all_but_its_last_few_claims(env: Env) -> None:
    """Jobs go out ten at a time as their claims finish, not after the last claim: a tick killed after 25 claims has
    sent 20 jobs, and the next tick sends each run nobody claimed, once."""
    names = [f"p{i:02d}" for i in range(40)]
    env.service.apply_document(policy_file(*({"name": n, "schedule": {"cron": "0 2 * * *"}} for n in names)))
    policies = env.policies
    made = {"claims": 0}
    lock = threading.Lock()

    class DiesAfter25Claims:
        def __getattr__(self, name: str) -> Any:
            return getattr(policies, name)

        def claim(self, *args: Any, **kwargs: Any) -> bool:
            with lock:
                made["claims"] += 1
                if made["claims"] > 25:
                    raise Killed
            return policies.claim(*args, **kwargs)

    env.clock.now = utc(2026, 1, 10, 2, 0, 5)
    queue = BackupWorkQueue(SerializedClient(env.sqs), env.queue_url)
    with pytest.raises(Killed):
        Dispatcher(DiesAfter25Claims(), env.backups, env.clusters, queue, clock=env.clock, threads=2).dispatch_due()
    claimed = {n for n in names if env.policies.get(n).next_run_at != "2026-01-10T02:00:00.000Z"}
    sent = [BackupJob.from_dict(m).policy for m in env.messages()]
    assert len(claimed) == 25
    assert len(sent) == 20 and set(sent) <= claimed
    env.clock.now = utc(2026, 1, 10, 2, 1, 5)
    assert env.dispatcher().dispatch_due().counts() == {"dispatched": 15}
    assert sorted(BackupJob.from_dict(m).policy for m in env.messages()) == sorted(set(names) - claimed)


def test_a_tick_reads_its_due_policies_clusters_in_batches(env: Env) -> None:
    names = [f"c{i:03d}" for i in range(150)]
    for name in names:
        env.clusters.register(name, EKS, kubernetes_version="v1.31.0", now=env.clock())
    hourly = {"scope": {"include_namespaces": ["shop*"]}, "schedule": {"cron": "0 * * * *"}}
    env.service.apply_document({"policies": [{"name": n, "cluster": n, **hourly} for n in names]})
    calls: Counter[str] = Counter()
    env.client.meta.events.register("before-call", lambda model, **_: calls.update([model.name]))
    env.clock.now = utc(2026, 1, 10, 1, 0, 5)
    report = env.dispatcher().dispatch_due()
    assert report.counts() == {"dispatched": 150}
    # 100 keys a request, and no cluster read a run (a read per run would be 150 GetItems)
    assert calls["BatchGetItem"] == 2 and calls["GetItem"] <= 1, calls
    assert sorted(BackupJob.from_dict(m).cluster.name for m in env.messages()) == names


def test_a_cluster_the_batch_read_leaves_out_is_read_on_its_own(env: Env) -> None:
    from chalicelib.catalog.errors import Throttled

    env.service.apply_document(policy_file({"name": "nightly", "schedule": {"cron": "0 2 * * *"}}))
    clusters = env.clusters

    class Partial:
        """DynamoDB left the key unprocessed every time: ``get_many`` answers without it."""

        def get_many(self, names: Any) -> dict[str, Any]:
            list(names)
            return {}

        def get(self, name: str) -> Any:
            return clusters.get(name)

    class Broken(Partial):
        def get_many(self, names: Any) -> dict[str, Any]:
            raise Throttled("DynamoDB throttled a request")

    for catalog in (Partial(), Broken()):
        env.clock.now = env.clock.now.replace(day=env.clock.now.day + 1, hour=2, second=5)
        queue = BackupWorkQueue(env.sqs, env.queue_url)
        report = Dispatcher(env.policies, env.backups, catalog, queue, clock=env.clock).dispatch_due()
        assert report.counts() == {"dispatched": 1}, type(catalog).__name__
        env.messages()


def test_unprocessed_keys_are_asked_again() -> None:
    class Stub:
        def __init__(self) -> None:
            self.requests: list[int] = []

        def batch_get_item(self, RequestItems: dict[str, Any]) -> dict[str, Any]:  # noqa: N803 -- botocore's name
            asked = RequestItems["t"]["Keys"]
            assert RequestItems["t"]["ConsistentRead"] is True
            self.requests.append(len(asked))
            first, rest = asked[0], asked[1:]
            name = first["sk"]["S"].removeprefix("CLUSTER#")
            item = {**first, "cluster": {"S": name}, "auth": {"M": {"type": {"S": "eks"}}}}
            unprocessed = {"t": {"Keys": rest, "ConsistentRead": True}} if rest else {}
            return {"Responses": {"t": [item]}, "UnprocessedKeys": unprocessed}

    stub = Stub()
    found = ClusterCatalog(stub, "t").get_many(["a", "b", "c", "a"])
    assert sorted(found) == ["a", "b", "c"] and stub.requests == [3, 2, 1]
