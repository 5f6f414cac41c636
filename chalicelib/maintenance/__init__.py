"""Repository maintenance: leases, retention per policy and garbage collection (restic ``prune``)."""

from __future__ import annotations

from chalicelib.maintenance.errors import CollectionAborted, LeaseLost, MaintenanceError, RepositoryBusy
from chalicelib.maintenance.gc import CollectionReport, collect_garbage
from chalicelib.maintenance.lock import HeldLease, RepositoryLock

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
