"""Verification runs in the catalog: created once, claimed by one worker, ended only by the worker that holds it."""

from __future__ import annotations

from typing import Any

import pytest

from chalicelib.catalog.errors import RecordNotFound
from chalicelib.catalog.verifications import VerificationCatalog, VerificationRecord
from tests.conftest import TEST_TABLE


@pytest.fixture
def catalog(dynamodb: Any, table: str) -> VerificationCatalog:
    return VerificationCatalog(dynamodb, TEST_TABLE)


def _record(verification_id: str = "v0123456789ab", created_at: str = "2026-12-02T04:00:00Z") -> VerificationRecord:
    return VerificationRecord(
        verification_id=verification_id,
        policy="shop-nightly",
        cluster="prod",
        target_cluster="prod",
        created_at=created_at,
        rto_target_minutes=30,
    )


def test_a_run_is_created_once(catalog: VerificationCatalog) -> None:
    assert catalog.create(_record()) is True
    assert catalog.create(_record()) is False
    assert catalog.get("v0123456789ab").state == "Pending"


def test_one_worker_claims_and_only_it_finishes(catalog: VerificationCatalog) -> None:
    catalog.create(_record())
    first = catalog.claim("v0123456789ab", "worker-a", "2026-12-02T04:00:05Z", stale_before="2026-12-02T03:30:05Z")
    assert first is not None and first.state == "Running" and first.worker == "worker-a"
    assert catalog.claim("v0123456789ab", "worker-b", "2026-12-02T04:00:06Z", "2026-12-02T03:30:06Z") is None

    assert catalog.finish("v0123456789ab", "worker-b", {"state": "Succeeded"}) is None
    done = catalog.finish(
        "v0123456789ab",
        "worker-a",
        {"state": "Failed", "problems": [{"key": f"configmaps/x/{i}", "problem": "p"} for i in range(60)]},
    )
    assert done is not None and done.state == "Failed"
    assert len(done.problems) == 50 and done.problems_total == 60
    # Ended runs are never claimed again, even long after.
    assert catalog.claim("v0123456789ab", "worker-c", "2026-12-03T00:00:00Z", "2026-12-02T23:00:00Z") is None


def test_a_crashed_worker_is_taken_over_after_its_heartbeat_goes_stale(catalog: VerificationCatalog) -> None:
    catalog.create(_record())
    catalog.claim("v0123456789ab", "worker-a", "2026-12-02T04:00:05Z", "2026-12-02T03:30:05Z")

    taken = catalog.claim("v0123456789ab", "worker-b", "2026-12-02T04:40:00Z", stale_before="2026-12-02T04:10:00Z")

    assert taken is not None and taken.worker == "worker-b"
    assert taken.started_at == "2026-12-02T04:00:05Z"  # the run's start, not the takeover's
    assert catalog.finish("v0123456789ab", "worker-a", {"state": "Succeeded"}) is None


def test_latest_and_listing_per_policy(catalog: VerificationCatalog) -> None:
    for index, created in enumerate(["2026-12-01T04:00:00Z", "2026-12-02T04:00:00Z", "2026-12-03T04:00:00Z"]):
        run_id = f"v00000000000{index}"
        catalog.create(_record(run_id, created))
        catalog.claim(run_id, "w", created, created)
        if index < 2:
            catalog.finish(run_id, "w", {"state": "Succeeded" if index == 0 else "Failed", "rto_s": 12.5})

    assert [r.verification_id for r in catalog.list_for_policy("shop-nightly")] == [
        "v000000000002",
        "v000000000001",
        "v000000000000",
    ]
    latest = catalog.latest("shop-nightly")
    assert latest is not None and latest.verification_id == "v000000000001"
    passed = catalog.latest("shop-nightly", passed_only=True)
    assert passed is not None and passed.verification_id == "v000000000000" and passed.rto_s == 12.5
    assert catalog.latest("other-policy") is None


def test_unknown_runs_are_named(catalog: VerificationCatalog) -> None:
    with pytest.raises(RecordNotFound, match="verification 'v-missing' is not in the catalog"):
        catalog.get("v-missing")
    with pytest.raises(RecordNotFound, match="v-missing"):
        catalog.claim("v-missing", "w", "2026-12-02T04:00:00Z", "2026-12-02T03:00:00Z")
