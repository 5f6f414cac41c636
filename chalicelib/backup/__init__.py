"""Backup use case, a pipeline: ``listing`` (discovery + paged lists) -> ``items`` (per-item handling) -> ``commit``.

``service`` runs it in one invocation; ``sharded/`` spreads a large backup over many (plan, shards, join).
"""

from typing import TYPE_CHECKING, Any

from chalicelib.backup.errors import BackupError, ClusterUnavailable

if TYPE_CHECKING:
    from chalicelib.backup.service import BackupOutcome, BackupService

__all__ = ["BackupError", "BackupOutcome", "BackupService", "ClusterUnavailable"]


def __getattr__(name: str) -> Any:
    """The service on first use: ``chalicelib.backup.queue`` (the dispatcher's) does not load the whole pipeline."""
    if name in ("BackupOutcome", "BackupService"):
        from chalicelib.backup import service

        return getattr(service, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
