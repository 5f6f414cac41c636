"""Facts about CSI snapshots in a backup: the snapshot API's names, handles, and which claim each snapshot restores."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from chalicelib.core.resources import Resource

Obj = dict[str, Any]

SNAPSHOT_API_GROUP = "snapshot.storage.k8s.io"
SNAPSHOTS = f"volumesnapshots.{SNAPSHOT_API_GROUP}"
SNAPSHOT_CONTENTS = f"volumesnapshotcontents.{SNAPSHOT_API_GROUP}"


def names(obj: Obj) -> tuple[str, str]:
    meta = obj.get("metadata") or {}
    return meta.get("namespace") or "", meta.get("name") or ""


def spec(obj: Obj) -> Obj:
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
    return bool((spec(obj).get("source") or {}).get("snapshotHandle")) or names(obj)[1] in handles


def collect_snapshot_facts(
    objects: Iterable[tuple[Resource, Obj]], handles: Mapping[str, str], from_snapshots: bool
) -> tuple[dict[tuple[str, str], str], dict[tuple[str, str], str]]:
    """(source ns, claim) -> snapshot to restore it from, and (source ns, snapshot) -> its restorable content."""
    contents: dict[tuple[str, str], str] = {}
    snapshots: list[tuple[str, str, str]] = []  # (ns, snapshot, claim)
    for resource, obj in objects:
        if resource.group_resource == SNAPSHOT_CONTENTS and content_restorable(obj, handles):
            ref = spec(obj).get("volumeSnapshotRef") or {}
            if ref.get("namespace") and ref.get("name"):
                contents[(ref["namespace"], ref["name"])] = names(obj)[1]
        elif resource.group_resource == SNAPSHOTS:
            claim = (spec(obj).get("source") or {}).get("persistentVolumeClaimName")
            if claim:
                snapshots.append((*names(obj), claim))
    for_claim: dict[tuple[str, str], str] = {}
    if from_snapshots:
        for ns, name, claim in snapshots:
            # Several snapshots of one claim: the greatest name wins, so the choice does not depend on the order
            # objects were read in (snapshot names usually end in a timestamp or a backup id).
            if (ns, name) in contents and name > for_claim.get((ns, claim), ""):
                for_claim[(ns, claim)] = name
    return for_claim, contents
