"""Errors raised by the DynamoDB catalog."""

from __future__ import annotations

from typing import Any


class CatalogError(Exception):
    """Base class for catalog errors."""


class TableNotFound(CatalogError):
    """The catalog table does not exist (or is not visible to these credentials)."""

    def __init__(self, table: str) -> None:
        super().__init__(f"catalog table {table!r} not found")
        self.table = table


class AlreadyExists(CatalogError):
    """A record that must be unique already exists."""


class RecordNotFound(CatalogError):
    """The requested record does not exist."""


class StaleState(CatalogError):
    """A state transition was refused because the record is not in a state it may move from."""

    def __init__(self, cluster: str, backup_id: str, current: str | None, target: str) -> None:
        super().__init__(f"backup {cluster}/{backup_id} is {current or 'unknown'}; it cannot move to {target}")
        self.cluster = cluster
        self.backup_id = backup_id
        self.current = current
        self.target = target


class WorkerSuperseded(StaleState):
    """A worker's write was refused because another worker took its backup over (its token is no longer stored)."""

    def __init__(self, cluster: str, backup_id: str, current: str | None, target: str) -> None:
        super().__init__(cluster, backup_id, current, target)
        self.args = (f"backup {cluster}/{backup_id} was taken over by another worker; this one may not write it",)


class ConditionFailed(CatalogError):
    """A conditional write's condition did not hold; ``old`` is the stored item ({} when there is none)."""

    def __init__(self, old: dict[str, Any]) -> None:
        super().__init__("the write's condition did not hold")
        self.old = old


class Throttled(CatalogError):
    """DynamoDB throttled the request; the caller may retry later."""


class InvalidToken(CatalogError):
    """A pagination token was malformed or belongs to another listing."""


class LeaseHeld(CatalogError):
    """A lease could not be taken because another holder's live lease excludes it."""

    def __init__(self, message: str, *, holder: str | None = None, expires_at: int | None = None) -> None:
        super().__init__(message)
        self.holder = holder
        self.expires_at = expires_at


class LeaseLost(CatalogError):
    """A lease expired or was taken over before its holder renewed or released it."""


class VersionConflict(CatalogError):
    """An item changed between our read and our conditional write; read it again and retry."""


class ShardConflict(CatalogError):
    """A shard of a sharded backup is no longer ours (finished, failed, or taken over by another worker)."""
