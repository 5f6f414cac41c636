"""Cluster-scoped objects that namespaced objects refer to (the "auto" cluster-scoped mode).

A namespace-scoped backup is only restorable if the cluster objects it leans on come along: the PVs bound to
its PVCs, the StorageClasses they use, the ClusterRoles its RoleBindings grant, the CRDs of its custom resources.
"""

from __future__ import annotations

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
        spec = obj.get("spec") or {}
        gr = resource.group_resource
        if gr == "persistentvolumeclaims":
            self._want("persistentvolumes", spec.get("volumeName"))
            self._want("storageclasses.storage.k8s.io", spec.get("storageClassName"))
        elif gr == "rolebindings.rbac.authorization.k8s.io":
            ref = obj.get("roleRef") or {}
            if ref.get("kind") == "ClusterRole":
                self._want("clusterroles.rbac.authorization.k8s.io", ref.get("name"))
        elif gr == "volumesnapshots.snapshot.storage.k8s.io":
            self._want("volumesnapshotclasses.snapshot.storage.k8s.io", spec.get("volumeSnapshotClassName"))
            status = obj.get("status") or {}
            self._want("volumesnapshotcontents.snapshot.storage.k8s.io", status.get("boundVolumeSnapshotContentName"))
        elif gr == "ingresses.networking.k8s.io":
            self._want("ingressclasses.networking.k8s.io", spec.get("ingressClassName"))
        if resource.group:
            # If the type is served by a CRD, its definition is named plural.group; built-in types have none.
            self._want("customresourcedefinitions.apiextensions.k8s.io", resource.group_resource)

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


def cluster_listing_order(resources: list[Resource]) -> list[Resource]:
    """Cluster-scoped types ordered so that referring types come before the types they name."""
    rank = {gr: i for i, gr in enumerate(REFERRING_FIRST)}
    return sorted(resources, key=lambda r: (rank.get(r.group_resource, len(rank)), r.group_resource))
