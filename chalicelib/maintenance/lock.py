"""The repository lock: shared leases for backups, an exclusive one for garbage collection, kept alive by heartbeat.

Built on ``catalog.leases`` (conditional writes with expiry). A holder renews its lease every ``renew_every_s`` from
a background thread; if the holder dies, renewals stop and the lease lapses after ``ttl_s``.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any

from chalicelib.catalog.errors import CatalogError, LeaseHeld
from chalicelib.catalog.errors import LeaseLost as CatalogLeaseLost
from chalicelib.maintenance.errors import LeaseLost, RepositoryBusy
from chalicelib.observability import logger

DEFAULT_TTL_S = 600
DEFAULT_RENEW_S = 60
DEFAULT_POLL_S = 5.0


def _utcnow() -> datetime:
    return datetime.now(UTC)


class HeldLease:
    """A lease this process holds; a daemon thread renews it until ``release`` or ``detach``."""

    def __init__(self, lock: RepositoryLock, lease: Any) -> None:
        self._lock = lock
        self.lease = lease
        self.lost: str | None = None  # why renewal failed, if it did
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._renew_loop, name=f"lease-{lease.holder}", daemon=True)
        self._thread.start()

    @property
    def holder(self) -> str:
        return str(self.lease.holder)

    def check(self) -> None:
        """Raise LeaseLost if a renewal failed: whatever the holder does next is no longer protected."""
        if self.lost is not None:
            raise LeaseLost(self.lost)

    def renew_now(self) -> None:
        try:
            self.lease = self._lock.leases.renew(self.lease, ttl_s=self._lock.ttl_s, now=self._lock.clock())
        except CatalogLeaseLost as exc:
            self.lost = str(exc)
            raise LeaseLost(str(exc)) from exc

    def release(self) -> None:
        """Stop renewing and delete the lease (if it is still ours)."""
        self._halt()
        try:
            self._lock.leases.release(self.lease)
        except CatalogError as exc:
            # The lease lapses on its own; a failed delete only delays the other mode by up to ttl_s.
            logger().warning("could not release lease", extra={"holder": self.holder, "error": str(exc)})

    def detach(self) -> None:
        """Stop renewing but keep the lease: it covers a hand-over to another invocation, then lapses."""
        self._halt()

    def _halt(self) -> None:
        self._stop.set()
        if self._thread is not threading.current_thread():
            self._thread.join(timeout=10)

    def _renew_loop(self) -> None:
        while not self._stop.wait(self._lock.renew_every_s):
            try:
                self.renew_now()
            except LeaseLost:
                logger().error("lease lost", extra={"holder": self.holder, "reason": self.lost})
                return
            except CatalogError as exc:
                # Transient (throttling, network): the lease has ttl_s - renew_every_s of slack for the next try.
                logger().warning("lease renewal failed; retrying", extra={"holder": self.holder, "error": str(exc)})


class RepositoryLock:
    """Shared and exclusive leases on one repository (``scope``)."""

    def __init__(
        self,
        leases: Any,
        scope: str,
        *,
        ttl_s: int = DEFAULT_TTL_S,
        renew_every_s: float = DEFAULT_RENEW_S,
        poll_s: float = DEFAULT_POLL_S,
        clock: Callable[[], datetime] = _utcnow,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        if renew_every_s >= ttl_s:
            raise ValueError("renew_every_s must be shorter than ttl_s, or a live holder's lease would lapse")
        self.leases = leases
        self.scope = scope
        self.ttl_s = ttl_s
        self.renew_every_s = renew_every_s
        self.poll_s = poll_s
        self.clock = clock
        self._sleep = sleep

    def acquire_shared(self, holder: str, *, wait_s: float = 0) -> HeldLease:
        """A shared lease, waiting up to ``wait_s`` for an exclusive holder to finish (RepositoryBusy after)."""
        deadline = time.monotonic() + wait_s
        while True:
            try:
                lease = self.leases.acquire_shared(self.scope, holder, ttl_s=self.ttl_s, now=self.clock())
                return HeldLease(self, lease)
            except LeaseHeld as exc:
                if time.monotonic() >= deadline:
                    raise RepositoryBusy(str(exc)) from exc
            self._sleep(self.poll_s)

    def acquire_exclusive(self, holder: str, *, wait_s: float = 0) -> HeldLease:
        """The exclusive lease once no shared lease is live; waits up to ``wait_s`` for them while holding it.

        Holding it while waiting means no new backup starts, so the running ones drain instead of starving us.
        """
        try:
            lease = self.leases.acquire_exclusive(self.scope, holder, ttl_s=self.ttl_s, now=self.clock())
        except LeaseHeld as exc:
            raise RepositoryBusy(str(exc)) from exc
        held = HeldLease(self, lease)
        deadline = time.monotonic() + wait_s
        while True:
            shared = self.leases.live_shared(self.scope, now=self.clock())
            if not shared:
                return held
            if time.monotonic() >= deadline:
                held.release()
                names = ", ".join(sorted(s.holder for s in shared)[:5])
                raise RepositoryBusy(f"{len(shared)} backup(s) still hold shared leases on {self.scope}: {names}")
            self._sleep(self.poll_s)
            held.check()

    @contextmanager
    def shared(self, holder: str, *, wait_s: float = 0) -> Iterator[HeldLease]:
        held = self.acquire_shared(holder, wait_s=wait_s)
        try:
            yield held
        finally:
            held.release()

    @contextmanager
    def exclusive(self, holder: str, *, wait_s: float = 0) -> Iterator[HeldLease]:
        held = self.acquire_exclusive(holder, wait_s=wait_s)
        try:
            yield held
        finally:
            held.release()
