"""The verification worker over moto and the Kubernetes API test server (or a real cluster): one run per
dispatch, recorded with its RTO, announced, and cleaned up after a crash."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

import pytest

from chalicelib.catalog.verifications import VerificationCatalog
from chalicelib.core.policies import Policy
from chalicelib.core.resources import Resource
from chalicelib.core.restore_options import VERIFICATION_LABEL
from chalicelib.verification.janitor import Janitor
from chalicelib.verification.worker import VerificationWorker, VerifyMessage, verification_id
from tests.conftest import TEST_TABLE
from tests.support.verification import apply_policy, back_up
from tests.support.verification import worker as make_worker

NAMESPACES = Resource("", "v1", "Namespace", "namespaces", False, frozenset({"get", "list", "create", "delete"}))


class Events:
    def __init__(self) -> None:
        self.published: list[tuple[str, dict[str, Any]]] = []

    def publish(self, detail_type: str, detail: dict[str, Any]) -> None:
        self.published.append((detail_type, detail))


@pytest.fixture
def policy(services: Any, app_ns: Any) -> Policy:
    verify = {"schedule": "0 4 * * 0", "kinds": ["resources", "volumes"], "rto_target_minutes": 30}
    return apply_policy(services, list(app_ns.namespaces), verify)


@pytest.fixture
def backed_up(services: Any, kubeconfig_path: Any, policy: Policy) -> Any:
    return back_up(services, kubeconfig_path, policy)


def _worker(services: Any, kube_client: Any, events: Events) -> VerificationWorker:
    return make_worker(services, kube_client, events=events)


def test_a_dispatched_run_verifies_the_newest_backup_once(
    services: Any, kube_client: Any, policy: Policy, backed_up: Any
) -> None:
    events = Events()
    worker = _worker(services, kube_client, events)

    run, created = worker.start(policy.name, scheduled_for="2026-12-06T04:00:00Z")
    again, created_again = worker.start(policy.name, scheduled_for="2026-12-06T04:00:00Z")
    assert created and not created_again and again.verification_id == run.verification_id
    done = worker.handle_message(VerifyMessage(run.verification_id).to_json())
    second = worker.handle_message(VerifyMessage(run.verification_id).to_json())

    assert second is None  # a duplicate delivery runs nothing
    assert done is not None and done.state == "Succeeded", done.message or done.problems
    assert done.backup_id == backed_up.backup_id
    assert done.rto_s is not None and done.rto_s > 0 and done.rto_exceeded is False
    assert set(done.phases) >= {"fetch", "apply", "check"}
    assert done.checked > 20
    # Each kind asked for says what was proven; one that could not be is said, never counted as passed.
    assert done.outcomes["resources"].startswith("verified: ")
    assert done.outcomes["volumes"].startswith("not verified: no kube-controller-manager runs")
    assert "volumes not verified" in done.message
    assert [t for t, _ in events.published] == ["Verification Succeeded"]
    assert events.published[0][1]["verification_id"] == run.verification_id


def test_a_policy_without_a_backup_fails_saying_so(services: Any, kube_client: Any, policy: Policy) -> None:
    events = Events()
    worker = _worker(services, kube_client, events)
    run, _ = worker.start(policy.name)

    done = worker.handle(run.verification_id)

    assert done is not None and done.state == "Failed"
    assert done.message == f"policy {policy.name!r} has no Completed backup to verify"
    assert [t for t, _ in events.published] == ["Verification Failed"]


def test_an_rto_above_target_is_recorded(services: Any, kube_client: Any, policy: Policy, backed_up: Any) -> None:
    ticks = iter(range(0, 1_000_000, 700))  # each reading 700 s after the last: the restore "takes" far over 30 min
    worker = make_worker(services, kube_client, monotonic=lambda: float(next(ticks)))
    run, _ = worker.start(policy.name)

    done = worker.handle(run.verification_id)

    assert done is not None and done.state == "Succeeded"
    assert done.rto_target_minutes == 30
    assert done.rto_s is not None and done.rto_s > 30 * 60
    assert done.rto_exceeded is True


def test_the_janitor_removes_what_a_crashed_run_left(kube_client: Any) -> None:
    crashed = f"v{uuid.uuid4().hex[:11]}"
    name = f"lbv-{crashed}-shop"
    kube_client.create(NAMESPACES, {"metadata": {"name": name, "labels": {VERIFICATION_LABEL: crashed}}})
    janitor = Janitor(kube_client)

    assert janitor.sweep(older_than_s=3600).deleted == ()  # younger than the timeout: maybe still running
    later = Janitor(kube_client, clock=lambda: datetime(2100, 1, 1, tzinfo=UTC))
    swept = later.sweep(older_than_s=3600)

    assert f"namespaces/{name}" in swept.deleted
    live = kube_client.get_object(NAMESPACES, name)
    assert live is None or live["metadata"].get("deletionTimestamp")


def test_scheduled_ids_are_stable_and_hand_runs_are_new() -> None:
    assert verification_id("shop", "2026-12-06T04:00:00Z") == verification_id("shop", "2026-12-06T04:00:00Z")
    assert verification_id("shop", None) != verification_id("shop", None)
    assert len(verification_id("shop", None)) == 12


def test_a_crashed_delivery_is_taken_over_and_its_leftovers_removed(
    services: Any, kube_client: Any, policy: Policy, backed_up: Any
) -> None:
    events = Events()
    worker = _worker(services, kube_client, events)
    run, _ = worker.start(policy.name)
    catalog = VerificationCatalog(services.client("dynamodb"), TEST_TABLE)
    # A delivery claimed the run long ago, restored something and died without a heartbeat since.
    assert catalog.claim(run.verification_id, "crashed", "2000-01-01T00:00:00Z", "1999-12-31T00:00:00Z")
    leftover = f"lbv-{run.verification_id}-dead-shop"
    labels = {VERIFICATION_LABEL: run.verification_id}
    kube_client.create(NAMESPACES, {"metadata": {"name": leftover, "labels": labels}})

    done = worker.handle(run.verification_id)

    assert done is not None and done.state == "Succeeded", done.message or done.problems
    assert done.started_at == "2000-01-01T00:00:00Z"  # the same run, taken over
    live = kube_client.get_object(NAMESPACES, leftover)
    assert live is None or live["metadata"].get("deletionTimestamp")
    assert catalog.finish(run.verification_id, "crashed", {"state": "Failed"}) is None  # the dead worker is fenced
