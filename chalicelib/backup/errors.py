"""Errors of the backup use case."""

from __future__ import annotations

from chalicelib.retry import RetryLater as RetryLater


class BackupError(Exception):
    """A backup could not be taken."""


class ClusterUnavailable(BackupError):
    """The cluster could not be reached or refused our credentials."""


class QueueUnavailable(BackupError):
    """The backup-jobs queue could not take a message (not configured, or SQS refused it)."""


class CheckpointError(BackupError):
    """A checkpoint could not be stored or read back."""
