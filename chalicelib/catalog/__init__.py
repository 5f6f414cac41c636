"""DynamoDB state: backups, restore jobs, policies, clusters, API clients, leases, replicas, shards (one table)."""

from __future__ import annotations

from chalicelib.catalog.backups import BackupCatalog
from chalicelib.catalog.errors import (
    AlreadyExists,
    CatalogError,
    InvalidToken,
    RecordNotFound,
    StaleState,
    TableNotFound,
    Throttled,
)

__all__ = [
    "AlreadyExists",
    "BackupCatalog",
    "CatalogError",
    "InvalidToken",
    "RecordNotFound",
    "StaleState",
    "TableNotFound",
    "Throttled",
]
