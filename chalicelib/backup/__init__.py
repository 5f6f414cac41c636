"""Backup use case, a pipeline: ``listing`` (discovery + paged lists) -> ``items`` (per-item handling) -> ``commit``.

``service`` runs it in one invocation; ``sharded/`` spreads a large backup over many (plan, shards, join).
"""

from chalicelib.backup.errors import BackupError, ClusterUnavailable
from chalicelib.backup.service import BackupOutcome, BackupService

__all__ = ["BackupError", "BackupOutcome", "BackupService", "ClusterUnavailable"]
