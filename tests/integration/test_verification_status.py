"""A policy's verification in its status: the newest passed run, its RTO against the target, and overdue runs."""

from __future__ import annotations

import json
from datetime import timedelta
from typing import Any

from chalicelib.catalog import BackupCatalog
from chalicelib.catalog.policies import PolicyCatalog
from chalicelib.catalog.verifications import VerificationCatalog, VerificationRecord
from chalicelib.core.policies import Policy
from chalicelib.scheduling.status import StatusService
from tests.conftest import TEST_TABLE
from tests.support.clocks import utc

DAILY = {"schedule": {"cron": "0 4 * * *"}, "rto_target_minutes": 10}


def _policy(catalog: PolicyCatalog, now: Any, **verify: Any) -> Policy:
    policy = Policy.from_dict(
        {
            "name": "shop",
            "cluster": "prod",
            "schedule": "0 2 * * *",
            "scope": {"include_namespaces": ["shop"]},
            "verify": {**DAILY, **verify},
        }
    )
    catalog.create(policy, next_run_at=None, now=now)
    return policy


def _passed(runs: VerificationCatalog, run_id: str, at: Any, rto_s: float) -> None:
    created = at.strftime("%Y-%m-%dT%H:%M:%SZ")
    runs.create(VerificationRecord(run_id, "shop", "prod", "prod", created_at=created, rto_target_minutes=10))
    runs.claim(run_id, "w", created, created)
    runs.finish(run_id, "w", {"state": "Succeeded", "backup_id": "b-1", "rto_s": rto_s, "rto_exceeded": rto_s > 600})


def test_a_policy_never_verified_becomes_overdue_after_two_periods(dynamodb: Any, table: str, capsys: Any) -> None:
    policies, runs = PolicyCatalog(dynamodb, TEST_TABLE), VerificationCatalog(dynamodb, TEST_TABLE)
    created = utc(2026, 1, 1, 0, 0)
    _policy(policies, created)

    def status_at(now: Any) -> Any:
        service = StatusService(policies, BackupCatalog(dynamodb, TEST_TABLE), clock=lambda: now, verifications=runs)
        (status,) = service.statuses()
        return service, status

    _, young = status_at(created + timedelta(hours=47))
    assert young.verification is not None and young.verification.overdue is False
    service, old = status_at(created + timedelta(hours=49))
    assert old.verification is not None and old.verification.overdue is True
    assert old.verification.verified_at is None and old.verification.rto_target_minutes == 10

    capsys.readouterr()
    service.publish_rpo_metrics()
    docs = [json.loads(line) for line in capsys.readouterr().out.splitlines() if line.startswith('{"_aws"')]
    totals = [d for d in docs if "PoliciesVerificationOverdue" in d]
    assert (
        totals and totals[-1]["PoliciesVerificationOverdue"] == [1.0] or totals[-1]["PoliciesVerificationOverdue"] == 1
    )


def test_the_newest_pass_and_its_rto_are_shown(dynamodb: Any, table: str) -> None:
    policies, runs = PolicyCatalog(dynamodb, TEST_TABLE), VerificationCatalog(dynamodb, TEST_TABLE)
    created = utc(2026, 1, 1, 0, 0)
    _policy(policies, created)
    _passed(runs, "v000000000001", utc(2026, 1, 5, 4, 0), 1200.0)
    now = utc(2026, 1, 5, 12, 0)

    (status,) = StatusService(
        policies, BackupCatalog(dynamodb, TEST_TABLE), clock=lambda: now, verifications=runs
    ).statuses()

    v = status.verification
    assert v is not None
    assert (v.verified_at, v.verified_backup_id, v.rto_s, v.rto_exceeded) == (
        "2026-01-05T04:00:00Z",
        "b-1",
        1200.0,
        True,
    )
    assert v.overdue is False and v.last_state == "Succeeded"
