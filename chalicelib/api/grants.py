"""What an API client may do: per action, the registered clusters it covers (``*`` for every cluster)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from enum import StrEnum

from chalicelib.core.policies import CLUSTER_NAME

ANY_CLUSTER = "*"


class Action(StrEnum):
    READ = "read"  # list a cluster's backups
    RESTORE_FROM = "restore_from"  # restore a backup of the cluster (its Secrets included)
    RESTORE_INTO = "restore_into"  # write into the cluster
    POLICIES = "policies"  # apply, list, read and delete the cluster's backup policies


class InvalidGrant(ValueError):
    """A grant names an unknown action or something that is not a cluster name."""


@dataclass(frozen=True)
class Grant:
    clusters: Mapping[Action, frozenset[str]]

    def allows(self, action: Action, cluster: str) -> bool:
        covered = self.clusters.get(action, frozenset())
        return ANY_CLUSTER in covered or cluster in covered

    def to_dict(self) -> dict[str, list[str]]:
        return {str(action): sorted(self.clusters.get(action, frozenset())) for action in Action}

    @classmethod
    def from_dict(cls, data: Mapping[str, Iterable[str]] | None) -> Grant:
        clusters: dict[Action, frozenset[str]] = {}
        for key, names in (data or {}).items():
            try:
                action = Action(key)
            except ValueError as exc:
                raise InvalidGrant(f"unknown grant action {key!r} (one of {', '.join(Action)})") from exc
            names = frozenset(names)
            bad = sorted(n for n in names if n != ANY_CLUSTER and not CLUSTER_NAME.fullmatch(n))
            if bad:
                raise InvalidGrant(f"grant {key}: {', '.join(map(repr, bad))} is not a cluster name")
            clusters[action] = names
        return cls(clusters)

    @classmethod
    def parse(cls, specs: Iterable[str]) -> Grant:
        """The CLI's ``action=cluster[,cluster]`` terms, e.g. ``read=prod,dr restore_from=prod restore_into=dr``."""
        data: dict[str, set[str]] = {}
        for spec in specs:
            action, sep, names = spec.partition("=")
            if not sep or not names:
                raise InvalidGrant(f"grant {spec!r} must be action=cluster[,cluster...]")
            data.setdefault(action.strip(), set()).update(n.strip() for n in names.split(",") if n.strip())
        return cls.from_dict(data)


@dataclass(frozen=True)
class Caller:
    """An authenticated API client: its id (for logs and records, never its key) and its grant."""

    client_id: str
    grant: Grant

    def may(self, action: Action, cluster: str) -> bool:
        return self.grant.allows(action, cluster)
