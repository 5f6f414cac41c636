"""Errors of the backup use case."""

from __future__ import annotations


class BackupError(Exception):
    """A backup could not be taken."""


class ClusterUnavailable(BackupError):
    """The cluster could not be reached or refused our credentials."""
