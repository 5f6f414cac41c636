"""Restore rules for storage: claims, volumes, and CSI snapshots a claim can be restored from.

A claim is restored from a VolumeSnapshot only when the backup can recreate that snapshot as *pre-provisioned*:
its VolumeSnapshotContent is in the selection and names the storage snapshot (``source.snapshotHandle``, or a
handle the manifest recorded). Recreating a dynamic snapshot instead would take a new snapshot of the restored
claim, which itself waits for that snapshot: a claim that never binds.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any

from chalicelib.core.resources import Resource

if TYPE_CHECKING:
    from chalicelib.core.restore_actions import RestoreContext

Obj = dict[str, Any]

SNAPSHOT_API_GROUP = "snapshot.storage.k8s.io"
SNAPSHOTS = f"volumesnapshots.{SNAPSHOT_API_GROUP}"
SNAPSHOT_CONTENTS = f"volumesnapshotcontents.{SNAPSHOT_API_GROUP}"
# Written by the PV controller and the scheduler while binding; on a new cluster they describe a binding that never
# happened there, and the controller would trust them instead of binding afresh.
PVC_BIND_ANNOTATIONS = frozenset(
    {
        "pv.kubernetes.io/bind-completed",
        "pv.kubernetes.io/bound-by-controller",
        "volume.beta.kubernetes.io/storage-provisioner",
        "volume.kubernetes.io/storage-provisioner",
        "volume.kubernetes.io/selected-node",
    }
)


def _names(obj: Obj) -> tuple[str, str]:
    meta = obj.get("metadata") or {}
    return meta.get("namespace") or "", meta.get("name") or ""


def _spec(obj: Obj) -> Obj:
    spec = obj.get("spec")
    return spec if isinstance(spec, dict) else {}


def snapshot_handles(volume_snapshots: Iterable[Mapping[str, Any]]) -> dict[str, str]:
    """Content name -> storage snapshot handle, from a manifest's ``volume_snapshots`` records
    (``{"content_name": ..., "snapshot_handle": ...}``; records without both are ignored)."""
    out = {}
    for record in volume_snapshots:
        content, handle = record.get("content_name"), record.get("snapshot_handle")
        if isinstance(content, str) and content and isinstance(handle, str) and handle:
            out[content] = handle
    return out


def content_restorable(obj: Obj, handles: Mapping[str, str]) -> bool:
    """Whether a VolumeSnapshotContent can be recreated pointing at its storage snapshot."""
    return bool((_spec(obj).get("source") or {}).get("snapshotHandle")) or _names(obj)[1] in handles


def collect_snapshot_facts(
    objects: Iterable[tuple[Resource, Obj]], handles: Mapping[str, str], from_snapshots: bool
) -> tuple[dict[tuple[str, str], str], dict[tuple[str, str], str]]:
    """(source ns, claim) -> snapshot to restore it from, and (source ns, snapshot) -> its restorable content."""
    contents: dict[tuple[str, str], str] = {}
    snapshots: list[tuple[str, str, str]] = []  # (ns, snapshot, claim)
    for resource, obj in objects:
        if resource.group_resource == SNAPSHOT_CONTENTS and content_restorable(obj, handles):
            ref = _spec(obj).get("volumeSnapshotRef") or {}
            if ref.get("namespace") and ref.get("name"):
                contents[(ref["namespace"], ref["name"])] = _names(obj)[1]
        elif resource.group_resource == SNAPSHOTS:
            claim = (_spec(obj).get("source") or {}).get("persistentVolumeClaimName")
            if claim:
                snapshots.append((*_names(obj), claim))
    for_claim: dict[tuple[str, str], str] = {}
    if from_snapshots:
        for ns, name, claim in snapshots:
            # Several snapshots of one claim: the greatest name wins, so the choice does not depend on the order
            # objects were read in (snapshot names usually end in a timestamp or a backup id).
            if (ns, name) in contents and name > for_claim.get((ns, claim), ""):
                for_claim[(ns, claim)] = name
    return for_claim, contents


# -- skips -----------------------------------------------------------------------------------------------------------


def volume_of_snapshot_claim(obj: Obj, ctx: RestoreContext) -> str | None:
    ref = _spec(obj).get("claimRef") or {}
    snapshot = ctx.snapshot_for_claim.get((ref.get("namespace") or "", ref.get("name") or ""))
    if snapshot:
        return f"its claim {ref.get('namespace')}/{ref.get('name')} gets a new volume from snapshot {snapshot}"
    return None


def unrestorable_content(obj: Obj, ctx: RestoreContext) -> str | None:
    if content_restorable(obj, ctx.snapshot_handles):
        return None
    return "the backup recorded no snapshot handle for it; recreating it would snapshot the volume again"


def unrestorable_snapshot(obj: Obj, ctx: RestoreContext) -> str | None:
    source = _spec(obj).get("source") or {}
    if source.get("persistentVolumeClaimName") and _names(obj) not in ctx.content_for_snapshot:
        return "its content is not restorable from the backup; recreating it would snapshot the restored claim"
    return None


# -- transforms ------------------------------------------------------------------------------------------------------


def unbind_claim(obj: Obj, ctx: RestoreContext) -> Obj:
    spec = obj.setdefault("spec", {})
    spec.pop("volumeName", None)  # the PV controller binds it afresh (to its restored, pre-bound volume if any)
    annotations = (obj.get("metadata") or {}).get("annotations")
    if annotations:
        for key in PVC_BIND_ANNOTATIONS:
            annotations.pop(key, None)
        if not annotations:
            del obj["metadata"]["annotations"]
    snapshot = ctx.snapshot_for_claim.get(_names(obj))
    if snapshot:
        spec["dataSource"] = {"apiGroup": SNAPSHOT_API_GROUP, "kind": "VolumeSnapshot", "name": snapshot}
        spec.pop("dataSourceRef", None)  # the server derives it from dataSource; a stale one contradicts it
    return obj


def rebind_volume(obj: Obj, ctx: RestoreContext) -> Obj:
    # Keeping name and namespace pre-binds the volume to its claim; the uid is the old claim's and would never match.
    ref = _spec(obj).get("claimRef")
    if isinstance(ref, dict):
        for key in ("uid", "resourceVersion"):
            ref.pop(key, None)
        if ref.get("namespace"):
            ref["namespace"] = ctx.options.target_namespace(ref["namespace"])
    return obj


def bind_snapshot_to_content(obj: Obj, ctx: RestoreContext) -> Obj:
    # A snapshot whose source is a claim would take a *new* snapshot of that claim; pointing it at its restored
    # content makes it a pre-provisioned snapshot of the stored data.
    content = ctx.content_for_snapshot.get(_names(obj))
    if content:
        obj.setdefault("spec", {})["source"] = {"volumeSnapshotContentName": content}
    return obj


def preprovision_content(obj: Obj, ctx: RestoreContext) -> Obj:
    spec = _spec(obj)
    ref = spec.get("volumeSnapshotRef")
    if isinstance(ref, dict):
        for key in ("uid", "resourceVersion"):
            ref.pop(key, None)
        if ref.get("namespace"):
            ref["namespace"] = ctx.options.target_namespace(ref["namespace"])
    handle = ctx.snapshot_handles.get(_names(obj)[1])
    if handle and not (spec.get("source") or {}).get("snapshotHandle"):
        spec["source"] = {"snapshotHandle": handle}
    # The storage snapshot is shared with the source cluster and the backup: deleting the restored object must not
    # delete it.
    if spec:
        spec["deletionPolicy"] = "Retain"
    return obj
