"""Unit tests for core/volume_snapshots.py: policy settings, which claims, snapshot names and manifest records."""

from __future__ import annotations

import re

import pytest

from chalicelib.core.errors import InvalidPolicy
from chalicelib.core.jobs import BackupJob, VolumesMessage, parse_message
from chalicelib.core.policies import Policy, parse_policy
from chalicelib.core.volume_snapshots import (
    EXCLUDED,
    FAILED,
    NOT_SNAPSHOTABLE,
    PENDING,
    READY,
    Claim,
    SnapshotClassInfo,
    VolumeRecord,
    VolumeSettings,
    all_settled,
    observe,
    parse_volumes,
    plan_claims,
    snapshot_body,
    snapshot_name,
    time_out,
    volume_errors,
)

EBS = "ebs.csi.aws.com"
CLAIMS = [
    Claim("shop", "data", {"tier": "db"}, "pv-1", EBS),
    Claim("shop", "cache", {"tier": "cache"}, "pv-2", "other.csi.example.com"),
    Claim("shop", "old", {}, "pv-3", "", "awsElasticBlockStore"),
    Claim("shop", "unbound"),
]
CLASSES = [SnapshotClassInfo("ebs-snap", EBS, default=True), SnapshotClassInfo("ebs-other", EBS)]
NAME_RE = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")


def _by(records: list[VolumeRecord]) -> dict[str, VolumeRecord]:
    return {r.pvc: r for r in records}


# -- settings ------------------------------------------------------------------------------------------------------


def test_settings_default_to_no_snapshots_and_round_trip() -> None:
    assert parse_volumes(None) == (VolumeSettings(), [])
    data = {
        "mode": "csi",
        "class": {EBS: "ebs-snap"},
        "include": [{"namespace": "shop*"}],
        "exclude": [{"labels": "tier=cache"}],
        "ready_timeout": 600,
    }
    settings = VolumeSettings.from_dict(data)
    assert settings.class_for(EBS) == "ebs-snap" and settings.class_for("x") is None
    assert settings.to_dict() == data
    assert VolumeSettings.from_dict(settings.to_dict()) == settings


@pytest.mark.parametrize(
    ("data", "problem"),
    [
        ("csi", "must be a mapping"),
        ({"mode": "always"}, "volumes.mode: must be one of none, csi, ebs, auto"),
        ({"mode": "csi", "class": 3}, "volumes.class"),
        ({"mode": "csi", "ready_timeout": 0}, "volumes.ready_timeout"),
        ({"mode": "csi", "include": [{"labels": "a in"}]}, "volumes.include[0].labels"),
        ({"mode": "csi", "exclude": [{"pvc": "x"}]}, "volumes.exclude[0]"),
        ({"mode": "csi", "wait": 3}, "unknown fields wait"),
    ],
)
def test_invalid_settings_name_the_field(data: object, problem: str) -> None:
    settings, problems = parse_volumes(data)
    assert settings is None
    assert any(problem in p for p in problems), problems


def test_ebs_mode_is_accepted() -> None:
    settings, problems = parse_volumes({"mode": "ebs", "ready_timeout": 900})
    assert problems == [] and settings is not None
    assert settings.mode == "ebs" and settings.ready_timeout_s == 900


def test_a_policy_carries_its_volume_settings_to_its_jobs() -> None:
    base = {"name": "shop", "cluster": "prod", "schedule": "0 2 * * *", "scope": {"include_namespaces": ["shop"]}}
    policy, problems = parse_policy({**base, "volumes": {"mode": "auto", "class": "ebs-snap"}})
    assert policy is not None, problems
    assert policy.volumes.mode == "auto"
    assert Policy.from_dict(policy.to_dict()) == policy
    assert "volumes" not in Policy.from_dict(base).to_dict(), "a policy without volumes reads as before"
    _, problems = parse_policy({**base, "volumes": {"mode": "nope"}})
    assert problems == ["policy (shop).volumes.mode: must be one of none, csi, ebs, auto; got 'nope'"]

    job = BackupJob.from_dict({"job_id": "j", "cluster": {"name": "prod", "auth": {"type": "eks"}}})
    assert "volumes" not in job.to_dict()
    with_volumes = BackupJob(job.job_id, job.cluster, volumes=policy.volumes)
    assert BackupJob.from_dict(with_volumes.to_dict()).volumes == policy.volumes


def test_the_volumes_message_parses() -> None:
    msg = VolumesMessage(
        BackupJob.from_dict({"job_id": "j", "cluster": {"name": "c", "auth": {"type": "eks"}}}).cluster, "b1"
    )
    assert parse_message(msg.to_dict()) == msg


# -- which claims --------------------------------------------------------------------------------------------------


def test_auto_mode_snapshots_what_it_can_and_records_why_not_for_the_rest() -> None:
    records = _by(plan_claims(VolumeSettings(mode="auto"), "20261122T101500Z-3fa9c2", CLAIMS, CLASSES))
    assert records["data"].state == PENDING and records["data"].snapshot_class == "ebs-snap"
    assert records["cache"].state == NOT_SNAPSHOTABLE
    assert records["cache"].reason == "no VolumeSnapshotClass for driver other.csi.example.com"
    assert records["old"].state == NOT_SNAPSHOTABLE and "in-tree awsElasticBlockStore" in records["old"].reason
    assert records["unbound"].state == NOT_SNAPSHOTABLE and "not bound" in records["unbound"].reason
    assert not volume_errors(list(records.values()))


def test_csi_mode_makes_a_claim_it_cannot_snapshot_an_error() -> None:
    records = _by(plan_claims(VolumeSettings(mode="csi"), "b", CLAIMS, CLASSES))
    assert {r.pvc for r in records.values() if r.state == FAILED} == {"cache", "old", "unbound"}
    errors = volume_errors(list(records.values()))
    assert {
        "resource": "persistentvolumeclaims",
        "error": "volume snapshot of shop/unbound failed: the claim is not bound to a PersistentVolume",
    } in errors


def test_class_choice_policy_then_default_then_the_only_one() -> None:
    only = [SnapshotClassInfo("lone", EBS)]
    assert plan_claims(VolumeSettings(mode="csi"), "b", CLAIMS[:1], only)[0].snapshot_class == "lone"
    named = VolumeSettings(mode="csi", snapshot_class="ebs-other")
    assert plan_claims(named, "b", CLAIMS[:1], CLASSES)[0].snapshot_class == "ebs-other"
    two = [SnapshotClassInfo("a", EBS), SnapshotClassInfo("b", EBS)]
    assert plan_claims(VolumeSettings(mode="auto"), "b", CLAIMS[:1], two)[0].state == NOT_SNAPSHOTABLE


def test_selectors_exclude_claims_and_say_so() -> None:
    settings = VolumeSettings.from_dict(
        {"mode": "auto", "include": [{"labels": "tier"}], "exclude": [{"name": "cache"}]}
    )
    records = _by(plan_claims(settings, "b", CLAIMS, CLASSES))
    assert records["cache"].state == EXCLUDED and records["old"].state == EXCLUDED
    assert records["data"].state == PENDING
    assert all(r.reason for r in records.values() if r.state == EXCLUDED)


def test_snapshot_names_are_deterministic_valid_and_distinct() -> None:
    name = snapshot_name("20261122T101500Z-3fa9c2", "shop", "data")
    assert name == snapshot_name("20261122T101500Z-3fa9c2", "shop", "data")
    assert name != snapshot_name("20261122T101500Z-3fa9c2", "shop2", "data")
    assert NAME_RE.match(name) and name.startswith("lifeboat-20261122t101500z-3fa9c2-data-")
    long = snapshot_name("20261122T101500Z-3fa9c2", "shop", "x" * 59 + "-" + "y" * 190)
    assert len(long) <= 253 and NAME_RE.match(long)


def test_the_snapshot_body_names_its_claim_class_and_backup() -> None:
    record = plan_claims(VolumeSettings(mode="csi"), "B-1", CLAIMS[:1], CLASSES)[0]
    body = snapshot_body(record, "B-1")
    assert body["metadata"]["labels"] == {"lifeboat.io/backup-id": "B-1"}
    assert body["spec"] == {"volumeSnapshotClassName": "ebs-snap", "source": {"persistentVolumeClaimName": "data"}}


# -- observing snapshots -------------------------------------------------------------------------------------------


def _pending() -> VolumeRecord:
    return VolumeRecord("shop", "data", PENDING, driver=EBS, snapshot_class="c", snapshot_name="s")


def test_observe_follows_a_snapshot_to_ready() -> None:
    bound = {"status": {"boundVolumeSnapshotContentName": "snapcontent-1", "readyToUse": False}}
    record = observe(_pending(), bound, {"spec": {"driver": EBS}}, "t0")
    assert record.state == PENDING and record.content_name == "snapcontent-1"
    ready = {"status": {"boundVolumeSnapshotContentName": "snapcontent-1", "readyToUse": True, "restoreSize": "1Gi"}}
    content = {"spec": {"driver": EBS}, "status": {"snapshotHandle": "snap-1", "readyToUse": True}}
    record = observe(record, ready, content, "t1")
    assert (record.state, record.snapshot_handle, record.restore_size, record.ready_at) == (
        READY,
        "snap-1",
        "1Gi",
        "t1",
    )
    assert all_settled([record])
    assert observe(record, None, None, "t2") == record, "a settled record stays as it is"


def test_observe_records_errors_and_a_vanished_snapshot_and_time_out_fails_what_is_left() -> None:
    failed = observe(_pending(), {"status": {"error": {"message": "boom"}, "readyToUse": False}}, None, "t")
    assert (failed.state, failed.error) == (FAILED, "boom")
    gone = observe(_pending(), None, None, "t")
    assert gone.state == FAILED and "is gone" in gone.error
    late = time_out(_pending(), 60)
    assert (late.state, late.error) == (FAILED, "snapshot not ready after 60s")
    assert not all_settled([_pending()])


def test_records_round_trip_without_empty_fields() -> None:
    record = VolumeRecord("shop", "data", READY, driver=EBS, snapshot_name="s", content_name="c", snapshot_handle="h")
    data = record.to_dict()
    assert "error" not in data and data["type"] == "csi"
    assert VolumeRecord.from_dict(data) == record
    with pytest.raises(InvalidPolicy):
        VolumeSettings.from_dict({"mode": "x"})
