"""Errors of the restore use case."""

from __future__ import annotations

from chalicelib.retry import RetryLater as RetryLater
from chalicelib.retry import Transient


class RestoreError(Exception):
    """A restore could not be planned or run."""


class BackupUnreadable(RestoreError):
    """A blob or tree of the backup is missing or corrupt; nothing was applied to the cluster."""


class NothingToRestore(RestoreError):
    """The backup holds no Kubernetes resources (an etcd-only backup); nothing was applied to the cluster."""


class ClusterUnavailable(RestoreError, Transient):
    """The target cluster could not be reached, or refused our credentials, before anything was applied."""


class MessagingUnavailable(RestoreError, Transient):
    """The restore-jobs queue (SQS) or the event bus (EventBridge) failed or is not configured; a retry may pass."""


class LeaseLost(Exception):
    """Another worker took over a restore job (its heartbeat looked stale); this worker must stop."""
