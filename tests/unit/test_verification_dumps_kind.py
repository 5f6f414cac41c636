"""The dumps kind's entries as data: which dumps run and into what, the timeout, and the outcome's wording."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

from chalicelib.core.dumps import dumps_from_list
from chalicelib.verification import dumps as dump_kind


def _manifest(*records: dict[str, Any]) -> Any:
    return SimpleNamespace(cluster="c1", backup_id="b1", dumps=list(records))


def _record(name: str, engine: str = "postgres", **extra: Any) -> dict[str, Any]:
    return {
        "name": name,
        "engine": engine,
        "namespace": "shop",
        "key": f"dumps/shop/{name}",
        "state": "completed",
    } | extra


SPECS = dumps_from_list(
    [
        {"name": "orders", "engine": "postgres", "namespace": "shop", "target": "db", "databases": ["shop"],
         "credentials": {"secret": "db"}},
        {"name": "cache", "engine": "redis", "namespace": "shop", "target": "redis"},
        {"name": "pods", "engine": "mysql", "namespace": "shop", "target": {"selector": "app=db"},
         "credentials": {"secret": "db"}},
    ]
)  # fmt: skip


def test_the_plan_says_per_dump_what_runs_and_what_does_not_and_why() -> None:
    manifest = _manifest(_record("orders"), _record("cache", "redis"), _record("pods", "mysql"))
    entries = dump_kind.plan(manifest, SPECS, {"shop": "lbv-x-shop"}, "v123abc-9f0e", controllers=True)
    by = {e["dump"]: e for e in entries}
    assert by["shop/orders"]["state"] == "waiting" and by["shop/orders"]["namespace"] == "lbv-x-shop"
    assert by["shop/orders"]["database"] == "lifeboat_verify_v123abc9f0e"
    assert by["shop/cache"]["state"] == "waiting" and by["shop/cache"]["database"] == "", "an RDB takes no database"
    assert by["shop/pods"]["state"] == "not run" and "pod selector" in by["shop/pods"]["error"]


def test_without_controllers_nothing_runs_and_the_outcome_is_not_verified_never_passed() -> None:
    entries = dump_kind.plan(_manifest(_record("orders")), SPECS, {"shop": "s"}, "v1", controllers=False)
    assert [e["state"] for e in entries] == ["not run"]
    assert not dump_kind.waiting(entries)
    outcome, problems = dump_kind.outcome(entries, "b1")
    assert outcome.startswith("not verified: 1 of 1 dumps not run (shop/orders: no kube-controller-manager runs")
    assert problems == []


class _Jobs:
    def __init__(self, status: dict[str, Any] | None) -> None:
        self.status = status

    def get_object(self, resource: Any, name: str, namespace: str) -> Any:
        return None if self.status is None else {"status": self.status}


def test_a_job_still_running_at_the_deadline_fails_its_dump() -> None:
    entry = {"dump": "shop/orders", "namespace": "s", "job": "lifeboat-restore-orders-1", "state": "running"}
    assert dump_kind.poll(_Jobs({}), (entry,), timed_out=False)[0]["state"] == "running"
    [late] = dump_kind.poll(_Jobs({}), (entry,), timed_out=True)
    assert late["state"] == "failed" and "did not finish before the timeout" in late["error"]
    [gone] = dump_kind.poll(_Jobs(None), (entry,), timed_out=False)
    assert gone["state"] == "failed" and "is gone" in gone["error"]
    outcome, problems = dump_kind.outcome((late,), "b1")
    assert outcome == "failed: 1 of 1 dumps did not restore" and problems[0].startswith("dump shop/orders did not")


def test_a_backup_without_dumps_is_said_so_and_the_record_keeps_each_dump() -> None:
    assert dump_kind.outcome((), "b1") == ("not verified: backup b1 holds no dumps", [])
    entry = {"dump": "shop/orders", "engine": "postgres", "spec": {}, "key": "k", "state": "passed", "error": ""}
    assert dump_kind.recorded((entry,)) == [{"dump": "shop/orders", "engine": "postgres", "state": "passed"}]
