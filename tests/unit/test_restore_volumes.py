from __future__ import annotations

from typing import Any

from chalicelib.core.resources import Resource
from chalicelib.core.restore_actions import apply_actions, skip_reason
from chalicelib.core.restore_context import RestoreContext
from chalicelib.core.restore_options import RestoreOptions
from chalicelib.core.restore_volumes import PVC_BIND_ANNOTATIONS
from chalicelib.core.volume_facts import snapshot_handles
from tests.support.objects import obj
from tests.support.resources import PV, PVC, VS, VSC

SNAP_API = "snapshot.storage.k8s.io/v1"


def snapshot(name: str, claim: str = "data", namespace: str = "shop") -> dict[str, Any]:
    return obj(
        "VolumeSnapshot", name, namespace, apiVersion=SNAP_API, spec={"source": {"persistentVolumeClaimName": claim}}
    )


def content(name: str, snap: str, *, handle: str | None = "snap-0abc", namespace: str = "shop") -> dict[str, Any]:
    source = {"snapshotHandle": handle} if handle else {"volumeHandle": "vol-0123"}
    return obj(
        "VolumeSnapshotContent",
        name,
        None,
        apiVersion=SNAP_API,
        spec={
            "driver": "ebs.csi.aws.com",
            "deletionPolicy": "Delete",
            "source": source,
            "volumeSnapshotRef": {"namespace": namespace, "name": snap, "uid": "u", "resourceVersion": "3"},
        },
    )


def ctx(
    objects: list[tuple[Resource, dict[str, Any]]], handles: dict[str, str] | None = None, **options: Any
) -> RestoreContext:
    return RestoreContext.from_objects(objects, RestoreOptions(**options), "b-1", handles)


def test_claim_is_unbound() -> None:
    annotations = {key: "yes" for key in PVC_BIND_ANNOTATIONS} | {"team": "data"}
    pvc = obj("PersistentVolumeClaim", "data", metadata={"annotations": annotations}, spec={"volumeName": "pv-1"})
    out = apply_actions(pvc, PVC, ctx([]))
    assert "volumeName" not in out["spec"]
    assert out["metadata"]["annotations"] == {"team": "data", "lifeboat.io/backup-id": "b-1"}
    assert "dataSource" not in out["spec"]


def test_claim_is_restored_from_its_snapshot_when_the_content_is_restorable() -> None:
    objects = [(VS, snapshot("data-snap")), (VSC, content("snapcontent-1", "data-snap"))]
    context = ctx(objects, namespace_mapping={"shop": "b"})
    pvc = obj("PersistentVolumeClaim", "data", spec={"dataSourceRef": {"kind": "Old", "name": "o"}})
    out = apply_actions(pvc, PVC, context)
    assert out["spec"]["dataSource"] == {
        "apiGroup": "snapshot.storage.k8s.io",
        "kind": "VolumeSnapshot",
        "name": "data-snap",
    }
    assert "dataSourceRef" not in out["spec"]
    assert out["metadata"]["namespace"] == "b"
    off = ctx(objects, restore_pvcs_from_snapshots=False)
    assert "dataSource" not in apply_actions(pvc, PVC, off)["spec"]
    other_namespace = obj("PersistentVolumeClaim", "data", "other")
    assert "dataSource" not in apply_actions(other_namespace, PVC, context)["spec"]


def test_dynamic_snapshot_without_a_handle_is_neither_restored_nor_used() -> None:
    objects = [(VS, snapshot("s")), (VSC, content("snapcontent-1", "s", handle=None))]
    context = ctx(objects)
    assert context.snapshot_for_claim == {}
    assert skip_reason(objects[0][1], VS, context).reason == "not-restorable"  # type: ignore[union-attr]
    assert skip_reason(objects[1][1], VSC, context).reason == "not-restorable"  # type: ignore[union-attr]
    no_content = ctx([(VS, snapshot("s"))])
    assert skip_reason(snapshot("s"), VS, no_content).reason == "not-restorable"  # type: ignore[union-attr]


def test_handle_recorded_in_the_manifest_makes_a_dynamic_content_restorable() -> None:
    handles = snapshot_handles(
        [
            {"content_name": "snapcontent-1", "snapshot_handle": "snap-0fff"},
            {"content_name": "half-record"},
            {"snapshot_handle": "orphan"},
        ]
    )
    assert handles == {"snapcontent-1": "snap-0fff"}
    objects = [(VS, snapshot("s")), (VSC, content("snapcontent-1", "s", handle=None))]
    context = ctx(objects, handles, namespace_mapping={"shop": "dr"})
    assert context.snapshot_for_claim == {("shop", "data"): "s"}
    assert skip_reason(objects[1][1], VSC, context) is None
    restored = apply_actions(objects[1][1], VSC, context)
    assert restored["spec"]["source"] == {"snapshotHandle": "snap-0fff"}
    assert restored["spec"]["volumeSnapshotRef"] == {"namespace": "dr", "name": "s"}
    assert restored["spec"]["deletionPolicy"] == "Retain"
    bound = apply_actions(objects[0][1], VS, context)
    assert bound["spec"]["source"] == {"volumeSnapshotContentName": "snapcontent-1"}
    assert bound["metadata"]["namespace"] == "dr"


def test_latest_snapshot_name_wins_whatever_the_order() -> None:
    a, b = snapshot("data-20260101"), snapshot("data-20260301")
    contents = [(VSC, content("c1", "data-20260101")), (VSC, content("c2", "data-20260301"))]
    for order in ([a, b], [b, a]):
        context = ctx([(VS, o) for o in order] + contents)
        assert context.snapshot_for_claim == {("shop", "data"): "data-20260301"}


def test_volume_keeps_claim_name_and_gets_the_mapped_namespace() -> None:
    claim_ref = {
        "kind": "PersistentVolumeClaim",
        "namespace": "shop",
        "name": "data",
        "uid": "u1",
        "resourceVersion": "9",
        "apiVersion": "v1",
    }
    pv = obj("PersistentVolume", "pv-1", None, spec={"claimRef": claim_ref})
    out = apply_actions(pv, PV, ctx([], namespace_mapping={"shop": "shop2"}))
    assert out["spec"]["claimRef"] == {
        "kind": "PersistentVolumeClaim",
        "namespace": "shop2",
        "name": "data",
        "apiVersion": "v1",
    }
    assert "namespace" not in out["metadata"]


def test_volume_of_a_claim_restored_from_snapshot_is_skipped() -> None:
    context = ctx([(VS, snapshot("s")), (VSC, content("c", "s"))])
    pv = obj("PersistentVolume", "pv-1", None, spec={"claimRef": {"namespace": "shop", "name": "data"}})
    assert skip_reason(pv, PV, context).reason == "restored-from-snapshot"  # type: ignore[union-attr]
    other = obj("PersistentVolume", "pv-2", None, spec={"claimRef": {"namespace": "shop", "name": "logs"}})
    assert skip_reason(other, PV, context) is None
