"""The event schema: every detail carries its version, each builder names its type, and the failures are listed."""

from __future__ import annotations

import pytest

from chalicelib.core import events as ev
from chalicelib.core.models import BackupRecord, BackupState


def _record(state: BackupState, **fields: object) -> BackupRecord:
    return BackupRecord(cluster="prod", backup_id="20261201T000000Z-abcdef", state=state, job_id="j", **fields)


@pytest.mark.parametrize(
    ("state", "detail_type"),
    [
        (BackupState.COMPLETED, "Backup Completed"),
        (BackupState.PARTIALLY_FAILED, "Backup Partially Failed"),
        (BackupState.FAILED, "Backup Failed"),
    ],
)
def test_a_terminal_backup_record_is_its_outcome_event(state, detail_type):
    event = ev.backup_event(_record(state, policy="nightly", failure="x" * 5000))
    assert event is not None and event.detail_type == detail_type
    assert event.detail["schema_version"] == "1" and event.detail["state"] == str(state)
    assert event.detail["policy"] == "nightly" and len(event.detail["failure"]) == ev.MAX_TEXT


def test_only_the_first_claim_is_started_and_other_transitions_are_silent():
    assert ev.backup_event(_record(BackupState.RUNNING), started=True).detail_type == "Backup Started"
    assert ev.backup_event(_record(BackupState.RUNNING)) is None  # a takeover, a retry, a join's claim
    assert ev.backup_event(_record(BackupState.EXPIRED)) is None  # retention: the maintenance event reports it
    assert ev.backup_event(_record(BackupState.COMPLETED), started=True).detail_type == "Backup Completed"


def test_a_long_error_list_is_cut_and_its_total_kept():
    errors = [{"resource": f"r{i}", "error": "forbidden"} for i in range(150)]
    event = ev.backup_event(_record(BackupState.PARTIALLY_FAILED, errors=errors[:100], extra={"errors_omitted": 50}))
    assert event is not None
    assert len(event.detail["errors"]) == ev.MAX_LISTED and event.detail["errors_total"] == 150


def test_every_builder_stamps_the_schema_version_and_a_known_type():
    built = [
        ev.replication_completed("c", "b", "eu-west-1", lag_s=1.5, copied=3),
        ev.replication_failed("c", "b", "eu-west-1", error="AccessDenied"),
        ev.snapshot_copy_event(
            "c", "b", snapshot_id="snap-2", region="eu-west-1", source_snapshot_id="snap-1",
            source_region="us-east-1", namespace="db", pvc="data", failed=False,
        ),
        ev.maintenance_completed(status="done", expired=2),
        ev.maintenance_failed("boom"),
        ev.verification_event(
            passed=False, verification_id="v1", policy="p", cluster="c", target_cluster="c", backup_id="b",
            state="Failed", rto_s=None, rto_target_minutes=None, rto_exceeded=False, problems=1, message="m",
        ),
        ev.restore_event(completed=True, detail={"restore_id": "r1"}),
        ev.hook_failed(
            cluster="c", backup_id="b", policy="p", phase="pre", hook="freeze", hook_type="exec",
            on_error="fail", error="exit 1",
        ),
        ev.dump_event(cluster="c", backup_id="b", policy="p", name="orders", engine="postgres", namespace="db",
                      failed=True, error="timeout"),
    ]
    assert [e.detail_type for e in built] == [
        "Replication Completed", "Replication Failed", "Snapshot Copy Completed", "Maintenance Completed",
        "Maintenance Failed", "Verification Failed", "Restore Completed", "Hook Failed", "Dump Failed",
    ]
    assert all(e.detail["schema_version"] == ev.SCHEMA_VERSION for e in built)
    assert set(e.detail_type for e in built) <= set(ev.DETAIL_TYPES)


def test_the_failure_types_are_exactly_the_failed_detail_types():
    assert set(ev.FAILURE_TYPES) == {t for t in ev.DETAIL_TYPES if "Failed" in t}
    assert len(set(ev.DETAIL_TYPES)) == len(ev.DETAIL_TYPES)


def test_every_event_is_documented():
    from pathlib import Path

    text = (Path(__file__).resolve().parents[2] / "docs" / "events.md").read_text()
    assert [t for t in ev.DETAIL_TYPES if f"`{t}`" not in text] == []
    assert f"today `\"{ev.SCHEMA_VERSION}\"`" in text
