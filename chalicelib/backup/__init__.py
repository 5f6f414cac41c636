"""Backup use case, a pipeline: ``listing`` (discovery + paged lists) -> ``items`` (per-item handling) -> ``commit``.

``service`` runs it in one invocation; the planner, shard workers and committer spread a large backup over many.
"""

from chalicelib.backup.errors import BackupError, ClusterUnavailable
from chalicelib.backup.service import BackupOutcome, BackupService

__all__ = ["BackupError", "BackupOutcome", "BackupService", "ClusterUnavailable"]
