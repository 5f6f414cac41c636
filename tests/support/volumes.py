"""Volume objects for snapshot tests: a snapshot class, a bound CSI volume and its claim, snapshots and contents."""

from __future__ import annotations

from typing import Any

SNAP_API = "snapshot.storage.k8s.io/v1"
EBS = "ebs.csi.aws.com"

Obj = dict[str, Any]


def snapshot_class(name: str, driver: str = EBS, policy: str = "Delete", default: bool = False) -> Obj:
    meta: Obj = {"name": name}
    if default:
        meta["annotations"] = {"snapshot.storage.kubernetes.io/is-default-class": "true"}
    return {
        "apiVersion": SNAP_API,
        "kind": "VolumeSnapshotClass",
        "metadata": meta,
        "driver": driver,
        "deletionPolicy": policy,
    }


def volume(name: str, namespace: str, claim: str, size: str = "2Gi", driver: str = EBS) -> Obj:
    """A CSI PersistentVolume bound to ``namespace/claim``."""
    return {
        "apiVersion": "v1",
        "kind": "PersistentVolume",
        "metadata": {"name": name},
        "spec": {
            "capacity": {"storage": size},
            "accessModes": ["ReadWriteOnce"],
            "persistentVolumeReclaimPolicy": "Delete",
            "claimRef": {"apiVersion": "v1", "kind": "PersistentVolumeClaim", "namespace": namespace, "name": claim},
            "csi": {"driver": driver, "volumeHandle": f"vol-{name}"},
        },
    }


def claim(name: str, volume_name: str | None = None, size: str = "2Gi", labels: dict[str, str] | None = None) -> Obj:
    spec: Obj = {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": size}}}
    if volume_name:
        spec["volumeName"] = volume_name
    meta: Obj = {"name": name, "labels": labels or {}}
    return {"apiVersion": "v1", "kind": "PersistentVolumeClaim", "metadata": meta, "spec": spec}


def snapshot(name: str, claim_name: str | None = None, klass: str | None = None, content: str | None = None) -> Obj:
    source = {"persistentVolumeClaimName": claim_name} if claim_name else {"volumeSnapshotContentName": content}
    spec: Obj = {"source": source}
    if klass:
        spec["volumeSnapshotClassName"] = klass
    return {"apiVersion": SNAP_API, "kind": "VolumeSnapshot", "metadata": {"name": name}, "spec": spec}


def preprovisioned_content(name: str, handle: str, namespace: str, snapshot_name: str, driver: str = EBS) -> Obj:
    return {
        "apiVersion": SNAP_API,
        "kind": "VolumeSnapshotContent",
        "metadata": {"name": name},
        "spec": {
            "deletionPolicy": "Retain",
            "driver": driver,
            "source": {"snapshotHandle": handle},
            "volumeSnapshotRef": {"name": snapshot_name, "namespace": namespace},
        },
    }
