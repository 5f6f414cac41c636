"""Errors of the restore use case."""

from __future__ import annotations


class RestoreError(Exception):
    """A restore could not be planned or run."""


class BackupUnreadable(RestoreError):
    """A blob or tree of the backup is missing or corrupt; nothing was applied to the cluster."""


class ClusterUnavailable(RestoreError):
    """The target cluster could not be reached, or refused our credentials, before anything was applied."""
