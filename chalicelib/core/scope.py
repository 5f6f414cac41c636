"""What a backup covers: namespaces, resource types, labels, cluster-scoped objects."""

from __future__ import annotations

import fnmatch
from dataclasses import dataclass
from functools import cached_property
from typing import Any, Literal

from chalicelib.core.errors import InvalidScope
from chalicelib.core.resources import Resource
from chalicelib.core.selectors import LabelSelector, parse_label_selector

EXCLUDE_LABEL = "lifeboat.io/exclude"
# Lifeboat's own VolumeSnapshots and their contents carry the backup id they belong to: they are a backup's volume
# data, recorded in its manifest, not objects of the cluster to back up again (a later backup holding them would
# restore snapshots whose storage retention may already have deleted).
OWN_SNAPSHOT_LABEL = "lifeboat.io/backup-id"
# What every list excludes on the server, whatever the scope selects.
SERVER_EXCLUSIONS = f"{EXCLUDE_LABEL}!=true,!{OWN_SNAPSHOT_LABEL}"
ClusterScoped = Literal["on", "off", "auto"]

# Never worth backing up: recreated by the API server or controllers, or pure telemetry.
ALWAYS_SKIPPED = frozenset(
    {
        "events",
        "events.events.k8s.io",
        "leases.coordination.k8s.io",
        "tokenreviews.authentication.k8s.io",
        "selfsubjectreviews.authentication.k8s.io",
        "localsubjectaccessreviews.authorization.k8s.io",
        "selfsubjectaccessreviews.authorization.k8s.io",
        "selfsubjectrulesreviews.authorization.k8s.io",
        "subjectaccessreviews.authorization.k8s.io",
        "componentstatuses",
        "bindings",
        "nodes",
        "nodes.metrics.k8s.io",
        "pods.metrics.k8s.io",
    }
)


@dataclass(frozen=True)
class BackupScope:
    include_namespaces: tuple[str, ...] = ()  # globs; empty means every namespace
    exclude_namespaces: tuple[str, ...] = ()
    include_resources: tuple[str, ...] = ()  # plural, plural.group or Kind; empty means every type
    exclude_resources: tuple[str, ...] = ()
    label_selector: str = ""
    # None resolves to "on" when every namespace is in scope and to "auto" otherwise.
    cluster_scoped: ClusterScoped | None = None

    def __post_init__(self) -> None:
        if self.cluster_scoped not in (None, "on", "off", "auto"):
            raise InvalidScope(f"cluster_scoped must be on, off or auto, not {self.cluster_scoped!r}")
        for pattern in self.include_namespaces + self.exclude_namespaces:
            if not pattern or any(c.isspace() for c in pattern):
                raise InvalidScope(f"invalid namespace pattern {pattern!r}")
        parse_label_selector(self.label_selector)  # raises InvalidSelector on a bad selector

    @classmethod
    def from_dict(cls, data: dict[str, Any] | None) -> BackupScope:
        data = data or {}
        known = {
            "include_namespaces",
            "exclude_namespaces",
            "include_resources",
            "exclude_resources",
            "label_selector",
            "cluster_scoped",
        }
        unknown = set(data) - known
        if unknown:
            raise InvalidScope(f"unknown scope fields: {', '.join(sorted(unknown))}")
        return cls(
            include_namespaces=tuple(data.get("include_namespaces") or ()),
            exclude_namespaces=tuple(data.get("exclude_namespaces") or ()),
            include_resources=tuple(data.get("include_resources") or ()),
            exclude_resources=tuple(data.get("exclude_resources") or ()),
            label_selector=data.get("label_selector") or "",
            cluster_scoped=data.get("cluster_scoped"),
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "include_namespaces": list(self.include_namespaces),
            "exclude_namespaces": list(self.exclude_namespaces),
            "include_resources": list(self.include_resources),
            "exclude_resources": list(self.exclude_resources),
            "label_selector": self.label_selector,
            "cluster_scoped": self.effective_cluster_scoped,
        }

    @property
    def effective_cluster_scoped(self) -> ClusterScoped:
        if self.cluster_scoped is not None:
            return self.cluster_scoped
        return "on" if not self.include_namespaces else "auto"

    @cached_property
    def selector(self) -> LabelSelector:
        """Parsed once: it is checked against every object of a backup."""
        return parse_label_selector(self.label_selector)

    def server_selector(self) -> str:
        """The label selector sent with every list: the user's, plus the exclusion label."""
        return str(self.selector.and_(parse_label_selector(SERVER_EXCLUSIONS)))

    def namespace_selected(self, namespace: str) -> bool:
        if self.include_namespaces and not any(fnmatch.fnmatchcase(namespace, p) for p in self.include_namespaces):
            return False
        return not any(fnmatch.fnmatchcase(namespace, p) for p in self.exclude_namespaces)

    def resource_selected(self, resource: Resource) -> bool:
        """Whether a resource type is in scope by the include/exclude lists (cluster-scoped mode aside)."""
        if resource.group_resource in ALWAYS_SKIPPED or not resource.listable:
            return False
        # Namespaces stay in even when not listed: a restore needs the namespace of every object it restores.
        included = not self.include_resources or any(resource.matches(t) for t in self.include_resources)
        if not included and resource.group_resource != "namespaces":
            return False
        return not any(resource.matches(t) for t in self.exclude_resources)

    def object_selected(self, obj: dict[str, Any]) -> bool:
        """Client-side check of the exclusion label and the label selector (the server applies them too)."""
        labels = (obj.get("metadata") or {}).get("labels")
        if not labels:
            return self._matches_unlabelled  # most objects: answer without walking the selector
        if labels.get(EXCLUDE_LABEL) == "true" or OWN_SNAPSHOT_LABEL in labels:
            return False
        return self._no_selector or self.selector.matches(labels)

    @cached_property
    def _no_selector(self) -> bool:
        return not self.selector.requirements

    @cached_property
    def _matches_unlabelled(self) -> bool:
        return self.selector.matches({})
