"""The 3-2-1 verdict and what counts as a copy (pure: no AWS)."""

from __future__ import annotations

from chalicelib.core.models import BackupRecord, BackupState
from chalicelib.replication.report import Copy, assess, backup_copies

PRIMARY, REPLICA = "us-east-1", "us-west-2"


def record(**replicas: str) -> BackupRecord:
    return BackupRecord(
        cluster="prod",
        backup_id="b1",
        state=BackupState.COMPLETED,
        job_id="j",
        replicas={region.replace("_", "-"): {"state": state} for region, state in replicas.items()},
    )


def verdict(rec: BackupRecord, **kwargs: object) -> dict:
    copies = backup_copies(
        rec, primary_region=PRIMARY, primary_present=kwargs.pop("primary", True), replica_region=REPLICA, **kwargs
    )  # type: ignore[arg-type]
    return assess(copies, PRIMARY)


def test_primary_alone_breaks_the_rule_on_count_and_region() -> None:
    result = verdict(record())
    assert (result["copies"], result["kinds"], result["off_region"], result["rule_ok"]) == (2, 2, False, False)
    assert result["problems"] == ["2 copies, fewer than 3", "no copy outside the primary region"]


def test_a_replicated_copy_in_another_region_satisfies_it() -> None:
    result = verdict(record(us_west_2="Replicated"))
    assert result["rule_ok"] and result["copies"] == 3 and result["off_region_regions"] == [REPLICA]
    assert result["kinds_of_storage"] == ["kubernetes", "s3"]


def test_a_pending_or_failed_replica_does_not_count() -> None:
    assert not verdict(record(us_west_2="Pending"))["rule_ok"]
    assert verdict(record(us_west_2="Failed"))["copies"] == 2


def test_a_lost_primary_is_not_a_copy() -> None:
    result = verdict(record(us_west_2="Replicated"), primary=False)
    assert result["copies"] == 2 and not result["rule_ok"]


def test_volume_snapshots_add_a_kind_and_their_copied_regions() -> None:
    snapshots = [
        {"type": "ebs", "snapshot_id": "snap-1", "copies": [{"region": "eu-west-1", "snapshot_id": "snap-2"}]},
        {"type": "ebs", "snapshot_id": "snap-3"},  # same kind and region as the first: not another copy
        {"type": "csi", "name": "data-db-0"},
    ]
    result = verdict(record(), volume_snapshots=snapshots)
    locations = [(c["kind"], c["region"]) for c in result["locations"] if c["name"] == "volume-snapshots"]
    assert locations == [("ebs-snapshot", PRIMARY), ("ebs-snapshot", "eu-west-1"), ("csi-snapshot", PRIMARY)]
    assert result["kinds"] == 4 and result["off_region_regions"] == ["eu-west-1"] and result["rule_ok"]


def test_only_ready_volume_snapshots_are_copies() -> None:
    snapshots = [
        {"type": "csi", "pvc": "data", "state": "failed", "error": "snapshot not ready after 60s"},
        {"type": "csi", "pvc": "tmp", "state": "not-snapshotable", "reason": "not a CSI volume"},
    ]
    result = verdict(record(), volume_snapshots=snapshots)
    assert not [c for c in result["locations"] if c["name"] == "volume-snapshots"]
    ready = verdict(record(), volume_snapshots=[{"type": "csi", "state": "ready", "snapshot_handle": "h"}])
    assert [c["kind"] for c in ready["locations"] if c["name"] == "volume-snapshots"] == ["csi-snapshot"]


def test_assess_counts_one_kind_as_a_problem() -> None:
    result = assess([Copy("primary", "s3", PRIMARY), Copy("replica", "s3", REPLICA), Copy("x", "s3", REPLICA)], PRIMARY)
    assert result["problems"] == ["1 kind of storage, fewer than 2"]


def test_an_ebs_copy_counts_only_once_the_catalog_says_it_completed() -> None:
    snapshots = [
        {
            "type": "ebs",
            "state": "ready",
            "snapshot_handle": "snap-1",
            "region": PRIMARY,
            "copies": [{"region": REPLICA, "snapshot_id": "snap-2"}],
        }
    ]
    for state in ("pending", "failed"):
        result = verdict(record(), volume_snapshots=snapshots, copy_states={"snap-2": state})
        assert [c["region"] for c in result["locations"] if c["name"] == "volume-snapshots"] == [PRIMARY], state
        assert not result["off_region"]
    done = verdict(record(), volume_snapshots=snapshots, copy_states={"snap-2": "completed"})
    assert [c["region"] for c in done["locations"] if c["name"] == "volume-snapshots"] == [PRIMARY, REPLICA]
    assert done["rule_ok"] and done["off_region_regions"] == [REPLICA]
