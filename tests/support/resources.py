"""Resource values for tests: the common kinds as constants, and a Resource for any object by its kind."""

from __future__ import annotations

from typing import Any

from chalicelib.core.resources import Resource

VERBS = frozenset({"create", "get", "list"})  # what the restore engine needs of a type
ALL_VERBS = frozenset({"create", "get", "list", "update", "delete", "patch"})

NS = Resource("", "v1", "Namespace", "namespaces", False, VERBS)
CM = Resource("", "v1", "ConfigMap", "configmaps", True, VERBS)
SECRET = Resource("", "v1", "Secret", "secrets", True, VERBS)
SVC = Resource("", "v1", "Service", "services", True, VERBS)
SA = Resource("", "v1", "ServiceAccount", "serviceaccounts", True, VERBS)
EP = Resource("", "v1", "Endpoints", "endpoints", True, VERBS)
POD = Resource("", "v1", "Pod", "pods", True, VERBS)
EVENTS = Resource("", "v1", "Event", "events", True, VERBS)
PVC = Resource("", "v1", "PersistentVolumeClaim", "persistentvolumeclaims", True, VERBS)
PV = Resource("", "v1", "PersistentVolume", "persistentvolumes", False, VERBS)
SLICE = Resource("discovery.k8s.io", "v1", "EndpointSlice", "endpointslices", True, VERBS)
DEPLOY = Resource("apps", "v1", "Deployment", "deployments", True, VERBS)
RS = Resource("apps", "v1", "ReplicaSet", "replicasets", True, VERBS)
JOB = Resource("batch", "v1", "Job", "jobs", True, VERBS)
RB = Resource("rbac.authorization.k8s.io", "v1", "RoleBinding", "rolebindings", True, VERBS)
CRB = Resource("rbac.authorization.k8s.io", "v1", "ClusterRoleBinding", "clusterrolebindings", False, VERBS)
CR = Resource("rbac.authorization.k8s.io", "v1", "ClusterRole", "clusterroles", False, VERBS)
CRD = Resource("apiextensions.k8s.io", "v1", "CustomResourceDefinition", "customresourcedefinitions", False, VERBS)
VS = Resource("snapshot.storage.k8s.io", "v1", "VolumeSnapshot", "volumesnapshots", True, VERBS)
VSC = Resource("snapshot.storage.k8s.io", "v1", "VolumeSnapshotContent", "volumesnapshotcontents", False, VERBS)
WIDGET = Resource("example.com", "v1", "Widget", "widgets", True, VERBS)

# kind -> (plural, namespaced); the group and version come from the object's apiVersion.
KINDS: dict[str, tuple[str, bool]] = {
    "Namespace": ("namespaces", False),
    "ConfigMap": ("configmaps", True),
    "Secret": ("secrets", True),
    "Service": ("services", True),
    "ServiceAccount": ("serviceaccounts", True),
    "Endpoints": ("endpoints", True),
    "Pod": ("pods", True),
    "PersistentVolumeClaim": ("persistentvolumeclaims", True),
    "PersistentVolume": ("persistentvolumes", False),
    "Deployment": ("deployments", True),
    "ReplicaSet": ("replicasets", True),
    "StatefulSet": ("statefulsets", True),
    "Job": ("jobs", True),
    "Role": ("roles", True),
    "RoleBinding": ("rolebindings", True),
    "ClusterRole": ("clusterroles", False),
    "CustomResourceDefinition": ("customresourcedefinitions", False),
}


def resource_of(obj: dict[str, Any], plural: str | None = None, namespaced: bool | None = None) -> Resource:
    """The Resource an object of a known kind (or one given ``plural`` and scope) is listed as, with every verb."""
    group, _, version = obj["apiVersion"].rpartition("/")
    known_plural, known_namespaced = KINDS.get(obj["kind"], (plural, namespaced))
    if known_plural is None or known_namespaced is None:
        raise KeyError(f"say the plural and scope of {obj['kind']}")
    return Resource(group, version, obj["kind"], plural or known_plural, known_namespaced, ALL_VERBS)
