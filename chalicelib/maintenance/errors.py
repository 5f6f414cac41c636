"""Errors of repository maintenance (leases, retention, garbage collection)."""

from __future__ import annotations


class MaintenanceError(Exception):
    """Base class for errors of repository maintenance."""


class RepositoryBusy(MaintenanceError):
    """The repository lease could not be taken in time: a collection or backups hold it; try again later."""


class LeaseLost(MaintenanceError):
    """A lease expired or changed hands while its holder was working; the holder must stop."""


class CollectionAborted(MaintenanceError):
    """Garbage collection stopped before deleting anything: it could not see every backup's blobs."""
