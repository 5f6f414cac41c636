"""Unit tests for core/volume_restore.py: the snapshot objects a restore recreates from the manifest's records."""

from __future__ import annotations

from chalicelib.core.restore_options import RestoreOptions
from chalicelib.core.restore_plan import build_plan
from chalicelib.core.volume_restore import claim_notes, content_name, recorded_snapshot_objects
from chalicelib.core.volume_snapshots import VolumeRecord
from tests.support.objects import obj
from tests.support.resources import PVC, VS

READY = {
    "type": "csi",
    "namespace": "shop",
    "pvc": "data",
    "state": "ready",
    "driver": "ebs.csi.aws.com",
    "class": "snap",
    "snapshot_name": "lifeboat-b-data-1",
    "content_name": "snapcontent-1",
    "snapshot_handle": "snap-0abc",
}
FAILED = {"type": "csi", "namespace": "shop", "pvc": "logs", "state": "failed", "error": "snapshot not ready after 60s"}


def _claim(name: str) -> tuple[object, dict[str, object]]:
    return PVC, obj("PersistentVolumeClaim", name, "shop", spec={"accessModes": ["ReadWriteOnce"]})


def test_a_ready_record_of_a_restored_claim_gives_a_preprovisioned_content_and_its_snapshot() -> None:
    made = recorded_snapshot_objects([READY, FAILED], [_claim("data"), _claim("logs")], RestoreOptions())
    (content_res, content), (snap_res, snap) = made
    assert (content_res.kind, snap_res.kind) == ("VolumeSnapshotContent", "VolumeSnapshot")
    assert content["spec"]["source"] == {"snapshotHandle": "snap-0abc"}
    assert content["spec"]["deletionPolicy"] == "Retain"
    assert content["spec"]["volumeSnapshotRef"]["name"] == "lifeboat-b-data-1"
    assert content["metadata"]["name"].startswith("snapcontent-1-restore-")
    assert snap["spec"]["source"] == {"persistentVolumeClaimName": "data"}


def test_nothing_is_recreated_for_claims_not_restored_snapshots_held_or_when_asked_not_to() -> None:
    assert recorded_snapshot_objects([READY], [_claim("other")], RestoreOptions()) == []
    held = (VS, obj("VolumeSnapshot", "lifeboat-b-data-1", "shop", apiVersion="snapshot.storage.k8s.io/v1"))
    assert recorded_snapshot_objects([READY], [_claim("data"), held], RestoreOptions()) == []
    off = RestoreOptions(restore_pvcs_from_snapshots=False)
    assert recorded_snapshot_objects([READY], [_claim("data")], off) == []


def test_content_names_are_the_restores_own_and_stable_per_target() -> None:
    record = VolumeRecord.from_dict(READY)
    assert content_name(record, "shop") == content_name(record, "shop") != content_name(record, "shop-copy")
    assert content_name(record, "shop") != "snapcontent-1"


def test_the_plan_restores_the_claim_from_the_recorded_snapshot_and_says_why_not_for_the_rest() -> None:
    plan = build_plan([_claim("data"), _claim("logs")], RestoreOptions(), volume_snapshots=[READY, FAILED])
    items = {(i.resource.kind, i.name): i for i in plan.items}
    data = items[("PersistentVolumeClaim", "data")]
    assert data.desired is not None
    assert data.desired["spec"]["dataSource"]["name"] == "lifeboat-b-data-1"
    assert data.detail.startswith("restored from VolumeSnapshot lifeboat-b-data-1 (content snapcontent-1-restore-")
    assert items[("PersistentVolumeClaim", "logs")].detail == (
        "restored empty: the backup has no snapshot of it (snapshot not ready after 60s)"
    )
    assert items[("VolumeSnapshot", "lifeboat-b-data-1")].action == "create"
    assert claim_notes([READY]) == {}
