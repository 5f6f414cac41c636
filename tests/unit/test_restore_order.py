from __future__ import annotations

import pytest

from chalicelib.core.resources import Resource
from chalicelib.core.restore_order import (
    HIGH_PRIORITY,
    LOW_PRIORITY,
    MIDDLE_LEVEL,
    level_of,
    order_reason,
    priority_levels,
    restore_order,
)
from tests.support.resources import VERBS


def res(plural: str, group: str = "", kind: str | None = None, namespaced: bool = True) -> Resource:
    return Resource(group, "v1", kind or plural.rstrip("s").title(), plural, namespaced, VERBS)


CRD = res("customresourcedefinitions", "apiextensions.k8s.io", "CustomResourceDefinition", False)
NS = res("namespaces", kind="Namespace", namespaced=False)
SC = res("storageclasses", "storage.k8s.io", "StorageClass", False)
PV = res("persistentvolumes", kind="PersistentVolume", namespaced=False)
PVC = res("persistentvolumeclaims", kind="PersistentVolumeClaim")
VS = res("volumesnapshots", "snapshot.storage.k8s.io", "VolumeSnapshot")
VSC = res("volumesnapshotcontents", "snapshot.storage.k8s.io", "VolumeSnapshotContent", False)
SA = res("serviceaccounts", kind="ServiceAccount")
SECRET = res("secrets", kind="Secret")
CM = res("configmaps", kind="ConfigMap")
ROLE = res("roles", "rbac.authorization.k8s.io", "Role")
RB = res("rolebindings", "rbac.authorization.k8s.io", "RoleBinding")
CR = res("clusterroles", "rbac.authorization.k8s.io", "ClusterRole", False)
CRB = res("clusterrolebindings", "rbac.authorization.k8s.io", "ClusterRoleBinding", False)
DEPLOY = res("deployments", "apps", "Deployment")
SVC = res("services", kind="Service")
HPA = res("horizontalpodautoscalers", "autoscaling", "HorizontalPodAutoscaler")
PDB = res("poddisruptionbudgets", "policy", "PodDisruptionBudget")
ING = res("ingresses", "networking.k8s.io", "Ingress")
WEBHOOK = res(
    "validatingwebhookconfigurations", "admissionregistration.k8s.io", "ValidatingWebhookConfiguration", False
)
WIDGET = res("widgets", "example.com", "Widget")


def position(levels: list[list[Resource]], resource: Resource) -> int:
    return next(i for i, level in enumerate(levels) if resource in level)


def test_crds_first_and_namespaces_second() -> None:
    levels = priority_levels([WIDGET, DEPLOY, NS, CRD, CM])
    assert levels[0] == [CRD]
    assert levels[1] == [NS]


def test_custom_resources_come_after_their_definitions() -> None:
    levels = priority_levels([WIDGET, CRD])
    assert position(levels, CRD) < position(levels, WIDGET)
    assert level_of(WIDGET) == MIDDLE_LEVEL


@pytest.mark.parametrize(
    ("before", "after"),
    [
        (NS, CM),
        (SC, PV),
        (SC, PVC),
        (PV, PVC),
        (VSC, VS),
        (VS, PVC),
        (SA, DEPLOY),
        (SECRET, DEPLOY),
        (CM, DEPLOY),
        (PVC, DEPLOY),
        (ROLE, RB),
        (CR, RB),
        (CR, CRB),
        (SVC, DEPLOY),
        (DEPLOY, HPA),
        (DEPLOY, PDB),
        (SVC, ING),
        (DEPLOY, WEBHOOK),
        (ING, WEBHOOK),
    ],
    ids=lambda r: r.group_resource,
)
def test_dependencies_come_first(before: Resource, after: Resource) -> None:
    levels = priority_levels([after, before])
    assert position(levels, before) < position(levels, after)


def test_independent_types_share_a_level() -> None:
    levels = priority_levels([SECRET, CM, SA, ROLE])
    assert len(levels) == 1
    assert levels[0] == sorted([SECRET, CM, SA, ROLE], key=lambda r: r.group_resource)


def test_empty_levels_are_dropped_and_everything_is_placed_once() -> None:
    every = [CRD, NS, SC, PV, PVC, VS, VSC, SA, SECRET, CM, ROLE, RB, CR, CRB, DEPLOY, SVC, HPA, PDB, ING, WEBHOOK]
    levels = priority_levels(every + [CM, DEPLOY])  # duplicates are merged
    placed = [r for level in levels for r in level]
    assert sorted(placed, key=str) == sorted(every, key=str)
    assert all(levels)
    assert priority_levels([]) == []


def test_level_does_not_depend_on_the_version() -> None:
    v1beta1 = Resource("example.com", "v1beta1", "Widget", "widgets", True, VERBS)
    assert level_of(v1beta1) == level_of(WIDGET)


def test_every_entry_has_a_reason_and_is_listed_once() -> None:
    entries = [e for level in (*HIGH_PRIORITY, *LOW_PRIORITY) for e in level]
    names = [e.resource for e in entries]
    assert len(names) == len(set(names))
    assert all(len(e.reason) > 20 for e in entries)
    assert order_reason(PVC) == next(e.reason for e in entries if e.resource == "persistentvolumeclaims")
    assert "no ordering constraint" in order_reason(WIDGET)


def test_restore_order_rows_follow_levels() -> None:
    rows = restore_order()
    assert [r["level"] for r in rows] == sorted(r["level"] for r in rows)  # type: ignore[type-var]
    assert rows[0]["resource"] == "customresourcedefinitions.apiextensions.k8s.io"
    assert {"level": MIDDLE_LEVEL, "resource": "*"}.items() <= next(r for r in rows if r["resource"] == "*").items()
