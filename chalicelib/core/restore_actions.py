"""Per-object restore rules: which backed-up objects to skip, and small transforms that fit the rest to a new cluster.

Velero-style: every rule names the types it ``applies_to`` and is a small pure function of the object and the
restore context. ``apply_actions`` gives the transforms a private copy, so each may edit it in place.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import orjson

from chalicelib.core.nodeports import strip_allocated_node_ports
from chalicelib.core.resources import Resource
from chalicelib.core.restore_context import RestoreContext
from chalicelib.core.restore_options import BACKUP_ID_ANNOTATION, RESTORE_ID_LABEL, VERIFICATION_LABEL
from chalicelib.core.restore_volumes import (
    bind_snapshot_to_content,
    preprovision_content,
    rebind_volume,
    unbind_claim,
    unrestorable_content,
    unrestorable_snapshot,
    volume_of_snapshot_claim,
)
from chalicelib.core.sanitize import USER_NODE_PORTS_ANNOTATION, sanitize
from chalicelib.core.volume_facts import SNAPSHOT_CONTENTS, SNAPSHOTS

Obj = dict[str, Any]
ANY = ("*",)

SYSTEM_NAMESPACES = frozenset({"kube-system", "kube-public", "kube-node-lease", "default"})
NAMESPACE_NAME_LABEL = "kubernetes.io/metadata.name"
SA_NAME_ANNOTATION = "kubernetes.io/service-account.name"
SA_UID_ANNOTATION = "kubernetes.io/service-account.uid"
TOKEN_SECRET_TYPE = "kubernetes.io/service-account-token"
ENDPOINTSLICE_MANAGED_BY = "endpointslice.kubernetes.io/managed-by"
# Slices these write are derived from a Service selector or from Endpoints we restore: they reappear by themselves.
SLICE_CONTROLLERS = frozenset({"endpointslice-controller.k8s.io", "endpointslicemirroring-controller.k8s.io"})
JOB_UID_LABELS = ("controller-uid", "batch.kubernetes.io/controller-uid")


# -- skips -----------------------------------------------------------------------------------------------------------


def _applies(applies_to: tuple[str, ...], group_resource: str) -> bool:
    return applies_to == ANY or group_resource in applies_to


@dataclass(frozen=True)
class Skip:
    reason: str  # a short code, one of restore_plan.Reason
    detail: str


@dataclass(frozen=True)
class SkipRule:
    name: str
    applies_to: tuple[str, ...]
    check: Callable[[Obj, RestoreContext], str | None]  # the detail when the object is skipped
    reason: str


def _meta(obj: Obj) -> dict[str, Any]:
    meta = obj.get("metadata")
    if not isinstance(meta, dict):
        meta = obj["metadata"] = {}
    return meta


def _owners(obj: Obj) -> list[dict[str, Any]]:
    return [r for r in (obj.get("metadata") or {}).get("ownerReferences") or [] if isinstance(r, dict)]


def _controller_owner(obj: Obj, ctx: RestoreContext) -> str | None:
    for ref in _owners(obj):
        if ref.get("controller") is True:
            return f"its controller {ref.get('kind')}/{ref.get('name')} recreates it"
    return None


def _owned(obj: Obj, ctx: RestoreContext) -> str | None:
    owners = _owners(obj)
    return f"owned by {owners[0].get('kind')}/{owners[0].get('name')}, which recreates it" if owners else None


def _owned_by_deployment(obj: Obj, ctx: RestoreContext) -> str | None:
    for ref in _owners(obj):
        if ref.get("kind") == "Deployment":
            return f"Deployment {ref.get('name')} recreates its ReplicaSets"
    return None


def _managed_endpoints(obj: Obj, ctx: RestoreContext) -> str | None:
    meta = obj.get("metadata") or {}
    if (meta.get("namespace") or "", meta.get("name") or "") in ctx.selectorless_services:
        return None  # a Service without selector: its Endpoints were written by hand, nothing recreates them
    return "the endpoints controller recreates them from the Service selector"


def _managed_slice(obj: Obj, ctx: RestoreContext) -> str | None:
    manager = ((obj.get("metadata") or {}).get("labels") or {}).get(ENDPOINTSLICE_MANAGED_BY)
    return f"{manager} recreates it" if manager in SLICE_CONTROLLERS else None


def _generated_token(obj: Obj, ctx: RestoreContext) -> str | None:
    if obj.get("type") != TOKEN_SECRET_TYPE:
        return None
    meta = obj.get("metadata") or {}
    account = (meta.get("annotations") or {}).get(SA_NAME_ANNOTATION, "")
    if account and str(meta.get("name", "")).startswith(f"{account}-token-"):
        return "a generated service account token: the target cluster issues its own"
    return None


def _root_ca(obj: Obj, ctx: RestoreContext) -> str | None:
    if (obj.get("metadata") or {}).get("name") == "kube-root-ca.crt":
        return "published into every namespace by the root CA publisher of the target cluster"
    return None


def _system_namespace(obj: Obj, ctx: RestoreContext) -> str | None:
    target = ctx.options.target_namespace((obj.get("metadata") or {}).get("name") or "")
    if target in SYSTEM_NAMESPACES:
        return f"namespace {target} exists in every cluster (its contents are restored)"
    return None


def _labelled(key: str, value: str, why: str) -> Callable[[Obj, RestoreContext], str | None]:
    def check(obj: Obj, ctx: RestoreContext) -> str | None:
        return why if ((obj.get("metadata") or {}).get("labels") or {}).get(key) == value else None

    return check


def _api_service(obj: Obj, ctx: RestoreContext) -> str | None:
    meta = obj.get("metadata") or {}
    if meta.get("namespace") == "default" and meta.get("name") == "kubernetes":
        return "the API server's own Service, managed by the API server"
    return None


SKIP_RULES: tuple[SkipRule, ...] = (
    SkipRule("controller-owned", ANY, _controller_owner, "controller-owned"),
    SkipRule("owned-pods", ("pods",), _owned, "controller-owned"),
    SkipRule("deployment-replicasets", ("replicasets.apps",), _owned_by_deployment, "controller-owned"),
    SkipRule("endpoints", ("endpoints",), _managed_endpoints, "controller-managed"),
    SkipRule("endpointslices", ("endpointslices.discovery.k8s.io",), _managed_slice, "controller-managed"),
    SkipRule("service-account-tokens", ("secrets",), _generated_token, "controller-managed"),
    SkipRule("root-ca", ("configmaps",), _root_ca, "controller-managed"),
    SkipRule("system-namespaces", ("namespaces",), _system_namespace, "system-object"),
    SkipRule(
        "bootstrap-rbac",
        ("clusterroles.rbac.authorization.k8s.io", "clusterrolebindings.rbac.authorization.k8s.io"),
        _labelled("kubernetes.io/bootstrapping", "rbac-defaults", "bootstrap policy the API server reconciles"),
        "system-object",
    ),
    SkipRule(
        "builtin-apiservices",
        ("apiservices.apiregistration.k8s.io",),
        _labelled("kube-aggregator.kubernetes.io/automanaged", "true", "registered by the API server itself"),
        "system-object",
    ),
    SkipRule("kubernetes-service", ("services",), _api_service, "system-object"),
    SkipRule("volumes-of-snapshot-claims", ("persistentvolumes",), volume_of_snapshot_claim, "restored-from-snapshot"),
    SkipRule("unrestorable-snapshot-contents", (SNAPSHOT_CONTENTS,), unrestorable_content, "not-restorable"),
    SkipRule("unrestorable-snapshots", (SNAPSHOTS,), unrestorable_snapshot, "not-restorable"),
)


def skip_reason(obj: Obj, resource: Resource, ctx: RestoreContext) -> Skip | None:
    """The first skip rule that matches ``obj`` (a backed-up object, before any transform), or None."""
    for rule in _skip_rules(resource.group_resource):
        detail = rule.check(obj, ctx)
        if detail is not None:
            return Skip(rule.reason, detail)
    return None


@lru_cache(maxsize=1024)
def _skip_rules(group_resource: str) -> tuple[SkipRule, ...]:
    """The skip rules for one type, in their order: a plan asks once per type, not once per object and rule."""
    return tuple(r for r in SKIP_RULES if _applies(r.applies_to, group_resource))


# -- transforms ------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ItemAction:
    name: str
    applies_to: tuple[str, ...]
    transform: Callable[[Obj, RestoreContext], Obj]


def reset_metadata(obj: Obj, ctx: RestoreContext) -> Obj:
    # Blobs are sanitized already; objects read back from a cluster are not. ownerReferences name owners by uid,
    # and uids change on restore: a stale one makes the garbage collector delete the object. References to owners
    # this restore recreates are kept with their source uid; the executor re-links them to the owner's new uid.
    out = sanitize(obj, obj.get("kind", ""), obj.get("apiVersion", ""))
    out["metadata"].pop("generateName", None)
    kept = [r for r in _owners(obj) if r.get("uid") in ctx.restored_uids]
    if kept:
        out["metadata"]["ownerReferences"] = kept
    else:
        out["metadata"].pop("ownerReferences", None)
    return out


def dropped_owner_references(obj: Obj, ctx: RestoreContext) -> list[str]:
    """``Kind/name`` of each owner ``obj`` references that this restore does not recreate."""
    return [f"{r.get('kind')}/{r.get('name')}" for r in _owners(obj) if r.get("uid") not in ctx.restored_uids]


def map_namespace(obj: Obj, ctx: RestoreContext) -> Obj:
    meta = _meta(obj)
    if meta.get("namespace"):
        meta["namespace"] = ctx.options.target_namespace(meta["namespace"])
    return obj


def map_namespace_object(obj: Obj, ctx: RestoreContext) -> Obj:
    meta = _meta(obj)
    meta["name"] = ctx.options.target_namespace(meta.get("name", ""))
    if NAMESPACE_NAME_LABEL in (meta.get("labels") or {}):
        meta["labels"][NAMESPACE_NAME_LABEL] = meta["name"]
    return obj


def map_subjects(obj: Obj, ctx: RestoreContext) -> Obj:
    for subject in obj.get("subjects") or []:
        if isinstance(subject, dict) and subject.get("namespace"):
            subject["namespace"] = ctx.options.target_namespace(subject["namespace"])
    return obj


def strip_service_addresses(obj: Obj, ctx: RestoreContext) -> Obj:
    # Cluster IPs come from the target cluster's service CIDR; "None" is not an address but means headless.
    spec = obj.get("spec") or {}
    if spec.get("clusterIP") != "None":
        spec.pop("clusterIP", None)
        spec.pop("clusterIPs", None)
    annotations = _meta(obj).get("annotations") or {}
    user_set = _user_node_ports(annotations.pop(USER_NODE_PORTS_ANNOTATION, ""))
    if not annotations:
        _meta(obj).pop("annotations", None)
    if not ctx.options.preserve_node_ports:
        # Allocated node ports are the source cluster's choice and collide with whatever owns the port here; the ones
        # the Service's author set are kept, since load balancers outside the cluster point at them (as Velero does).
        strip_allocated_node_ports(spec, user_set)
    return obj


def _user_node_ports(value: str) -> set[tuple[int, str]]:
    keys = set()
    for item in value.split(","):
        port, _, proto = item.strip().partition("/")
        if port.isdigit():
            keys.add((int(port), proto or "TCP"))
    return keys


def unschedule_pod(obj: Obj, ctx: RestoreContext) -> Obj:
    (obj.get("spec") or {}).pop("nodeName", None)  # nodes differ between clusters; let the scheduler choose
    return obj


def regenerate_job_selector(obj: Obj, ctx: RestoreContext) -> Obj:
    # The server generated the selector from the old Job's uid and refuses a Job that brings its own without
    # manualSelector; without it, the server generates one for the new uid.
    spec = obj.get("spec") or {}
    if spec.get("manualSelector") is True:
        return obj
    spec.pop("selector", None)
    labels = ((spec.get("template") or {}).get("metadata") or {}).get("labels")
    if isinstance(labels, dict):
        for key in JOB_UID_LABELS:
            labels.pop(key, None)
    return obj


def drop_generated_token_refs(obj: Obj, ctx: RestoreContext) -> Obj:
    # Refers to the generated token secrets skipped above; the target cluster adds its own.
    account = _meta(obj).get("name", "")
    refs = obj.get("secrets")
    if isinstance(refs, list):
        kept = [r for r in refs if not str((r or {}).get("name", "")).startswith(f"{account}-token-")]
        if kept:
            obj["secrets"] = kept
        else:
            del obj["secrets"]
    return obj


def reissue_token(obj: Obj, ctx: RestoreContext) -> Obj:
    # A token secret created by hand is filled by the token controller; the backed-up token is signed by the
    # source cluster, and the source account's uid would make the controller delete the secret as orphaned.
    if obj.get("type") == TOKEN_SECRET_TYPE:
        obj.pop("data", None)
        annotations = _meta(obj).get("annotations") or {}
        annotations.pop(SA_UID_ANNOTATION, None)
    return obj


def label_restored(obj: Obj, ctx: RestoreContext) -> Obj:
    meta = _meta(obj)
    if ctx.options.restore_id:
        meta.setdefault("labels", {})[RESTORE_ID_LABEL] = ctx.options.restore_id
    if ctx.options.verification_id:
        meta.setdefault("labels", {})[VERIFICATION_LABEL] = ctx.options.verification_id
    if ctx.backup_id:
        meta.setdefault("annotations", {})[BACKUP_ID_ANNOTATION] = ctx.backup_id
    return obj


ACTIONS: tuple[ItemAction, ...] = (
    ItemAction("reset-metadata", ANY, reset_metadata),
    ItemAction("map-namespace-object", ("namespaces",), map_namespace_object),
    ItemAction(
        "map-binding-subjects",
        ("rolebindings.rbac.authorization.k8s.io", "clusterrolebindings.rbac.authorization.k8s.io"),
        map_subjects,
    ),
    ItemAction("strip-service-addresses", ("services",), strip_service_addresses),
    ItemAction("unbind-claim", ("persistentvolumeclaims",), unbind_claim),
    ItemAction("rebind-volume", ("persistentvolumes",), rebind_volume),
    ItemAction("unschedule-pod", ("pods",), unschedule_pod),
    ItemAction("regenerate-job-selector", ("jobs.batch",), regenerate_job_selector),
    ItemAction("drop-generated-token-refs", ("serviceaccounts",), drop_generated_token_refs),
    ItemAction("reissue-token", ("secrets",), reissue_token),
    ItemAction("bind-snapshot-to-content", (SNAPSHOTS,), bind_snapshot_to_content),
    ItemAction("preprovision-snapshot-content", (SNAPSHOT_CONTENTS,), preprovision_content),
    # After the type-specific actions, which look facts up by the object's namespace in the backup.
    ItemAction("map-namespace", ANY, map_namespace),
    ItemAction("label-restored", ANY, label_restored),  # last, so no other action can drop the label
)


def apply_actions(obj: Obj, resource: Resource, ctx: RestoreContext) -> Obj:
    """The object as it should be created on the target cluster; ``obj`` itself is left untouched."""
    out: Obj = orjson.loads(orjson.dumps(obj))
    for action in _actions(resource.group_resource):
        out = action.transform(out, ctx)
    return out


@lru_cache(maxsize=1024)
def _actions(group_resource: str) -> tuple[ItemAction, ...]:
    """The item actions for one type, in their order (as ``_skip_rules``)."""
    return tuple(a for a in ACTIONS if _applies(a.applies_to, group_resource))
