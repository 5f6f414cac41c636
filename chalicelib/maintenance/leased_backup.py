"""Backups under a shared repository lease, so garbage collection never deletes what a running backup relies on.

A backup decides which blobs to skip from the index it loaded at its start; if a collection deleted one of those
blobs before the manifest landed, the committed backup would reach a missing blob. The shared lease, taken before
the backup claims its job and held until its record is final, keeps the exclusive (collecting) lease away.

A one-shot run holds its own lease (holder = job id + a random suffix), so a duplicate delivery can never release
the lease of the worker that owns the job. When a run returns without a final state (a duplicate of a live job, or a
sharded backup whose shards run in other invocations), the lease is left to lapse after its TTL instead of released:
that covers the hand-over to the next invocation.

The shards and the commit of a sharded backup share one lease named after the backup (``<backup id>.shards``), so
the repository holds one lease item per backup, not one per shard. Every shard invocation takes it again (which
extends it) and renews it while it runs, then leaves it to cover the hand-over. A process that took or renewed it
recently (more than half the TTL is left) trusts it instead of writing again: only the commit's release or a
failed backup ends the lease early, and a shard that runs after that is moot. The commit, or a shard that fails the
backup, releases it. So from the coordinator's lease to the commit, a live shared lease stays on the repository as
long as each step follows the last within the TTL.
"""

from __future__ import annotations

import secrets
import threading
from typing import Any

from chalicelib.aws.events import announcing_in_background
from chalicelib.core.models import TERMINAL
from chalicelib.maintenance.lock import HeldLease, RepositoryLock

# A collection in progress usually ends within this; otherwise the job goes back to the queue (RepositoryBusy).
DEFAULT_WAIT_S = 120


class LeasedBackupService:
    """Wraps a backup service (anything with ``run(job, **kwargs)``) with the repository's shared lease."""

    def __init__(self, inner: Any, lock: RepositoryLock, *, wait_s: float = DEFAULT_WAIT_S) -> None:
        self._inner = inner
        self._lock = lock
        self._wait_s = wait_s
        self._shard_leases: dict[str, Any] = {}  # backup id -> the backup's shared lease as this process last wrote it
        self._guard = threading.Lock()

    def run(self, job: Any, **kwargs: Any) -> Any:
        # The backup's last event is put while the lease is released (``announcing_in_background``).
        with announcing_in_background():
            held = self._acquire(str(job.job_id))
            final = False
            try:
                outcome = self._inner.run(job, **kwargs)
                final = outcome.record.state in TERMINAL
                return outcome
            except BaseException:
                final = True  # nothing of ours continues; a redelivery re-reads the index under a new lease
                raise
            finally:
                if final:
                    held.release()
                else:
                    held.detach()

    def run_shard(self, message: Any, **kwargs: Any) -> Any:
        """One shard of a sharded backup under the backup's shared lease; the lease then covers the hand-over to
        the next shard or the commit (it lapses after its TTL unless they take it again)."""
        backup_id = str(message.backup_id)
        held = self._backup_lease(backup_id)
        released = False
        try:
            outcome = self._inner.run_shard(message, **kwargs)
            if isinstance(outcome, dict) and outcome.get("status") == "Failed":
                held.release()  # this shard failed the backup: nothing of it continues
                released = True
            return outcome
        finally:
            if not released:
                held.detach()
            with self._guard:
                if released or held.lost is not None:
                    self._shard_leases.pop(backup_id, None)
                else:
                    self._shard_leases[backup_id] = held.lease

    def commit(self, message: Any, **kwargs: Any) -> Any:
        """The commit of a sharded backup: after it, the backup relies on nothing it has not written."""
        backup_id = str(message.backup_id)
        held = self._lock.acquire_shared(_backup_holder(backup_id), wait_s=self._wait_s)
        with self._guard:
            self._shard_leases.pop(backup_id, None)
        try:
            return self._inner.commit(message, **kwargs)
        finally:
            held.release()

    def resume_volumes(self, message: Any, **kwargs: Any) -> Any:
        """A backup waiting for its volume snapshots looks again under a shared lease of its own; the lease covers
        the wait until the next look (it lapses after its TTL unless that look takes it again) and is released once
        the backup is final."""
        held = self._lock.acquire_shared(_volumes_holder(str(message.backup_id)), wait_s=self._wait_s)
        final = True
        try:
            record, what = self._inner.resume_volumes(message, **kwargs)
            final = record is None or record.state in TERMINAL
            return record, what
        finally:
            if final:
                held.release()
            else:
                held.detach()

    def _backup_lease(self, backup_id: str) -> HeldLease:
        """The backup's shared lease, renewed while the shard runs: taken again unless this process holds it with
        more than half the TTL left."""
        now = self._lock.clock().timestamp()
        with self._guard:
            for other, lease in list(self._shard_leases.items()):
                if lease.expires_at < now:
                    del self._shard_leases[other]
            lease = self._shard_leases.get(backup_id)
        if lease is not None and lease.expires_at - now > self._lock.ttl_s / 2:
            return HeldLease(self._lock, lease)
        return self._lock.acquire_shared(_backup_holder(backup_id), wait_s=self._wait_s)

    def _acquire(self, name: str) -> Any:
        holder = f"{name.replace('#', '_')[:200]}.{secrets.token_hex(4)}"
        return self._lock.acquire_shared(holder, wait_s=self._wait_s)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)


def _backup_holder(backup_id: str) -> str:
    return f"{backup_id.replace('#', '_')[:200]}.shards"


def _volumes_holder(backup_id: str) -> str:
    return f"{backup_id.replace('#', '_')[:200]}.volumes"
