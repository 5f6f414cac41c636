"""Errors of cross-region replication."""

from __future__ import annotations


class ReplicationError(Exception):
    """Base class for replication errors."""


class InvalidEvent(ReplicationError):
    """A queue message is not an S3 event notification this replicator understands."""


class ReplicationStorageError(ReplicationError):
    """An S3 call of the replicator failed (throttling, access, network); a retry may succeed."""

    def __init__(self, message: str, *, bucket: str = "", key: str = "") -> None:
        super().__init__(message)
        self.bucket = bucket
        self.key = key


class SourceMissing(ReplicationStorageError):
    """An object the replica needs is not in the primary bucket."""


class ChecksumMismatch(ReplicationError):
    """A replica copy kept differing from its content address or recorded checksum; it was not accepted."""

    def __init__(self, message: str, *, key: str) -> None:
        super().__init__(message)
        self.key = key


class ReplicaConflict(ReplicationError):
    """The replica bucket holds another repository (a different config.json id); nothing is copied into it."""


class ClosureIncomplete(ReplicationError):
    """A backup's closure cannot be replicated (its primary copy is unreadable or broken); its manifest is held back."""


class NotConfigured(ReplicationError):
    """Replication is not configured (no replica bucket or region)."""
