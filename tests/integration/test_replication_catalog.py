"""Per-region replica state on backup records (DynamoDB under moto): conditional, forward-only, beside the state."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from chalicelib.catalog import BackupCatalog, RecordNotFound, StaleState
from chalicelib.catalog.errors import TableNotFound
from chalicelib.core.models import BackupState, ReplicaState

T0 = datetime(2026, 11, 22, 10, 0, tzinfo=UTC)
WEST, EAST2 = "us-west-2", "us-east-2"


@pytest.fixture
def catalog(dynamodb: Any, table: str) -> BackupCatalog:
    catalog = BackupCatalog(dynamodb, table)
    catalog.claim_job("job-1", "prod", "b1", policy="nightly", now=T0)
    catalog.transition("prod", "b1", BackupState.RUNNING, now=T0)
    catalog.transition("prod", "b1", BackupState.COMPLETED, now=T0, manifest_key="k")
    return catalog


def test_pending_then_replicated_records_lag_and_leaves_the_backup_state_alone(catalog: BackupCatalog) -> None:
    version = catalog.get("prod", "b1")
    pending = catalog.set_replica_state("prod", "b1", WEST, ReplicaState.PENDING, lag_s=None, now=T0)
    done = catalog.set_replica_state("prod", "b1", WEST, ReplicaState.REPLICATED, lag_s=12.34567, now=T0)

    assert pending.replicas[WEST]["state"] == "Pending"
    assert done.replicas[WEST] == {
        "state": "Replicated",
        "lag_s": 12.346,
        "replicated_at": "2026-11-22T10:00:00.000Z",
        "updated_at": "2026-11-22T10:00:00.000Z",
    }
    assert done.state == BackupState.COMPLETED and done.manifest_key == "k"
    assert catalog.get("prod", "b1") == done
    assert catalog.get("prod", "b1") != version  # each write is a new version of the record


def test_replicated_is_final(catalog: BackupCatalog) -> None:
    catalog.set_replica_state("prod", "b1", WEST, ReplicaState.REPLICATED, lag_s=5, now=T0)
    later = T0 + timedelta(hours=1)

    again = catalog.set_replica_state("prod", "b1", WEST, ReplicaState.REPLICATED, lag_s=3600, now=later)
    with pytest.raises(StaleState) as back:
        catalog.set_replica_state("prod", "b1", WEST, ReplicaState.PENDING, lag_s=None, now=later)
    with pytest.raises(StaleState):
        catalog.set_replica_state("prod", "b1", WEST, ReplicaState.FAILED, lag_s=None, now=later, error="x")

    assert again.replicas[WEST]["lag_s"] == 5  # the first measurement stays
    assert "Replicated in us-west-2" in str(back.value)
    assert catalog.get("prod", "b1").replicas[WEST]["state"] == "Replicated"


def test_failed_can_be_retried_and_regions_are_independent(catalog: BackupCatalog) -> None:
    failed = catalog.set_replica_state("prod", "b1", WEST, ReplicaState.FAILED, lag_s=None, now=T0, error="e" * 5000)
    catalog.set_replica_state("prod", "b1", EAST2, ReplicaState.REPLICATED, lag_s=1, now=T0)
    catalog.set_replica_state("prod", "b1", WEST, ReplicaState.PENDING, lag_s=None, now=T0)
    done = catalog.set_replica_state("prod", "b1", WEST, ReplicaState.REPLICATED, lag_s=2, now=T0)

    assert len(failed.replicas[WEST]["error"]) == 1024
    assert "error" not in done.replicas[WEST]
    assert {r: v["state"] for r, v in done.replicas.items()} == {WEST: "Replicated", EAST2: "Replicated"}


def test_a_record_written_before_replica_states_existed_gets_its_map(catalog: BackupCatalog, dynamodb: Any) -> None:
    dynamodb.update_item(
        TableName="lifeboat-test",
        Key={"pk": {"S": "CLUSTER#prod"}, "sk": {"S": "BACKUP#b1"}},
        UpdateExpression="REMOVE replicas",
    )
    assert catalog.get("prod", "b1").replicas == {}

    done = catalog.set_replica_state("prod", "b1", WEST, ReplicaState.REPLICATED, lag_s=1, now=T0)

    assert done.replicas[WEST]["state"] == "Replicated"


def test_transitions_do_not_touch_replica_state(catalog: BackupCatalog) -> None:
    catalog.set_replica_state("prod", "b1", WEST, ReplicaState.REPLICATED, lag_s=1, now=T0)
    expired = catalog.transition("prod", "b1", BackupState.EXPIRED, now=T0, extra={"why": "retention"})
    assert expired.replicas[WEST]["state"] == "Replicated"


def test_unknown_backup_and_missing_table(catalog: BackupCatalog, dynamodb: Any) -> None:
    with pytest.raises(RecordNotFound):
        catalog.set_replica_state("prod", "nope", WEST, ReplicaState.PENDING, lag_s=None, now=T0)
    with pytest.raises(ValueError, match="must not contain"):
        catalog.set_replica_state("prod", "b1", "us#west", ReplicaState.PENDING, lag_s=None, now=T0)
    with pytest.raises(TableNotFound):
        BackupCatalog(dynamodb, "no-table").set_replica_state(
            "prod", "b1", WEST, ReplicaState.PENDING, lag_s=None, now=T0
        )
