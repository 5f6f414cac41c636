"""Policies in DynamoDB (moto): apply (create / update / unchanged), names unique across clusters, delete."""

from __future__ import annotations

from typing import Any

import pytest
import yaml

from chalicelib.catalog.clusters import ClusterCatalog
from chalicelib.catalog.policies import PolicyCatalog
from chalicelib.catalog.policy_runs import DISPATCHED, RunRecord
from chalicelib.core.errors import InvalidPolicy
from chalicelib.scheduling.errors import PolicyConflict, PolicyNotFound
from chalicelib.scheduling.policies import PolicyService
from tests.support.clocks import Clock, utc

EKS = {"type": "eks", "cluster_name": "prod", "region": "eu-central-1"}
FILE = """
policies:
  - name: shop-nightly
    cluster: prod
    schedule: {cron: "0 2 * * *", timezone: Europe/Berlin, starting_deadline_seconds: 3600}
    scope: {include_namespaces: ["shop*"]}
    retention: {keep_last: 3, keep_daily: 7, keep_weekly: 4, keep_monthly: 6}
    rpo_target_minutes: 1500
  - name: platform-hourly
    cluster: prod
    schedule: {cron: "0 * * * *"}
    scope: {include_namespaces: ["kube-system"], cluster_scoped: "on"}
"""


@pytest.fixture
def clock() -> Clock:
    return Clock(utc(2026, 1, 10, 12, 0))


@pytest.fixture
def catalogs(dynamodb: Any, table: str) -> tuple[PolicyCatalog, ClusterCatalog]:
    clusters = ClusterCatalog(dynamodb, table)
    clusters.register("prod", EKS, kubernetes_version="v1.31.0", now=utc(2026, 1, 1))
    clusters.register("staging", EKS | {"cluster_name": "staging"}, kubernetes_version="v1.31.0", now=utc(2026, 1, 1))
    return PolicyCatalog(dynamodb, table), clusters


@pytest.fixture
def service(catalogs: tuple[PolicyCatalog, ClusterCatalog], clock: Clock) -> PolicyService:
    return PolicyService(*catalogs, clock=clock)


def edited(**changes: Any) -> str:
    doc = yaml.safe_load(FILE)
    doc["policies"][0].update(changes)
    return yaml.safe_dump(doc)


def test_apply_creates_policies_with_their_first_run(service: PolicyService) -> None:
    applied = {a.name: a for a in service.apply_text(FILE)}
    assert {a.change for a in applied.values()} == {"created"}
    # 02:00 Berlin on Jan 11 (the next one after 12:00 UTC on Jan 10) is 01:00 UTC.
    assert applied["shop-nightly"].next_run_at == "2026-01-11T01:00:00.000Z"
    assert applied["platform-hourly"].next_run_at == "2026-01-10T13:00:00.000Z"
    record = service.get("shop-nightly")
    assert record.policy.retention.keep_daily == 7 and record.policy.rpo_target_minutes == 1500
    assert [r.policy.name for r in service.list()] == ["platform-hourly", "shop-nightly"]


def test_reapplying_the_same_file_changes_nothing(service: PolicyService) -> None:
    service.apply_text(FILE)
    version = service.get("shop-nightly").version
    assert {a.change for a in service.apply_text(FILE)} == {"unchanged"}
    assert service.get("shop-nightly").version == version


def test_an_edit_keeps_the_next_run_unless_the_schedule_changes(service: PolicyService, clock: Clock) -> None:
    service.apply_text(FILE)
    clock.advance(hours=1)
    (a, _) = service.apply_text(edited(retention={"keep_last": 10}))
    assert a.change == "updated" and a.next_run_at == "2026-01-11T01:00:00.000Z"
    assert service.get("shop-nightly").policy.retention.keep_last == 10
    (a, _) = service.apply_text(edited(schedule={"cron": "30 4 * * *", "timezone": "UTC"}))
    assert a.change == "updated" and a.next_run_at == "2026-01-11T04:30:00.000Z"


def test_disabling_takes_a_policy_off_the_due_index(
    service: PolicyService, catalogs: tuple[PolicyCatalog, ClusterCatalog], clock: Clock
) -> None:
    policies, _ = catalogs
    service.apply_text(FILE)
    far = utc(2026, 2, 1)
    assert {r.policy.name for r in policies.due(far)} == {"shop-nightly", "platform-hourly"}
    (a, _) = service.apply_text(edited(enabled=False))
    assert a.next_run_at is None
    assert {r.policy.name for r in policies.due(far)} == {"platform-hourly"}
    clock.advance(days=3)
    (a, _) = service.apply_text(edited(enabled=True))
    assert a.next_run_at == "2026-01-14T01:00:00.000Z"  # from now, not from before it was disabled


def test_due_includes_a_policy_due_exactly_now(service: PolicyService, catalogs: Any) -> None:
    policies, _ = catalogs
    service.apply_text(FILE)
    assert [r.policy.name for r in policies.due(utc(2026, 1, 10, 13, 0))] == ["platform-hourly"]
    assert list(policies.due(utc(2026, 1, 10, 12, 59, 59))) == []


def test_names_are_unique_across_clusters(service: PolicyService) -> None:
    service.apply_text(FILE)
    with pytest.raises(PolicyConflict, match="already belongs to cluster 'prod'"):
        service.apply_text(edited(cluster="staging"))


def test_a_policy_for_an_unregistered_cluster_is_refused_and_nothing_is_written(service: PolicyService) -> None:
    doc = yaml.safe_load(FILE)
    doc["policies"][1]["cluster"] = "nowhere"
    with pytest.raises(InvalidPolicy) as info:
        service.apply_document(doc)
    assert info.value.problems == [
        "policies[1] (platform-hourly).cluster: 'nowhere' is not registered; run `lifeboat clusters add nowhere ...` "
        "first"
    ]
    assert service.list() == []


def test_validation_errors_name_every_problem(service: PolicyService) -> None:
    with pytest.raises(InvalidPolicy) as info:
        service.apply_text(edited(schedule={"cron": "0 2 * *", "timezone": "Europe/Berln"}, scope={}))
    assert len(info.value.problems) == 3
    with pytest.raises(InvalidPolicy, match="not valid YAML at line 2, column 12: mapping values are not allowed"):
        service.apply_text("policies:\n  - name: a: b\n")


def test_delete_removes_the_policy_and_its_name(service: PolicyService) -> None:
    service.apply_text(FILE)
    deleted = service.delete("shop-nightly")
    assert deleted.policy.cluster == "prod"
    with pytest.raises(PolicyNotFound):
        service.get("shop-nightly")
    with pytest.raises(PolicyNotFound):
        service.delete("shop-nightly")
    # The name is free again, on any cluster.
    (a, _) = service.apply_text(edited(cluster="staging"))
    assert a.change == "created" and a.cluster == "staging"


def test_an_edit_racing_a_dispatcher_claim_does_not_bring_back_the_claimed_run(
    catalogs: tuple[PolicyCatalog, ClusterCatalog], clock: Clock
) -> None:
    policies, clusters = catalogs
    service = PolicyService(policies, clusters, clock=clock)
    service.apply_text(FILE)
    claimed_next = utc(2026, 1, 12, 1, 0)

    class ClaimFirst:
        """The dispatcher claims the due run between the edit's read and its write."""

        def __init__(self) -> None:
            self.raced = False

        def __getattr__(self, name: str) -> Any:
            return getattr(policies, name)

        def update(self, *args: Any, **kwargs: Any) -> Any:
            if not self.raced:
                self.raced = True
                record = policies.get("shop-nightly")
                run = RunRecord("shop-nightly", "prod", str(record.next_run_at), DISPATCHED, job_id="j")
                assert policies.claim(record, run, next_run_at=claimed_next, now=clock())
            return policies.update(*args, **kwargs)

    racing = PolicyService(ClaimFirst(), clusters, clock=clock)
    (a, _) = racing.apply_text(edited(retention={"keep_last": 1}))
    assert a.change == "updated"
    record = policies.get("shop-nightly")
    assert record.next_run_at == "2026-01-12T01:00:00.000Z" and record.policy.retention.keep_last == 1
