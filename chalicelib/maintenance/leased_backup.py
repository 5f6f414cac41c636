"""Backups under a shared repository lease, so garbage collection never deletes what a running backup relies on.

A backup decides which blobs to skip from the index it loaded at its start; if a collection deleted one of those
blobs before the manifest landed, the committed backup would reach a missing blob. The shared lease, taken before
the backup claims its job and held until its record is final, keeps the exclusive (collecting) lease away.

Each invocation holds its own lease (holder = job or backup id + a random suffix), so a duplicate delivery can never
release the lease of the worker that owns the job. When a run returns without a final state (a duplicate of a live
job, or a sharded backup whose shards run in other invocations), and after every shard, the lease is left to lapse
after its TTL instead of released: that covers the hand-over to the next invocation. The commit releases its lease.
"""

from __future__ import annotations

import secrets
from typing import Any

from chalicelib.core.models import TERMINAL
from chalicelib.maintenance.lock import RepositoryLock

# A collection in progress usually ends within this; otherwise the job goes back to the queue (RepositoryBusy).
DEFAULT_WAIT_S = 120


class LeasedBackupService:
    """Wraps a backup service (anything with ``run(job, **kwargs)``) with the repository's shared lease."""

    def __init__(self, inner: Any, lock: RepositoryLock, *, wait_s: float = DEFAULT_WAIT_S) -> None:
        self._inner = inner
        self._lock = lock
        self._wait_s = wait_s

    def run(self, job: Any, **kwargs: Any) -> Any:
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
        """One shard of a sharded backup: leased while it runs, and the lease then covers the hand-over to the next
        shard or the commit (it lapses after its TTL unless they take theirs)."""
        held = self._acquire(str(message.backup_id))
        try:
            return self._inner.run_shard(message, **kwargs)
        finally:
            held.detach()

    def commit(self, message: Any, **kwargs: Any) -> Any:
        """The commit of a sharded backup: after it, the backup relies on nothing it has not written."""
        held = self._acquire(str(message.backup_id))
        try:
            return self._inner.commit(message, **kwargs)
        finally:
            held.release()

    def _acquire(self, name: str) -> Any:
        holder = f"{name.replace('#', '_')[:200]}.{secrets.token_hex(4)}"
        return self._lock.acquire_shared(holder, wait_s=self._wait_s)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)
