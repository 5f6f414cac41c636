"""Errors of scheduling: policies, clusters, the dispatcher and its queue."""

from __future__ import annotations

# The dispatcher sends through the backup worker's queue adapter, so it meets that adapter's error.
from chalicelib.backup.errors import QueueUnavailable as QueueUnavailable


class SchedulingError(Exception):
    """Base class for errors of policies, cluster registration and dispatching."""


class PolicyNotFound(SchedulingError):
    """No policy has that name."""


class PolicyConflict(SchedulingError):
    """A policy name is taken (by another cluster) or changed while it was being applied."""


class ClusterNotRegistered(SchedulingError):
    """A policy names a cluster that was never registered with ``lifeboat clusters add``."""


class InvalidClusterAuth(SchedulingError):
    """A cluster registration's auth block is incomplete or names a kind that cannot be stored."""


class ClusterCheckFailed(SchedulingError):
    """Registering a cluster failed because Lifeboat could not authenticate to it or discover its API."""
