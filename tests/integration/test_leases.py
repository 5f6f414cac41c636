"""Repository leases in DynamoDB (moto): shared vs exclusive, expiry of dead holders, heartbeats, races."""

from __future__ import annotations

import contextlib
import threading
import time
from typing import Any

import pytest

from chalicelib.catalog.errors import LeaseHeld, LeaseLost
from chalicelib.catalog.leases import LeaseCatalog
from chalicelib.maintenance.errors import RepositoryBusy
from chalicelib.maintenance.lock import RepositoryLock
from tests.support.aws import SerializedClient
from tests.support.clocks import Clock, utc

SCOPE = "s3://lifeboat-test-primary/lifeboat/v1/"


@pytest.fixture
def leases(dynamodb: Any, table: str) -> LeaseCatalog:
    return LeaseCatalog(SerializedClient(dynamodb), table)


@pytest.fixture
def clock() -> Clock:
    return Clock(utc(2026, 3, 1, 3, 0))


def lock(leases: LeaseCatalog, clock: Clock, **kwargs: Any) -> RepositoryLock:
    kwargs.setdefault("renew_every_s", 3600)  # no background renewals unless a test wants them
    kwargs.setdefault("ttl_s", 7200)
    return RepositoryLock(leases, SCOPE, clock=clock, poll_s=0.01, **kwargs)


def test_shared_leases_coexist_and_exclude_the_exclusive_one(leases: LeaseCatalog, clock: Clock) -> None:
    repo_lock = lock(leases, clock)
    a = repo_lock.acquire_shared("backup-a")
    b = repo_lock.acquire_shared("backup-b")
    assert {lease.holder for lease in leases.live_shared(SCOPE, now=clock())} == {"backup-a", "backup-b"}
    with pytest.raises(RepositoryBusy, match="2 backup"):
        repo_lock.acquire_exclusive("gc", wait_s=0)
    # The refused collector gave its exclusive lease back: backups may still start.
    assert leases.exclusive(SCOPE, now=clock()) is None
    a.release()
    b.release()
    with repo_lock.exclusive("gc") as held:
        assert held.lease.exclusive
        with pytest.raises(RepositoryBusy, match="gc holds the exclusive lease"):
            repo_lock.acquire_shared("backup-c", wait_s=0)
    repo_lock.acquire_shared("backup-c").release()


def test_exclusive_waits_for_running_backups_while_blocking_new_ones(leases: LeaseCatalog, clock: Clock) -> None:
    repo_lock = lock(leases, clock)
    running = repo_lock.acquire_shared("backup-running")
    result: dict[str, Any] = {}

    def collect() -> None:
        result["held"] = repo_lock.acquire_exclusive("gc", wait_s=10)

    collector = threading.Thread(target=collect)
    collector.start()
    time.sleep(0.2)
    assert collector.is_alive(), "the collector waits while a backup holds a shared lease"
    with pytest.raises(LeaseHeld):
        leases.acquire_shared(SCOPE, "backup-new", ttl_s=60, now=clock())
    running.release()
    collector.join(timeout=5)
    assert result["held"].lease.holder == "gc"
    result["held"].release()


def test_a_dead_holders_lease_expires(leases: LeaseCatalog, clock: Clock) -> None:
    leases.acquire_shared(SCOPE, "dead-backup", ttl_s=600, now=clock())
    with pytest.raises(RepositoryBusy):
        lock(leases, clock).acquire_exclusive("gc", wait_s=0)
    clock.advance(seconds=601)  # the holder stopped renewing
    assert leases.live_shared(SCOPE, now=clock()) == []
    gc = leases.acquire_exclusive(SCOPE, "gc", ttl_s=600, now=clock())
    clock.advance(seconds=601)  # the collector died too
    other = leases.acquire_exclusive(SCOPE, "gc-2", ttl_s=600, now=clock())
    assert other.holder == "gc-2"
    # The first collector wakes up: it may neither renew nor release what is no longer its lease.
    with pytest.raises(LeaseLost):
        leases.renew(gc, ttl_s=600, now=clock())
    assert leases.release(gc) is False
    assert leases.exclusive(SCOPE, now=clock()).holder == "gc-2"  # type: ignore[union-attr]


def test_renewal_after_expiry_is_refused_even_without_a_new_holder(leases: LeaseCatalog, clock: Clock) -> None:
    # A shared lease that lapsed may have let a collection start: renewing it would overlap that collection.
    lease = leases.acquire_shared(SCOPE, "slow-backup", ttl_s=60, now=clock())
    clock.advance(seconds=61)
    with pytest.raises(LeaseLost):
        leases.renew(lease, ttl_s=60, now=clock())
    renewed = leases.renew(leases.acquire_shared(SCOPE, "slow-backup", ttl_s=60, now=clock()), ttl_s=120, now=clock())
    assert renewed.expires_at == int(clock().timestamp()) + 120


def test_heartbeat_keeps_a_lease_alive(leases: LeaseCatalog) -> None:
    real = RepositoryLock(leases, SCOPE, ttl_s=2, renew_every_s=0.2, poll_s=0.01)
    held = real.acquire_shared("long-backup")
    first = held.lease.expires_at
    time.sleep(2.5)  # longer than the TTL: only renewals keep it alive
    from datetime import UTC, datetime

    assert [lease.holder for lease in leases.live_shared(SCOPE, now=datetime.now(UTC))] == ["long-backup"]
    assert held.lease.expires_at > first and held.lost is None
    held.release()
    assert leases.live_shared(SCOPE, now=datetime.now(UTC)) == []


def test_two_collectors_racing_exactly_one_wins(leases: LeaseCatalog, clock: Clock) -> None:
    def contend(name: str, barrier: threading.Barrier, winners: list[str]) -> None:
        barrier.wait()
        with contextlib.suppress(LeaseHeld):
            leases.acquire_exclusive(SCOPE, name, ttl_s=60, now=clock())
            winners.append(name)

    for round_ in range(10):
        barrier = threading.Barrier(4)
        winners: list[str] = []
        threads = [
            threading.Thread(target=contend, args=(f"gc-{round_}-{i}", barrier, winners)) for i in range(4)
        ]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert len(winners) == 1, winners
        clock.advance(seconds=61)


def test_a_backup_and_a_collector_racing_never_both_proceed(leases: LeaseCatalog, clock: Clock) -> None:
    repo_lock = lock(leases, clock)
    outcomes = []
    def backup(name: str, barrier: threading.Barrier, got: dict[str, Any]) -> None:
        barrier.wait()
        with contextlib.suppress(RepositoryBusy):
            got["backup"] = repo_lock.acquire_shared(name, wait_s=0)

    def collector(name: str, barrier: threading.Barrier, got: dict[str, Any]) -> None:
        barrier.wait()
        with contextlib.suppress(RepositoryBusy):
            got["gc"] = repo_lock.acquire_exclusive(name, wait_s=0)

    for round_ in range(15):
        barrier = threading.Barrier(2)
        got: dict[str, Any] = {}
        threads = [
            threading.Thread(target=backup, args=(f"backup-{round_}", barrier, got)),
            threading.Thread(target=collector, args=(f"gc-{round_}", barrier, got)),
        ]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert not ("backup" in got and "gc" in got), f"round {round_}: both hold the repository"
        # Requests are applied one at a time, so whoever is first wins and the other one backs off: never neither.
        assert len(got) == 1, f"round {round_}: nobody got the repository"
        outcomes.append(next(iter(got)))
        for held in got.values():
            held.release()
        clock.advance(seconds=1)
    assert len(outcomes) == 15


def test_scope_and_holder_may_not_contain_the_key_separator(leases: LeaseCatalog, clock: Clock) -> None:
    with pytest.raises(ValueError, match="must not contain"):
        leases.acquire_shared(SCOPE, "job#1", ttl_s=60, now=clock())
