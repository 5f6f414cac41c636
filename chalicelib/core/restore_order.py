"""The order a restore creates resource types in: data, with the reason for every entry.

Three parts, as in Velero: a high-priority list, then every other type, then a low-priority list. Each inner tuple
is one *level*: the types in it do not depend on each other, so their objects may be created in parallel; a level
starts only after the previous one finished. A type named nowhere (workloads, Services, custom resources, ...)
goes to the middle level, after the CRDs level, so custom resources always come after their definitions (the
restore service also waits for every restored CRD to be Established and served before the next level).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from chalicelib.core.resources import Resource


@dataclass(frozen=True, slots=True)
class OrderEntry:
    resource: str  # group_resource as kubectl spells it: "persistentvolumeclaims", "roles.rbac.authorization.k8s.io"
    reason: str


def _e(resource: str, reason: str) -> OrderEntry:
    return OrderEntry(resource, reason)


HIGH_PRIORITY: tuple[tuple[OrderEntry, ...], ...] = (
    (
        _e(
            "customresourcedefinitions.apiextensions.k8s.io",
            "custom resources can only be created once their definition is established and served",
        ),
    ),
    (_e("namespaces", "every namespaced object needs its namespace to exist"),),
    (
        _e(
            "storageclasses.storage.k8s.io",
            "volumes and claims name their class; a claim naming a missing one stays Pending",
        ),
        _e("volumesnapshotclasses.snapshot.storage.k8s.io", "snapshots and snapshot contents name their class"),
        _e("priorityclasses.scheduling.k8s.io", "pods naming a missing priority class are rejected at admission"),
        _e("runtimeclasses.node.k8s.io", "pods naming a missing runtime class are rejected at admission"),
        _e(
            "clusterroles.rbac.authorization.k8s.io",
            "a binding is checked against the rules of the role it grants (RBAC escalation check)",
        ),
    ),
    (
        _e(
            "volumesnapshotcontents.snapshot.storage.k8s.io",
            "a pre-provisioned snapshot content must exist before the snapshot that binds to it",
        ),
        _e(
            "persistentvolumes",
            "volumes must exist before their claims, so a claim binds to its restored volume instead of provisioning"
            " an empty one",
        ),
        _e("clusterrolebindings.rbac.authorization.k8s.io", "grants the cluster roles restored one level earlier"),
    ),
    (
        _e("volumesnapshots.snapshot.storage.k8s.io", "claims restored from a snapshot name it as their data source"),
        _e("serviceaccounts", "pods naming a missing service account are rejected at admission"),
        _e("secrets", "pods mounting a missing secret do not start"),
        _e("configmaps", "pods mounting a missing config map do not start"),
        _e("limitranges", "defaults and limits are applied when a pod or claim is admitted, not afterwards"),
        _e("resourcequotas", "quota is charged when an object is admitted; objects created earlier escape it"),
        _e("roles.rbac.authorization.k8s.io", "a binding is checked against the rules of the role it grants"),
        _e("networkpolicies.networking.k8s.io", "pods must never run without the isolation they had"),
        _e("services", "pods only get environment variables for the Services that exist when they start"),
    ),
    (
        _e(
            "persistentvolumeclaims",
            "created after their volumes, snapshots, limit ranges and quotas, and before the pods that mount them",
        ),
        _e("rolebindings.rbac.authorization.k8s.io", "grants the roles restored one level earlier"),
    ),
)

LOW_PRIORITY: tuple[tuple[OrderEntry, ...], ...] = (
    (
        _e(
            "horizontalpodautoscalers.autoscaling",
            "an autoscaler whose target does not exist yet reports failures until the workload is restored",
        ),
        _e(
            "poddisruptionbudgets.policy",
            "a budget is computed against running pods; restored after the workloads it protects",
        ),
        _e("ingresses.networking.k8s.io", "starts routing traffic as soon as it exists; restored after its backends"),
    ),
    (
        _e(
            "validatingwebhookconfigurations.admissionregistration.k8s.io",
            "a webhook whose backend is not running yet would reject every later create of this restore",
        ),
        _e(
            "mutatingwebhookconfigurations.admissionregistration.k8s.io",
            "a webhook whose backend is not running yet would reject or alter every later create of this restore",
        ),
        _e(
            "apiservices.apiregistration.k8s.io",
            "an aggregated API whose backend is not running yet breaks discovery for every later level",
        ),
    ),
)

DEFAULT_REASON = "no ordering constraint: created with the other workloads and custom resources"

MIDDLE_LEVEL = len(HIGH_PRIORITY)


def _index() -> tuple[dict[str, int], dict[str, str]]:
    levels: dict[str, int] = {}
    reasons: dict[str, str] = {}
    numbered = [*enumerate(HIGH_PRIORITY), *enumerate(LOW_PRIORITY, start=MIDDLE_LEVEL + 1)]
    for number, level in numbered:
        for entry in level:
            if entry.resource in levels:
                raise AssertionError(f"{entry.resource} is listed twice in the restore order")
            levels[entry.resource], reasons[entry.resource] = number, entry.reason
    return levels, reasons


_LEVEL, _REASON = _index()
LEVEL_COUNT = MIDDLE_LEVEL + 1 + len(LOW_PRIORITY)
CRD_RESOURCE = HIGH_PRIORITY[0][0].resource
NAMESPACE_RESOURCE = "namespaces"


def level_of(resource: Resource | str) -> int:
    """The fixed level of a type (0 = first); types named nowhere get the middle level."""
    key = resource if isinstance(resource, str) else resource.group_resource
    return _LEVEL.get(key, MIDDLE_LEVEL)


def order_reason(resource: Resource | str) -> str:
    """Why a type is restored where it is."""
    key = resource if isinstance(resource, str) else resource.group_resource
    return _REASON.get(key, DEFAULT_REASON)


def priority_levels(resources: Iterable[Resource]) -> list[list[Resource]]:
    """The types grouped into consecutive levels, empty levels dropped; sorted within a level so a plan is stable."""
    buckets: dict[int, set[Resource]] = {}
    for resource in resources:
        buckets.setdefault(level_of(resource), set()).add(resource)
    return [sorted(buckets[level], key=lambda r: (r.group_resource, r.version, r.kind)) for level in sorted(buckets)]


def restore_order() -> list[dict[str, object]]:
    """The whole order as rows (level, resource, reason), for documentation and ``lifeboat restore --explain``."""
    rows: list[dict[str, object]] = []
    for i, level in enumerate(HIGH_PRIORITY):
        rows.extend({"level": i, "resource": e.resource, "reason": e.reason} for e in level)
    rows.append({"level": MIDDLE_LEVEL, "resource": "*", "reason": DEFAULT_REASON})
    for i, level in enumerate(LOW_PRIORITY, start=MIDDLE_LEVEL + 1):
        rows.extend({"level": i, "resource": e.resource, "reason": e.reason} for e in level)
    return rows
