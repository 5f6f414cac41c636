"""EBS direct snapshots, the pure rules: a claim's EBS volume, the mode choice per claim, the EventBridge event."""

from __future__ import annotations

from typing import Any

import pytest

from chalicelib.core.volume_ebs import COMPLETED, FAILED, ebs_volume_id, parse_event, snapshot_state
from chalicelib.core.volume_snapshots import (
    Claim,
    SnapshotClassInfo,
    SnapshotCopy,
    VolumeRecord,
    VolumeSettings,
    plan_claims,
    time_out,
)

EBS = "ebs.csi.aws.com"


def _pv(spec: dict[str, Any]) -> dict[str, Any]:
    return {"metadata": {"name": "pv-1"}, "spec": spec}


def _pvc(name: str = "data", bound: str = "pv-1") -> dict[str, Any]:
    return {"metadata": {"name": name, "namespace": "shop"}, "spec": {"volumeName": bound}}


@pytest.mark.parametrize(
    ("spec", "volume"),
    [
        ({"csi": {"driver": EBS, "volumeHandle": "vol-0abc"}}, "vol-0abc"),
        ({"awsElasticBlockStore": {"volumeID": "aws://us-east-1a/vol-0def"}}, "vol-0def"),
        ({"awsElasticBlockStore": {"volumeID": "vol-0123"}}, "vol-0123"),
        ({"csi": {"driver": "pd.csi.storage.gke.io", "volumeHandle": "projects/x/disks/y"}}, ""),
        ({"nfs": {"server": "x", "path": "/"}}, ""),
    ],
)
def test_the_ebs_volume_of_a_persistent_volume(spec: dict[str, Any], volume: str) -> None:
    assert ebs_volume_id(spec) == volume
    assert Claim.of(_pvc(), _pv(spec)).volume_id == volume


def _claims() -> list[Claim]:
    return [
        Claim.of(_pvc("data"), _pv({"csi": {"driver": EBS, "volumeHandle": "vol-0abc"}})),
        Claim.of(_pvc("legacy"), _pv({"awsElasticBlockStore": {"volumeID": "aws://us-east-1a/vol-0def"}})),
        Claim.of(_pvc("files"), _pv({"csi": {"driver": "efs.csi.aws.com", "volumeHandle": "fs-1"}})),
    ]


CLASSES = [SnapshotClassInfo("ebs-snap", EBS), SnapshotClassInfo("efs-snap", "efs.csi.aws.com")]


def _by_pvc(records: list[VolumeRecord]) -> dict[str, VolumeRecord]:
    return {r.pvc: r for r in records}


def test_ebs_mode_snapshots_every_ebs_claim_with_ec2_and_fails_the_others() -> None:
    records = _by_pvc(plan_claims(VolumeSettings(mode="ebs"), "B1", _claims(), CLASSES, ebs_region="us-east-1"))
    for name, volume in (("data", "vol-0abc"), ("legacy", "vol-0def")):
        assert records[name].type == "ebs" and records[name].state == "pending"
        assert records[name].volume_id == volume and records[name].region == "us-east-1"
        assert records[name].snapshot_name.startswith("lifeboat-b1-")
    assert records["legacy"].driver == "kubernetes.io/aws-ebs"
    assert records["files"].state == "failed" and "not an EBS volume" in records["files"].error


def test_ebs_mode_without_ec2_fails_each_claim_saying_so() -> None:
    records = plan_claims(VolumeSettings(mode="ebs"), "B1", _claims()[:1], CLASSES)
    assert records[0].state == "failed" and "not configured" in records[0].error


def test_auto_mode_takes_csi_when_a_class_serves_the_claim_and_ebs_direct_when_a_copy_is_asked() -> None:
    auto = VolumeSettings(mode="auto")
    copied = _by_pvc(plan_claims(auto, "B1", _claims(), CLASSES, ebs_region="us-east-1", copy_region="us-west-2"))
    assert copied["data"].type == "csi" and copied["data"].snapshot_class == "ebs-snap"
    assert copied["legacy"].type == "ebs", "no CSI class can snapshot an in-tree volume; EC2 can, and copy it"
    assert copied["files"].type == "csi" and copied["files"].snapshot_class == "efs-snap"

    classless = _by_pvc(
        plan_claims(auto, "B1", _claims(), CLASSES[1:], ebs_region="us-east-1", copy_region="us-west-2")
    )
    assert classless["data"].type == "ebs" and classless["data"].state == "pending"

    local = _by_pvc(plan_claims(auto, "B1", _claims(), CLASSES, ebs_region="us-east-1"))
    assert local["legacy"].state == "not-snapshotable" and "in-tree" in local["legacy"].reason, "no copy asked"


def test_an_ebs_record_round_trips_with_its_copies() -> None:
    record = VolumeRecord(
        "shop",
        "data",
        "ready",
        type="ebs",
        driver=EBS,
        snapshot_name="n",
        snapshot_handle="snap-1",
        volume_id="vol-1",
        region="us-east-1",
        copies=(SnapshotCopy("us-west-2", "snap-2"),),
    )
    data = record.to_dict()
    assert data["copies"] == [{"region": "us-west-2", "snapshot_id": "snap-2"}]
    assert VolumeRecord.from_dict(data) == record


def test_a_timed_out_record_names_the_cause_when_known() -> None:
    pending = VolumeRecord("shop", "data", "pending", snapshot_name="n")
    assert time_out(pending, 60).error == "snapshot not ready after 60s"
    assert time_out(pending, 60, "cluster unreachable at https://k").error.endswith("cluster unreachable at https://k")


# The event as the Amazon EBS user guide documents it ("EBS Snapshot Notification").
CREATE_EVENT = {
    "version": "0",
    "id": "01234567-0123-0123-0123-012345678901",
    "detail-type": "EBS Snapshot Notification",
    "source": "aws.ec2",
    "account": "012345678901",
    "time": "2026-12-02T01:00:00Z",
    "region": "us-east-1",
    "resources": ["arn:aws:ec2::us-west-2:snapshot/snap-01234567"],
    "detail": {
        "event": "createSnapshot",
        "result": "succeeded",
        "cause": "",
        "request-id": "",
        "snapshot_id": "arn:aws:ec2::us-west-2:snapshot/snap-01234567",
        "source": "arn:aws:ec2::us-west-2:volume/vol-01234567",
        "startTime": "2026-12-02T00:59:00Z",
        "endTime": "2026-12-02T01:00:00Z",
    },
}


def test_a_documented_create_event_parses() -> None:
    event = parse_event(CREATE_EVENT)
    assert event is not None
    assert (event.event, event.succeeded, event.state) == ("createSnapshot", True, COMPLETED)
    assert (event.snapshot_id, event.region, event.source) == ("snap-01234567", "us-west-2", "vol-01234567")


def test_a_failed_copy_event_parses_with_its_cause() -> None:
    detail = {
        **CREATE_EVENT["detail"],  # type: ignore[dict-item]
        "event": "copySnapshot",
        "result": "failed",
        "cause": "Source snapshot ID is not valid",
        "source": "arn:aws:ec2::eu-west-1:snapshot/snap-76543210",
    }
    event = parse_event({**CREATE_EVENT, "detail": detail})
    assert event is not None and event.state == FAILED and event.cause == "Source snapshot ID is not valid"
    assert event.source == "snap-76543210"


@pytest.mark.parametrize(
    "change",
    [{"source": "aws.s3"}, {"detail-type": "EBS Volume Notification"}, {"detail": {"event": "createVolume"}}],
)
def test_other_events_are_not_snapshot_events(change: dict[str, Any]) -> None:
    assert parse_event({**CREATE_EVENT, **change}) is None


def test_ec2_states() -> None:
    assert [snapshot_state(s) for s in ("pending", "completed", "error", "recovering")] == [
        "pending",
        "completed",
        "failed",
        "pending",
    ]
