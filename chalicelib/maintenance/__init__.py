"""Repository maintenance: leases, retention per policy and garbage collection (restic ``prune``)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from chalicelib.maintenance.errors import CollectionAborted, LeaseLost, MaintenanceError, RepositoryBusy
from chalicelib.maintenance.lock import HeldLease, RepositoryLock

if TYPE_CHECKING:
    from chalicelib.maintenance.gc import CollectionReport, collect_garbage

__all__ = [
    "CollectionAborted",
    "CollectionReport",
    "HeldLease",
    "LeaseLost",
    "MaintenanceError",
    "RepositoryBusy",
    "RepositoryLock",
    "collect_garbage",
]


def __getattr__(name: str) -> Any:
    """Garbage collection on first use: the dispatcher's repository lock does not load the repository code."""
    if name in ("CollectionReport", "collect_garbage"):
        from chalicelib.maintenance import gc

        return getattr(gc, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
