"""What a restore will do with each backed-up object (create, update or skip, and why), grouped into levels."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from enum import StrEnum
from typing import Any, Literal

from chalicelib.core.resources import Resource
from chalicelib.core.restore_actions import (
    NAMESPACE_NAME_LABEL,
    SYSTEM_NAMESPACES,
    apply_actions,
    dropped_owner_references,
    label_restored,
    skip_reason,
)
from chalicelib.core.restore_context import RestoreContext
from chalicelib.core.restore_options import (
    BACKUP_ID_ANNOTATION,
    RESTORE_ID_LABEL,
    VERIFICATION_LABEL,
    RestoreOptions,
)
from chalicelib.core.restore_order import level_of
from chalicelib.core.sanitize import sanitize
from chalicelib.core.volume_restore import claim_notes, claim_sources, recorded_snapshot_objects

Obj = dict[str, Any]
Action = Literal["create", "update", "skip"]
NAMESPACES = Resource("", "v1", "Namespace", "namespaces", False, frozenset({"create", "get", "list"}))


class Reason(StrEnum):
    """Why an object gets the action it gets; short codes, stable for the API and the catalog."""

    NEW = "new"  # not on the cluster: created
    CHANGED = "changed"  # on the cluster and different, policy update: replaced
    EXISTS = "exists"  # on the cluster, policy skip
    UNCHANGED = "unchanged"  # on the cluster and already as in the backup
    FILTERED = "filtered"  # outside the namespaces or label selector asked for
    EXCLUDED_TYPE = "excluded-type"  # a type outside the restore, or one nobody restores (events, nodes, ...)
    CONTROLLER_OWNED = "controller-owned"  # its owner recreates it
    CONTROLLER_MANAGED = "controller-managed"  # a controller of the target cluster recreates it
    SYSTEM_OBJECT = "system-object"  # exists in every cluster or is reconciled by the API server
    RESTORED_FROM_SNAPSHOT = "restored-from-snapshot"  # a PV replaced by a fresh volume from a snapshot
    NOT_RESTORABLE = "not-restorable"  # a CSI snapshot the backup cannot recreate as pre-provisioned
    IMPLIED = "implied"  # a namespace the backup lacks, created so the objects in it have a home
    COMPLETED = "completed"  # done by an earlier run of this restore (resume)


# Skips decided by the plan count as success at run time: the object is where the user wants it.
SATISFIED_SKIPS = frozenset({Reason.EXISTS, Reason.UNCHANGED, Reason.COMPLETED})
# Maps read and written as a whole: a key present only on the cluster is a difference, not a server default.
_EXACT_MAPS = frozenset({"data", "binaryData", "stringData", "metadata.labels"})
# Labels that are not the object's content: our restore bookkeeping, and the name label the API server sets.
_OWN_LABELS = frozenset({RESTORE_ID_LABEL, VERIFICATION_LABEL, NAMESPACE_NAME_LABEL})
_OWN_ANNOTATIONS = frozenset({BACKUP_ID_ANNOTATION})


def object_key(resource: Resource | str, namespace: str | None, name: str) -> str:
    """A stable id of a target object: ``deployments.apps/shop/web``, ``clusterroles.rbac.authorization.k8s.io/x``."""
    gr = resource if isinstance(resource, str) else resource.group_resource
    return f"{gr}/{namespace}/{name}" if namespace else f"{gr}/{name}"


@dataclass(frozen=True)
class PlanItem:
    resource: Resource  # the type the object is created as (its backed-up group, version and plural)
    namespace: str | None  # target namespace (after mapping); None for cluster-scoped objects
    name: str  # target name (differs from the backup only for a mapped Namespace)
    source_namespace: str | None
    action: Action
    reason: Reason
    detail: str = ""
    diff: tuple[str, ...] = ()  # for an update: the paths that differ (metadata.labels, spec.replicas, data, ...)
    # The body to send. Kept out of repr and to_dict: it may be a Secret.
    desired: Obj | None = field(default=None, repr=False, compare=False)
    source_uid: str = field(default="", repr=False, compare=False)  # the backed-up object's uid, when recorded
    # Runs after the items of its type's level whose rank is lower: an object owned by another restored object
    # runs after its owner, so the owner's new uid is known when the reference is re-linked.
    rank: tuple[int, int] | None = field(default=None, repr=False, compare=False)

    @property
    def key(self) -> str:
        return object_key(self.resource, self.namespace, self.name)

    @property
    def level(self) -> int:
        return level_of(self.resource)

    @property
    def order(self) -> tuple[int, int]:
        """Where the item runs: its type's level, then its place after the restored owners it references."""
        return self.rank or (self.level, 0)

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "key": self.key,
            "apiVersion": self.resource.api_version,
            "kind": self.resource.kind,
            "resource": self.resource.group_resource,
            "namespace": self.namespace,
            "name": self.name,
            "action": self.action,
            "reason": str(self.reason),
        }
        if self.source_namespace != self.namespace:
            out["source_namespace"] = self.source_namespace
        if self.detail:
            out["detail"] = self.detail
        if self.diff:
            out["diff"] = list(self.diff)
        return out


def _skip(resource: Resource, obj: Obj, options: RestoreOptions, reason: Reason, detail: str) -> PlanItem:
    meta = obj.get("metadata") or {}
    ns = meta.get("namespace") if resource.namespaced else None
    name = meta.get("name") or ""
    if resource.group_resource == "namespaces":
        name = options.target_namespace(name)
    return PlanItem(resource, options.target_namespace(ns) if ns else None, name, ns, "skip", reason, detail)


def selection_reason(obj: Obj, resource: Resource, options: RestoreOptions) -> tuple[Reason, str] | None:
    """Why the restore's filters leave ``obj`` out, or None if they keep it."""
    if not options.resource_selected(resource):
        return Reason.EXCLUDED_TYPE, f"{resource.group_resource} is not restored"
    meta = obj.get("metadata") or {}
    gr = resource.group_resource
    if resource.namespaced:
        namespace = meta.get("namespace") or ""
    elif gr == "namespaces":
        namespace = meta.get("name") or ""
    elif gr == "persistentvolumes":
        # A volume belongs where its claim lives; an unclaimed one is restored with the cluster-scoped objects.
        namespace = ((obj.get("spec") or {}).get("claimRef") or {}).get("namespace") or ""
    else:
        namespace = ""
    if namespace and not options.namespace_selected(namespace):
        return Reason.FILTERED, f"namespace {namespace} is not restored"
    # Namespaces are not label-filtered: the selected objects in them need a home even if the Namespace is unlabelled.
    if gr != "namespaces" and not options.selector.matches(meta.get("labels")):
        return Reason.FILTERED, f"labels do not match {options.label_selector}"
    return None


def plan_object(
    obj: Obj,
    resource: Resource,
    options: RestoreOptions,
    existing: Obj | None,
    ctx: RestoreContext | None = None,
) -> PlanItem:
    """The plan for one backed-up object; ``existing`` is the object of the same target name on the cluster."""
    ctx = ctx or RestoreContext(options=options)
    _, obj = _typed(resource, obj)
    excluded = selection_reason(obj, resource, options)
    if excluded is not None:
        return _skip(resource, obj, options, *excluded)
    return _plan_selected(obj, resource, options, existing, ctx)


def _plan_selected(
    obj: Obj, resource: Resource, options: RestoreOptions, existing: Obj | None, ctx: RestoreContext
) -> PlanItem:
    """``plan_object`` of an object the filters keep, its ``kind`` and ``apiVersion`` filled in."""
    skipped = skip_reason(obj, resource, ctx)
    if skipped is not None:
        return _skip(resource, obj, options, Reason(skipped.reason), skipped.detail)
    desired = apply_actions(obj, resource, ctx)
    meta = desired["metadata"]
    source_ns = (obj.get("metadata") or {}).get("namespace") if resource.namespaced else None
    target = (resource, meta.get("namespace") if resource.namespaced else None, meta.get("name") or "", source_ns)
    uid = str((obj.get("metadata") or {}).get("uid") or "")
    dropped = dropped_owner_references(obj, ctx)
    note = f"ownerReferences dropped, owners not restored: {', '.join(dropped)}" if dropped else ""
    if existing is None:
        return PlanItem(*target, "create", Reason.NEW, note, desired=desired, source_uid=uid)
    if options.existing_policy == "skip":
        return PlanItem(*target, "skip", Reason.EXISTS, "already on the cluster; existing_policy is skip")
    changed = diff_paths(desired, existing)
    if not changed:
        return PlanItem(*target, "skip", Reason.UNCHANGED, "already as in the backup")
    return PlanItem(*target, "update", Reason.CHANGED, note, diff=tuple(changed), desired=desired, source_uid=uid)


# -- comparing with what is on the cluster ----------------------------------------------------------------------------


def diff_paths(desired: Obj, existing: Obj) -> list[str]:
    """Top-level and ``spec.``/``metadata.`` paths where the cluster's object differs from ``desired``.

    Both sides are sanitized, and a field only the cluster has counts as a server default, not a difference
    (``imagePullPolicy``, ``clusterIP``, ``sessionAffinity``...), except in maps written whole (labels, data).
    """
    ours = _comparable(desired)
    theirs = _comparable(existing)
    changed: list[str] = []
    for key in sorted(set(ours) | (set(theirs) & {"data", "binaryData", "stringData"})):
        if key in ("spec", "metadata") and isinstance(ours.get(key), dict) and isinstance(theirs.get(key), dict):
            for sub in sorted(set(ours[key]) | _exact_keys(key, theirs[key])):
                path = f"{key}.{sub}"
                if not _covers(ours[key].get(sub), theirs[key].get(sub), exact=path in _EXACT_MAPS):
                    changed.append(path)
        elif not _covers(ours.get(key), theirs.get(key), exact=key in _EXACT_MAPS):
            changed.append(key)
    return changed


def _exact_keys(section: str, theirs: dict[str, Any]) -> set[str]:
    return {sub for sub in theirs if f"{section}.{sub}" in _EXACT_MAPS}


def _comparable(obj: Obj) -> Obj:
    out = sanitize(obj, obj.get("kind", ""), obj.get("apiVersion", ""))
    meta = out["metadata"]
    for key in ("ownerReferences", "generateName", "finalizers"):
        meta.pop(key, None)
    # Restore bookkeeping differs between restores of one backup, and the name label is the server's: no change.
    for section, own in (("labels", _OWN_LABELS), ("annotations", _OWN_ANNOTATIONS)):
        kept = {k: v for k, v in (meta.get(section) or {}).items() if k not in own}
        if kept:
            meta[section] = kept
        else:
            meta.pop(section, None)
    return out


def _covers(ours: Any, theirs: Any, *, exact: bool = False) -> bool:
    """Whether ``theirs`` has everything ``ours`` sets (and, with ``exact``, nothing more at the top)."""
    if ours is None:
        return not (exact and theirs)
    if isinstance(ours, dict):
        if not isinstance(theirs, dict):
            return False
        if exact and set(theirs) - set(ours):
            return False
        return all(_covers(v, theirs.get(k)) for k, v in ours.items())
    if isinstance(ours, list):
        return (
            isinstance(theirs, list)
            and len(ours) == len(theirs)
            and all(_covers(a, b) for a, b in zip(ours, theirs, strict=True))
        )
    return bool(ours == theirs)


# Fields the server allocates or makes immutable: a replace must carry the cluster's value, or it is refused.
_KEPT_ON_UPDATE: dict[str, tuple[str, ...]] = {
    "services": ("clusterIP", "clusterIPs", "ipFamilies", "ipFamilyPolicy", "healthCheckNodePort"),
    "persistentvolumeclaims": ("volumeName", "storageClassName", "volumeMode", "dataSource", "dataSourceRef"),
    "jobs.batch": ("selector",),
}


def prepare_update(desired: Obj, existing: Obj, resource: Resource) -> Obj:
    """The body of a replace: ``desired`` plus the cluster's resourceVersion and the fields it allocated."""
    body: Obj = {**desired, "metadata": {**desired.get("metadata", {})}}
    live_meta = existing.get("metadata") or {}
    body["metadata"]["resourceVersion"] = live_meta.get("resourceVersion")
    live_spec = existing.get("spec")
    kept = _KEPT_ON_UPDATE.get(resource.group_resource, ())
    if kept and isinstance(live_spec, dict):
        spec = body["spec"] = dict(body.get("spec") or {})
        for key in kept:
            if key in live_spec and key not in spec:
                spec[key] = live_spec[key]
        if resource.group_resource == "services":
            _keep_node_ports(spec, live_spec)
        if resource.group_resource == "jobs.batch":
            _keep_job_uid_labels(spec, live_spec)
    return body


def _keep_node_ports(spec: Obj, live: Obj) -> None:
    allocated = {(p.get("port"), p.get("protocol", "TCP")): p.get("nodePort") for p in live.get("ports") or []}
    ports = []
    for port in spec.get("ports") or []:
        port = dict(port)
        node_port = allocated.get((port.get("port"), port.get("protocol", "TCP")))
        if node_port and "nodePort" not in port:
            port["nodePort"] = node_port
        ports.append(port)
    if ports:
        spec["ports"] = ports


def _keep_job_uid_labels(spec: Obj, live: Obj) -> None:
    # The template is immutable and carries the selector labels the server generated for this Job's uid.
    if "template" in live:
        spec["template"] = live["template"]


# -- the whole plan --------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class RestorePlan:
    backup_id: str
    options: RestoreOptions
    levels: tuple[tuple[PlanItem, ...], ...]  # consecutive; items of one level may run in parallel

    @property
    def items(self) -> list[PlanItem]:
        return [item for level in self.levels for item in level]

    def counts(self) -> dict[str, int]:
        out = {"create": 0, "update": 0, "skip": 0}
        for item in self.items:
            out[item.action] += 1
        return out

    def skipped_by_reason(self) -> dict[str, int]:
        out: dict[str, int] = {}
        for item in self.items:
            if item.action == "skip":
                out[str(item.reason)] = out.get(str(item.reason), 0) + 1
        return out

    def to_dict(self) -> dict[str, Any]:
        return {
            "backup_id": self.backup_id,
            "options": self.options.to_dict(),
            "counts": self.counts(),
            "skipped": self.skipped_by_reason(),
            "levels": [[item.to_dict() for item in level] for level in self.levels],
        }


ExistingLookup = Callable[[Resource, str | None, str], Obj | None]


def build_plan(
    objects: Iterable[tuple[Resource, Obj]],
    options: RestoreOptions,
    *,
    backup_id: str = "",
    existing: ExistingLookup | None = None,
    snapshot_handles: Mapping[str, str] | None = None,
    volume_snapshots: Sequence[Mapping[str, Any]] = (),
) -> RestorePlan:
    """The plan for every backed-up object; ``existing(resource, namespace, name)`` looks a target object up.

    Without ``existing`` nothing is assumed to exist (the run then learns it from AlreadyExists).
    ``snapshot_handles`` (content name -> storage snapshot handle) comes from the manifest's volume snapshots;
    ``volume_snapshots`` (the manifest's records) adds the snapshots the backup took of its claims
    (``volume_restore.py``), and each claim's plan item says which snapshot it is restored from, or why none.
    """
    pairs = [_typed(r, o) for r, o in objects]
    selected = [(r, o) for r, o in pairs if selection_reason(o, r, options) is None]
    recorded = [_typed(r, o) for r, o in recorded_snapshot_objects(volume_snapshots, selected, options)]
    pairs.extend(recorded)
    selected.extend(recorded)
    ctx = RestoreContext.from_objects(selected, options, backup_id, snapshot_handles)
    restored = {
        str(o["metadata"]["uid"])
        for r, o in selected
        if (o.get("metadata") or {}).get("uid") and skip_reason(o, r, ctx) is None
    }
    ctx = replace(ctx, restored_uids=frozenset(restored))
    notes = claim_notes(volume_snapshots)
    sources = claim_sources(volume_snapshots)
    lookup: ExistingLookup = existing or (lambda resource, namespace, name: None)

    kept = {id(o) for _, o in selected}

    def plan(resource: Resource, obj: Obj) -> PlanItem:
        if id(obj) not in kept:
            return plan_object(obj, resource, options, None, ctx)  # the filters' skip, with its reason
        item = _plan_selected(obj, resource, options, None, ctx)
        if item.action == "create" and existing is not None:
            # Only objects the restore would write are looked up: a dry run of a filtered restore stays cheap.
            live = existing(resource, item.namespace, item.name)
            if live is not None:
                item = _plan_selected(obj, resource, options, live, ctx)
        if resource.group_resource == "persistentvolumeclaims" and item.action != "skip" and not item.detail:
            item = replace(item, detail=_claim_detail(item, ctx, notes, sources))
        return item

    items = _owners_first([plan(r, o) for r, o in pairs])
    items.extend(_implied_namespaces(items, ctx, lookup))
    by_level: dict[tuple[int, int], list[PlanItem]] = {}
    for item in items:
        by_level.setdefault(item.order, []).append(item)
    levels = tuple(
        tuple(sorted(by_level[n], key=lambda i: (i.resource.group_resource, i.namespace or "", i.name)))
        for n in sorted(by_level)
    )
    return RestorePlan(backup_id, options, levels)


def _typed(resource: Resource, obj: Obj) -> tuple[Resource, Obj]:
    """``obj`` (a shallow copy) with its ``kind`` and ``apiVersion``, from its type where the blob has none."""
    return resource, {
        **obj,
        "kind": obj.get("kind") or resource.kind,
        "apiVersion": obj.get("apiVersion") or resource.api_version,
    }


def _owners_first(items: list[PlanItem]) -> list[PlanItem]:
    """Each item ranked by its type's level, and after every restored owner it references (chains included)."""
    rank = {i.source_uid: (i.level, 0) for i in items if i.source_uid}
    owners = {
        i.source_uid: [str(r.get("uid")) for r in (i.desired or {}).get("metadata", {}).get("ownerReferences") or []]
        for i in items
        if i.source_uid and i.desired
    }
    for _ in range(len(owners)):  # a longest chain settles in as many rounds as it has links
        moved = False
        for uid, refs in owners.items():
            for ref in refs:
                if ref in rank and rank[ref] >= rank[uid]:
                    rank[uid] = (rank[ref][0], rank[ref][1] + 1)
                    moved = True
        if not moved:
            break
    # Most items keep the rank they started with: ``order`` gives it without a copy of the item.
    return [
        replace(i, rank=rank[i.source_uid]) if i.source_uid in rank and rank[i.source_uid] != (i.level, 0) else i
        for i in items
    ]


def _claim_detail(
    item: PlanItem,
    ctx: RestoreContext,
    notes: Mapping[tuple[str, str], str],
    sources: Mapping[tuple[str, str], str] | None = None,
) -> str:
    source = (item.source_namespace or "", item.name)
    snapshot = ctx.snapshot_for_claim.get(source)
    if snapshot:
        content = ctx.content_for_snapshot.get(source[:1] + (snapshot,), "")
        detail = f"restored from VolumeSnapshot {snapshot}" + (f" (content {content})" if content else "")
        storage = (sources or {}).get(source)
        return f"{detail}, {storage}" if storage else detail
    return notes.get(source, "")


def _implied_namespaces(items: list[PlanItem], ctx: RestoreContext, lookup: ExistingLookup) -> list[PlanItem]:
    """Namespaces that objects are restored into but the backup holds no Namespace object for."""
    held = {i.name for i in items if i.resource.group_resource == "namespaces"}
    needed = sorted({i.namespace for i in items if i.namespace and i.action != "skip"} - held - SYSTEM_NAMESPACES)
    out = []
    for namespace in needed:
        body: Obj = {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": namespace}}
        body = label_restored(body, ctx)
        body["metadata"].setdefault("labels", {})[NAMESPACE_NAME_LABEL] = namespace
        detail = "the backup holds objects for this namespace but not the namespace itself"
        if lookup(NAMESPACES, None, namespace) is None:
            out.append(PlanItem(NAMESPACES, None, namespace, None, "create", Reason.IMPLIED, detail, desired=body))
        else:
            out.append(PlanItem(NAMESPACES, None, namespace, None, "skip", Reason.EXISTS, "already on the cluster"))
    return out
