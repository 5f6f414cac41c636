"""Typed identifiers shared by every layer."""

from __future__ import annotations

import secrets
from datetime import datetime
from typing import NewType

BlobId = NewType("BlobId", str)
"""Hex SHA-256 of a blob's uncompressed canonical bytes."""
PackId = NewType("PackId", str)
BackupId = NewType("BackupId", str)
ClusterName = NewType("ClusterName", str)
RestoreId = NewType("RestoreId", str)


def new_backup_id(now: datetime, entropy: str | None = None) -> BackupId:
    """A sortable, unique backup id: UTC timestamp then random suffix (e.g. 20261122T101500Z-3fa9c2)."""
    suffix = entropy if entropy is not None else secrets.token_hex(3)
    return BackupId(f"{now.strftime('%Y%m%dT%H%M%SZ')}-{suffix}")
