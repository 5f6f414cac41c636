"""Restore: the engine (read and verify a backup -> plan -> apply level by level) and the worker running its jobs."""

from chalicelib.core.restore_jobs import RestoreState
from chalicelib.restore.errors import BackupUnreadable, ClusterUnavailable, RestoreError
from chalicelib.restore.results import ObjectResult, Outcome, RestoreResult
from chalicelib.restore.service import RestoreService

__all__ = [
    "BackupUnreadable",
    "ClusterUnavailable",
    "ObjectResult",
    "Outcome",
    "RestoreError",
    "RestoreResult",
    "RestoreService",
    "RestoreState",
]
