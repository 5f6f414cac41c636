"""Restore rules for storage: claims, volumes, and CSI snapshots a claim can be restored from.

A claim is restored from a VolumeSnapshot only when the backup can recreate that snapshot as *pre-provisioned*:
its VolumeSnapshotContent is in the selection and names the storage snapshot (``source.snapshotHandle``, or a
handle the manifest recorded). Recreating a dynamic snapshot instead would take a new snapshot of the restored
claim, which itself waits for that snapshot: a claim that never binds.
"""

from __future__ import annotations

from typing import Any

from chalicelib.core.restore_context import RestoreContext
from chalicelib.core.volume_facts import SNAPSHOT_API_GROUP, content_restorable
from chalicelib.core.volume_facts import names as _names
from chalicelib.core.volume_facts import spec as _spec

Obj = dict[str, Any]

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
