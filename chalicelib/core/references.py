"""Cluster-scoped objects that namespaced objects refer to (the "auto" cluster-scoped mode).

A namespace-scoped backup is only restorable if the cluster objects it leans on come along: the PVs bound to
its PVCs, the StorageClasses they use, the ClusterRoles its RoleBindings grant, the CRDs of its custom resources.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from chalicelib.core.resources import Resource

# Cluster-scoped types that refer to other cluster-scoped types: list these first so what they name is known.
REFERRING_FIRST = (
    "clusterrolebindings.rbac.authorization.k8s.io",
    "persistentvolumes",
    "volumesnapshotcontents.snapshot.storage.k8s.io",
)


@dataclass
class ReferenceCollector:
    namespaces: frozenset[str]
    wanted: dict[str, set[str]] = field(default_factory=dict)  # group_resource -> names

    def _want(self, group_resource: str, name: Any) -> None:
        if isinstance(name, str) and name:
            self.wanted.setdefault(group_resource, set()).add(name)

    def observe(self, resource: Resource, obj: dict[str, Any]) -> None:
        """Record what a selected object refers to (call with the raw object, before sanitizing)."""
        refer = self.observer(resource)
        if refer is not None:
            refer(obj)
        self.observed(resource)

    def observer(self, resource: Resource) -> Callable[[dict[str, Any]], None] | None:
        """``observe`` for each selected object of one type, without what is the type's (``observed``, once): None
        when an object of this type names nothing, so a page of them costs no call per object."""
        refer = _REFERS.get(resource.group_resource)
        if refer is None:
            return None
        return lambda obj: refer(self, obj)

    def observed(self, resource: Resource) -> None:
        """What a type's selected objects need whatever they hold: if a CRD serves it, its definition, named
        plural.group (built-in types have none)."""
        if resource.group:
            self._want("customresourcedefinitions.apiextensions.k8s.io", resource.group_resource)

    def _claim(self, obj: dict[str, Any]) -> None:
        spec = obj.get("spec") or {}
        self._want("persistentvolumes", spec.get("volumeName"))
        self._want("storageclasses.storage.k8s.io", spec.get("storageClassName"))

    def _role_binding(self, obj: dict[str, Any]) -> None:
        ref = obj.get("roleRef") or {}
        if ref.get("kind") == "ClusterRole":
            self._want("clusterroles.rbac.authorization.k8s.io", ref.get("name"))

    def _volume_snapshot(self, obj: dict[str, Any]) -> None:
        spec = obj.get("spec") or {}
        self._want("volumesnapshotclasses.snapshot.storage.k8s.io", spec.get("volumeSnapshotClassName"))
        status = obj.get("status") or {}
        self._want("volumesnapshotcontents.snapshot.storage.k8s.io", status.get("boundVolumeSnapshotContentName"))

    def _ingress(self, obj: dict[str, Any]) -> None:
        self._want("ingressclasses.networking.k8s.io", (obj.get("spec") or {}).get("ingressClassName"))

    def referred(self, resources: list[Resource]) -> list[Resource]:
        """Those of ``resources`` (cluster types, none of them referring) whose objects something kept names, once
        the referring types were read: in auto mode no object of the others is wanted, so they need no list."""
        return [r for r in resources if r.group_resource != "namespaces" and self.wanted.get(r.group_resource)]

    def wants(self, resource: Resource, obj: dict[str, Any]) -> bool:
        """Whether a cluster-scoped object is referred to; observes its own references when it is."""
        gr = resource.group_resource
        name = (obj.get("metadata") or {}).get("name")
        if gr == "namespaces":
            return name in self.namespaces
        if gr == "clusterrolebindings.rbac.authorization.k8s.io":
            subjects = obj.get("subjects") or []
            hit = any(s.get("namespace") in self.namespaces for s in subjects if isinstance(s, dict))
            if hit:
                ref = obj.get("roleRef") or {}
                if ref.get("kind") == "ClusterRole":
                    self._want("clusterroles.rbac.authorization.k8s.io", ref.get("name"))
            return hit
        if name not in self.wanted.get(gr, set()):
            if gr == "persistentvolumes":
                claim = (obj.get("spec") or {}).get("claimRef") or {}
                if claim.get("namespace") not in self.namespaces:
                    return False
            else:
                return False
        if gr == "persistentvolumes":
            self._want("storageclasses.storage.k8s.io", (obj.get("spec") or {}).get("storageClassName"))
        elif gr == "volumesnapshotcontents.snapshot.storage.k8s.io":
            spec = obj.get("spec") or {}
            self._want("volumesnapshotclasses.snapshot.storage.k8s.io", spec.get("volumeSnapshotClassName"))
        return True


# The namespaced types whose objects name cluster objects, and how to read the names from one of them.
_REFERS: dict[str, Callable[[ReferenceCollector, dict[str, Any]], None]] = {
    "persistentvolumeclaims": ReferenceCollector._claim,
    "rolebindings.rbac.authorization.k8s.io": ReferenceCollector._role_binding,
    "volumesnapshots.snapshot.storage.k8s.io": ReferenceCollector._volume_snapshot,
    "ingresses.networking.k8s.io": ReferenceCollector._ingress,
}


def names_other_objects(resource: Resource) -> bool:
    """Whether objects of the namespaced type ``resource`` name cluster objects a backup may take along (so the
    backup reads more of them than their metadata)."""
    return resource.group_resource in _REFERS


def referring_first(resources: list[Resource]) -> tuple[list[Resource], list[Resource]]:
    """(the cluster-scoped types of ``resources`` that refer to other cluster types, the rest): in auto mode the
    first are read (in any order: none names another of them) before anything of the rest is wanted or not."""
    referring = [r for r in resources if r.group_resource in REFERRING_FIRST]
    return referring, [r for r in resources if r.group_resource not in REFERRING_FIRST]


def cluster_listing_order(resources: list[Resource]) -> list[Resource]:
    """Cluster-scoped types ordered so that referring types come before the types they name."""
    rank = {gr: i for i, gr in enumerate(REFERRING_FIRST)}
    return sorted(resources, key=lambda r: (rank.get(r.group_resource, len(rank)), r.group_resource))
