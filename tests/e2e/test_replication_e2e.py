"""Replication end to end over real HTTP: moto's server sends real S3 -> SQS notifications (URL-encoded keys, a
test event first), the Chalice handler consumes them, and the replica alone restores after the primary is gone."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
from chalice.test import Client

from chalicelib import services as services_module
from chalicelib.repository import RepositoryReader, check_repository
from tests.support.replication import (
    PREFIX,
    PRIMARY_BUCKET,
    REPLICA_REGION,
    ReplicationEnv,
    make_env,
    objects,
    write_backup,
)

CLUSTER = "prod:eu+1"  # characters S3 notifications encode
FULL, INCR = "20260101T000000Z-aaaaaa", "20260102T000000Z-bbbbbb"


@pytest.fixture
def moto_server(monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    from moto.server import ThreadedMotoServer

    from sandbox.environment import FAKE_CREDENTIALS
    from tests.support.ports import free_port

    for key, value in FAKE_CREDENTIALS.items():
        monkeypatch.setenv(key, value)
    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.stop()


@pytest.fixture
def env(moto_server: str) -> Iterator[ReplicationEnv]:
    import boto3

    from chalicelib.catalog.schema import create_table

    create_table(boto3.client("dynamodb", region_name="us-east-1", endpoint_url=moto_server), "lifeboat-test")
    env = make_env(moto_server, drain_test_event=False)
    services_module.set_services(env.services)
    try:
        yield env
    finally:
        services_module.set_services(None)


def deliver(client: Any, bodies: list[str]) -> None:
    for start in range(0, len(bodies), 10):
        event = client.events.generate_sqs_event(
            message_bodies=bodies[start : start + 10], queue_name="lifeboat-replication"
        )
        client.lambda_.invoke("replicator", event)


def test_full_and_incremental_backups_replicate_through_notifications_and_restore_from_the_replica(
    env: ReplicationEnv,
) -> None:
    import app as app_module

    full, incr = objects(), objects(changed=["app-1/config-000", "app-1/config-001"])
    write_backup(env, FULL, full, cluster=CLUSTER)
    first = env.drain()
    assert json.loads(first[0])["Event"] == "s3:TestEvent"
    manifest_event = next(b for b in first if "manifest.json" in b)
    assert "prod%3Aeu%2B1" in manifest_event  # the key as S3 sends it

    with Client(app_module.app) as client:
        deliver(client, first)
        assert env.stored(replica=True) == env.stored()
        env.copies.clear()
        write_backup(env, INCR, incr, cluster=CLUSTER, parent=FULL)
        second = env.drain()
        deliver(client, list(reversed(second)))  # manifest first

    assert sorted(k.split("/")[0] for k in env.copies) == ["clusters", "index", "packs"]
    records = {b: env.services.catalog().get(CLUSTER, b).replicas[REPLICA_REGION]["state"] for b in (FULL, INCR)}
    assert records == {FULL: "Replicated", INCR: "Replicated"}

    for key in env.stored():
        env.s3.delete_object(Bucket=PRIMARY_BUCKET, Key=PREFIX + key)
    env.s3.delete_bucket(Bucket=PRIMARY_BUCKET)
    reader = RepositoryReader(env.services.repository(replica=True))
    assert reader.list_backups() == [(CLUSTER, FULL), (CLUSTER, INCR)]
    assert check_repository(reader, read_data=True).ok
    manifest = reader.load_manifest(CLUSTER, INCR)
    entries = [e for _, e in reader.walk(manifest)]
    blobs = dict(reader.read_blobs({e.blob for e in entries}))
    assert len(entries) == len(incr) and set(blobs) == {e.blob for e in entries}
