from __future__ import annotations

import threading
import time
from typing import Any

import pytest

from chalicelib.core.resources import Resource
from chalicelib.core.restore_jobs import RestoreState
from chalicelib.core.restore_options import RestoreOptions
from chalicelib.core.restore_plan import PlanItem, plan_object
from chalicelib.kube.errors import AlreadyExists, Invalid, Unreachable
from chalicelib.restore.executor import ObjectApplier, run_parallel
from chalicelib.restore.results import ObjectResult, Outcome, final_state

CM = Resource("", "v1", "ConfigMap", "configmaps", True, frozenset({"create"}))


def item(name: str) -> PlanItem:
    body = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name, "namespace": "shop"}}
    return plan_object(body, CM, RestoreOptions(), None)


class Client:
    def __init__(self, error: Exception | None = None) -> None:
        self.error = error
        self.calls = 0

    def create(self, resource: Resource, obj: dict[str, Any], namespace: str | None = None) -> dict[str, Any]:
        self.calls += 1
        if self.error is not None:
            raise self.error
        return obj

    def get_object(self, resource: Resource, name: str, namespace: str | None = None) -> dict[str, Any] | None:
        """The live object a skipped create found (its uid re-links what the restore owns)."""
        return {"metadata": {"name": name, "namespace": namespace, "uid": "live-uid"}}


def test_created_exists_and_failed_outcomes() -> None:
    assert ObjectApplier(Client(), "skip").apply(item("a")).outcome == Outcome.CREATED
    exists = ObjectApplier(Client(AlreadyExists("409")), "skip").apply(item("a"))
    assert (exists.outcome, exists.reason) == (Outcome.SKIPPED, "exists")
    invalid = ObjectApplier(Client(Invalid("POST /api/v1/...: 422 Invalid: bad")), "skip").apply(item("a"))
    assert (invalid.outcome, invalid.reason, invalid.name) == (Outcome.FAILED, "invalid", "a")
    assert "422" in invalid.message


def test_unreachable_cluster_stops_being_asked() -> None:
    client = Client(Unreachable("cannot reach the Kubernetes API"))
    applier = ObjectApplier(client, "skip", unreachable_limit=3)
    results = [applier.apply(item(f"cm-{i}")) for i in range(10)]
    assert client.calls == 3
    assert all(r.outcome == Outcome.FAILED and r.reason == "unreachable" for r in results)
    assert "not attempted" in results[-1].message
    assert applier.cluster_gone
    assert final_state(results) == RestoreState.FAILED


def test_final_state() -> None:
    created = ObjectResult.of(item("a"), Outcome.CREATED, "new")
    exists = ObjectResult.of(item("b"), Outcome.SKIPPED, "exists")
    filtered = ObjectResult.of(item("c"), Outcome.SKIPPED, "filtered")
    failed = ObjectResult.of(item("d"), Outcome.FAILED, "invalid", "422")
    assert final_state([created, exists, filtered]) == RestoreState.COMPLETED
    assert final_state([created, failed]) == RestoreState.PARTIALLY_FAILED
    assert final_state([exists, failed]) == RestoreState.PARTIALLY_FAILED
    assert final_state([filtered, failed]) == RestoreState.FAILED
    assert final_state([created], interrupted=True) == RestoreState.INTERRUPTED
    assert ObjectResult.from_dict(failed.to_dict()) == failed


def test_run_parallel_bounds_concurrency_and_honours_stop() -> None:
    lock = threading.Lock()
    running = peak = 0

    def apply(planned: PlanItem) -> ObjectResult:
        nonlocal running, peak
        with lock:
            running += 1
            peak = max(peak, running)
        time.sleep(0.01)
        with lock:
            running -= 1
        return ObjectResult.of(planned, Outcome.CREATED, "new")

    items = [item(f"cm-{i}") for i in range(20)]
    results = list(run_parallel(items, apply, concurrency=4))
    assert sorted(r.name for r in results) == sorted(i.name for i in items)
    assert 1 < peak <= 4
    stopped = list(run_parallel(items, apply, concurrency=4, stop=lambda: True))
    assert stopped == []


def _restore_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name.startswith("lifeboat-restore-")]


def test_run_parallel_takes_no_more_than_the_caller_has_received_plus_concurrency() -> None:
    taken: list[str] = []
    lock = threading.Lock()

    def apply(planned: PlanItem) -> ObjectResult:
        with lock:
            taken.append(planned.name)
        return ObjectResult.of(planned, Outcome.CREATED, "new")

    results = run_parallel([item(f"cm-{i}") for i in range(50)], apply, concurrency=4)
    first = next(results)
    time.sleep(0.05)  # the workers had time to take everything they were allowed to
    assert first.name in taken
    assert len(taken) <= 1 + 4  # the one received, and a window of four more
    results.close()  # an early close stops the taking and waits for the workers
    assert len(taken) <= 1 + 4 + 4
    assert _restore_threads() == []


def test_run_parallel_raises_what_apply_raised_and_stops_taking() -> None:
    calls: list[str] = []

    def apply(planned: PlanItem) -> ObjectResult:
        calls.append(planned.name)
        if planned.name == "cm-3":
            raise RuntimeError("the applier broke on cm-3")
        return ObjectResult.of(planned, Outcome.CREATED, "new")

    items = [item(f"cm-{i}") for i in range(200)]
    with pytest.raises(RuntimeError, match="cm-3"):
        list(run_parallel(items, apply, concurrency=2))
    assert len(calls) < len(items)
    assert _restore_threads() == []


def test_run_parallel_refuses_a_concurrency_below_one() -> None:
    with pytest.raises(ValueError, match="concurrency"):
        next(run_parallel([item("a")], lambda p: ObjectResult.of(p, Outcome.CREATED, "new"), concurrency=0))


def test_run_parallel_starts_no_more_threads_than_a_level_has_objects(monkeypatch: pytest.MonkeyPatch) -> None:
    started: list[str] = []
    real_start = threading.Thread.start

    def counting_start(self: threading.Thread) -> None:
        started.append(self.name)
        real_start(self)

    monkeypatch.setattr(threading.Thread, "start", counting_start)

    def apply(planned: PlanItem) -> ObjectResult:
        return ObjectResult.of(planned, Outcome.CREATED, "new")

    results = list(run_parallel([item("a"), item("b")], apply, concurrency=16))
    assert sorted(r.name for r in results) == ["a", "b"]
    assert len([n for n in started if n.startswith("lifeboat-restore-")]) == 2
    many = list(run_parallel((item(f"cm-{i}") for i in range(40)), apply, concurrency=4))  # not sized: the bound
    assert len(many) == 40
    assert len([n for n in started if n.startswith("lifeboat-restore-")]) == 2 + 4
