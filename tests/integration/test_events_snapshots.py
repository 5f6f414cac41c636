"""Snapshot Copy Completed: one event per EBS copy into the replica region, however many notifications and polls."""

from __future__ import annotations

from typing import Any

import pytest

from tests.conftest import TEST_REGION
from tests.integration.test_events import EventQueue
from tests.integration.test_volume_ebs_backup import (  # noqa: F401 - fixtures of the EBS backup tests
    REPLICA_REGION,
    by_pvc,
    clock,
    ebs_claims,
    ebs_job,
    manifest_of,
    queue,
    services,
    snapshot_event,
)

pytestmark = pytest.mark.fakeonly


def test_each_copy_is_announced_once_by_whichever_settles_it(
    services: Any, kubeconfig_path: Any, test_namespace: str, ebs_claims: Any, queue: Any, clock: Any  # noqa: F811
) -> None:
    bus = EventQueue(services)
    record = services.backup_service(queue=queue, clock=clock).run(ebs_job(kubeconfig_path, test_namespace)).record
    volumes = by_pvc(manifest_of(services, record))
    data_copy, source = volumes["data"]["copies"][0]["snapshot_id"], volumes["data"]["snapshot_handle"]
    event = snapshot_event(
        "copySnapshot", "succeeded", data_copy, REPLICA_REGION, f"arn:aws:ec2::{TEST_REGION}:snapshot/{source}"
    )
    notifications = services.snapshot_events()
    notifications.handle(event)
    notifications.handle(event)  # EventBridge delivers at least once
    assert notifications.poll()["completed"] == 1  # the other claim's copy; the data copy is settled already
    assert notifications.poll()["checked"] == 0

    copies = [e for e in bus.read() if e["detail-type"] == "Snapshot Copy Completed"]
    assert sorted(e["detail"]["pvc"] for e in copies) == ["data", "legacy"]
    data = next(e["detail"] for e in copies if e["detail"]["pvc"] == "data")
    assert data["snapshot_id"] == data_copy and data["source_snapshot_id"] == source
    assert data["region"] == REPLICA_REGION and data["source_region"] == TEST_REGION
    assert data["backup_id"] == record.backup_id and data["schema_version"] == "1"


def test_a_failed_copy_is_announced_as_failed(
    services: Any, kubeconfig_path: Any, test_namespace: str, ebs_claims: Any, queue: Any, clock: Any  # noqa: F811
) -> None:
    bus = EventQueue(services)
    record = services.backup_service(queue=queue, clock=clock).run(ebs_job(kubeconfig_path, test_namespace)).record
    volumes = by_pvc(manifest_of(services, record))
    data_copy, source = volumes["data"]["copies"][0]["snapshot_id"], volumes["data"]["snapshot_handle"]
    event = snapshot_event(
        "copySnapshot",
        "failed",
        data_copy,
        REPLICA_REGION,
        f"arn:aws:ec2::{TEST_REGION}:snapshot/{source}",
        cause="KMS key disabled",
    )
    services.snapshot_events().handle(event)
    failed = [e["detail"] for e in bus.read() if e["detail-type"] == "Snapshot Copy Failed"]
    assert len(failed) == 1 and failed[0]["snapshot_id"] == data_copy and "KMS" in failed[0]["error"]
