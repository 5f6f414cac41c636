"""Backup use case: collect (discovery + paged lists) -> per-item handling -> write."""

from chalicelib.backup.errors import BackupError, ClusterUnavailable
from chalicelib.backup.service import BackupOutcome, BackupService

__all__ = ["BackupError", "BackupOutcome", "BackupService", "ClusterUnavailable"]
