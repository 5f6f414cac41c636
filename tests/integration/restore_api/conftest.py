"""Fixtures of the restore and backup routes' tests: moto with two registered clusters, a client and four backups."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest
from chalice.test import Client

from chalicelib import services as services_module
from chalicelib.catalog import BackupCatalog
from chalicelib.core.models import BackupState
from chalicelib.services import Services
from chalicelib.settings import Settings
from tests.conftest import TEST_BUCKET, TEST_REGION, TEST_TABLE
from tests.support.api import add_client, register_clusters
from tests.support.restore_api import CLIENT_ID, CLUSTER, GRANT, OLD_SECRET, SECRET, T0, TARGET


@pytest.fixture
def env(aws: None, table: str) -> Iterator[dict[str, Any]]:
    import boto3

    secrets = boto3.client("secretsmanager", region_name=TEST_REGION)
    sqs = boto3.client("sqs", region_name=TEST_REGION)
    queue_url = sqs.create_queue(QueueName="lifeboat-restore-jobs")["QueueUrl"]
    dynamodb = boto3.client("dynamodb", region_name=TEST_REGION)
    register_clusters(dynamodb, table, CLUSTER, TARGET, "other")
    # Rotated a minute ago: the old key is AWSPREVIOUS and still inside its grace period.
    add_client(dynamodb, secrets, table, CLIENT_ID, GRANT, OLD_SECRET, SECRET)
    catalog = BackupCatalog(dynamodb, table)
    backups = {}
    for i, state in enumerate([BackupState.COMPLETED, BackupState.COMPLETED, BackupState.FAILED, BackupState.RUNNING]):
        backup_id = f"20261122T10{i:02d}00Z-00000{i}"
        catalog.claim_job(f"job-{i}", CLUSTER, backup_id, policy="nightly", now=T0 + timedelta(minutes=i))
        if state != BackupState.PENDING:
            catalog.transition(CLUSTER, backup_id, BackupState.RUNNING, now=T0 + timedelta(minutes=i))
        if state in (BackupState.COMPLETED, BackupState.FAILED):
            catalog.transition(CLUSTER, backup_id, state, now=T0 + timedelta(minutes=i, seconds=30))
        backups[state.value + str(i)] = backup_id
    settings = Settings(
        table=TEST_TABLE,
        bucket=TEST_BUCKET,
        region=TEST_REGION,
        restore_queue_url=queue_url,
    )
    services_module.set_services(Services(settings))
    try:
        yield {
            "sqs": sqs,
            "queue_url": queue_url,
            "dynamodb": dynamodb,
            "secrets": secrets,
            "backups": backups,
            "catalog": catalog,
        }
    finally:
        services_module.set_services(None)


@pytest.fixture
def client(env: dict[str, Any]) -> Iterator[Client]:
    import app as app_module

    with Client(app_module.app) as c:
        yield c
