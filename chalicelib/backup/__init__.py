"""Backup use case, a pipeline: ``listing`` (discovery + paged lists) -> ``items`` (per-item handling) -> ``commit``.

``service`` runs it in one invocation; ``sharded/`` spreads a large backup over many (plan, shards, join).
The service is imported when first named, so a function that only meets the package's errors (the dispatcher, the
API) does not pay for the whole pipeline at cold start.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from chalicelib.backup.errors import BackupError, ClusterUnavailable

if TYPE_CHECKING:
    from chalicelib.backup.service import BackupOutcome, BackupService

__all__ = ["BackupError", "BackupOutcome", "BackupService", "ClusterUnavailable"]


def __getattr__(name: str) -> Any:
    if name in ("BackupOutcome", "BackupService"):
        from chalicelib.backup import service

        return getattr(service, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
