"""Restoring claims from the snapshots a backup recorded: the snapshot objects to recreate, and a note per claim.

A backup takes its VolumeSnapshots after listing the cluster, so its trees do not hold them; the manifest's
``volume_snapshots`` records do (handle, driver, class, names). For each claim being restored whose record is
``ready``, the restore gets a pre-provisioned VolumeSnapshotContent carrying the storage ``snapshotHandle`` and the
VolumeSnapshot bound to it, and the usual rules (``restore_volumes.py``) point the claim's ``dataSource`` at it:
on the same cluster, in another namespace, on another cluster or from another region alike. Objects the backup
holds itself take precedence over recorded ones.

An EBS snapshot (``type: ebs``) is restored the same way through the EBS CSI driver; a restore in another region
(from the replica bucket) uses the snapshot's copy in that region (``in_region``), and a claim whose snapshot has no
copy there is restored empty, saying so.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping
from dataclasses import replace
from typing import Any

from chalicelib.core.resources import Resource
from chalicelib.core.restore_options import RestoreOptions
from chalicelib.core.volume_ebs import EBS_CSI_DRIVER
from chalicelib.core.volume_facts import SNAPSHOT_API_GROUP, SNAPSHOT_CONTENTS, SNAPSHOTS
from chalicelib.core.volume_snapshots import EBS, READY, VolumeRecord

Obj = dict[str, Any]

_VERBS = frozenset({"create", "delete", "get", "list", "patch", "update", "watch"})
SNAPSHOT_RESOURCE = Resource(SNAPSHOT_API_GROUP, "v1", "VolumeSnapshot", "volumesnapshots", True, _VERBS)
CONTENT_RESOURCE = Resource(SNAPSHOT_API_GROUP, "v1", "VolumeSnapshotContent", "volumesnapshotcontents", False, _VERBS)
CLAIMS = "persistentvolumeclaims"


def _records(volume_snapshots: Iterable[Mapping[str, Any]]) -> list[VolumeRecord]:
    return [VolumeRecord.from_dict(r) for r in volume_snapshots if isinstance(r, Mapping) and r.get("pvc")]


def in_region(volume_snapshots: Iterable[Mapping[str, Any]], region: str | None) -> list[dict[str, Any]]:
    """The records as a restore in ``region`` sees them: an EBS snapshot taken elsewhere is its copy in ``region``
    (or, with no copy there, a claim without a snapshot); every EBS snapshot restores through the EBS CSI driver
    (in-tree EBS volumes too, as CSI migration does). ``region`` None: the records as they are."""
    out = []
    for data in volume_snapshots:
        if not isinstance(data, Mapping) or data.get("type") != EBS or not data.get("pvc"):
            out.append(dict(data))
            continue
        record = replace(VolumeRecord.from_dict(data), driver=EBS_CSI_DRIVER)
        if region and record.region and record.region != region and record.state == READY:
            copy = next((c for c in record.copies if c.region == region and c.snapshot_id), None)
            if copy is None:
                why = f"its EBS snapshot {record.snapshot_handle} has no copy in {region}"
                record = replace(record, state="not-restorable", snapshot_handle="", reason=why)
            else:
                record = replace(record, snapshot_handle=copy.snapshot_id, region=region)
        out.append(record.to_dict())
    return out


def claim_sources(volume_snapshots: Iterable[Mapping[str, Any]]) -> dict[tuple[str, str], str]:
    """(namespace, claim) -> the storage snapshot a ready record restores it from, where the plan says it."""
    out = {}
    for record in _records(volume_snapshots):
        if record.state == READY and record.snapshot_handle:
            where = f" in {record.region}" if record.region else ""
            kind = "EBS snapshot" if record.type == EBS else "snapshot handle"
            out[(record.namespace, record.pvc)] = f"{kind} {record.snapshot_handle}{where}"
    return out


def recorded_snapshot_objects(
    volume_snapshots: Iterable[Mapping[str, Any]], objects: Iterable[tuple[Resource, Obj]], options: RestoreOptions
) -> list[tuple[Resource, Obj]]:
    """The VolumeSnapshot and VolumeSnapshotContent to restore with each claim in ``objects`` that has a ready
    snapshot, unless the backup holds that snapshot itself; none when claims are not restored from snapshots."""
    if not options.restore_pvcs_from_snapshots:
        return []
    claims, held = set(), set()
    for resource, obj in objects:
        meta = obj.get("metadata") or {}
        if resource.group_resource == CLAIMS:
            claims.add((meta.get("namespace") or "", meta.get("name") or ""))
        elif resource.group_resource in (SNAPSHOTS, SNAPSHOT_CONTENTS):
            held.add((resource.group_resource, meta.get("namespace") or "", meta.get("name") or ""))
    out: list[tuple[Resource, Obj]] = []
    for record in _records(volume_snapshots):
        if record.state != READY or not record.snapshot_handle or (record.namespace, record.pvc) not in claims:
            continue
        if (SNAPSHOTS, record.namespace, record.snapshot_name) in held:
            continue
        content = content_name(record, options.target_namespace(record.namespace))
        out.append((CONTENT_RESOURCE, _content(record, content)))
        out.append((SNAPSHOT_RESOURCE, _snapshot(record)))
    return out


def content_name(record: VolumeRecord, target_namespace: str) -> str:
    """A content name of the restore's own, never the backup's: on the source cluster the backup's content may still
    exist, bound (by uid) to the snapshot the backup made, and a snapshot created anew could not bind to it. The
    same restore target gives the same name, so a repeated restore finds its content instead of making another."""
    base = record.content_name or f"lifeboat-{record.snapshot_name}"
    digest = hashlib.sha256(f"{target_namespace}/{record.snapshot_name}/{record.snapshot_handle}".encode()).hexdigest()
    return f"{base[:230]}-restore-{digest[:8]}"


def _content(record: VolumeRecord, name: str) -> Obj:
    spec: Obj = {
        "deletionPolicy": "Retain",
        "driver": record.driver,
        "source": {"snapshotHandle": record.snapshot_handle},
        "volumeSnapshotRef": {
            "apiVersion": f"{SNAPSHOT_API_GROUP}/v1",
            "kind": "VolumeSnapshot",
            "name": record.snapshot_name,
            "namespace": record.namespace,
        },
    }
    if record.snapshot_class:
        spec["volumeSnapshotClassName"] = record.snapshot_class
    return {
        "apiVersion": f"{SNAPSHOT_API_GROUP}/v1",
        "kind": "VolumeSnapshotContent",
        "metadata": {"name": name},
        "spec": spec,
    }


def _snapshot(record: VolumeRecord) -> Obj:
    spec: Obj = {"source": {"persistentVolumeClaimName": record.pvc}}
    if record.snapshot_class:
        spec["volumeSnapshotClassName"] = record.snapshot_class
    return {
        "apiVersion": f"{SNAPSHOT_API_GROUP}/v1",
        "kind": "VolumeSnapshot",
        "metadata": {"name": record.snapshot_name, "namespace": record.namespace},
        "spec": spec,
    }


def claim_notes(volume_snapshots: Iterable[Mapping[str, Any]]) -> dict[tuple[str, str], str]:
    """(namespace, claim) -> why the backup has no snapshot to restore it from, for claims whose record says so."""
    notes = {}
    for record in _records(volume_snapshots):
        if record.state == READY and record.snapshot_handle:
            continue
        why = record.error or record.reason or f"its snapshot is {record.state}"
        notes[(record.namespace, record.pvc)] = f"restored empty: the backup has no snapshot of it ({why})"
    return notes
