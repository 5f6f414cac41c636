"""lifeboat status: the age of each cluster's newest verified etcd snapshot against its policies' RPO target."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from chalicelib.catalog.etcd_verifications import EtcdVerificationCatalog, EtcdVerificationRecord
from chalicelib.scheduling.etcd_status import EtcdStatusService
from tests.integration.test_dispatcher import Env
from tests.support.clocks import Clock, utc

ETCD = {"endpoints": ["https://10.0.0.1:2379"], "secret_id": "s"}
SELF_MANAGED = {"type": "kubeconfig_secret", "secret_id": "k"}


def stamp(when: datetime) -> str:
    return when.strftime("%Y-%m-%dT%H:%M:%SZ")


def verification(backup_id: str, taken: datetime, *, ok: bool = True) -> EtcdVerificationRecord:
    return EtcdVerificationRecord("onprem", backup_id, ok, stamp(taken + timedelta(minutes=5)), stamp(taken))


def setup(dynamodb: Any, table: str, clock: Clock) -> tuple[Env, EtcdVerificationCatalog]:
    import boto3

    env = Env(dynamodb, table, boto3.client("sqs", region_name="us-east-1"), clock)
    env.clusters.register("onprem", SELF_MANAGED, kubernetes_version=None, now=clock(), etcd=ETCD)
    scope = {"include_namespaces": ["*"]}
    env.service.apply_document(
        {
            "policies": [
                {
                    "name": "cp",
                    "cluster": "onprem",
                    "schedule": "*/15 * * * *",
                    "scope": scope,
                    "etcd": True,
                    "rpo_target_minutes": 60,
                },
                {
                    "name": "cp-daily",
                    "cluster": "onprem",
                    "schedule": "0 1 * * *",
                    "scope": scope,
                    "etcd": True,
                    "rpo_target_minutes": 1440,
                },
                {"name": "objects", "cluster": "onprem", "schedule": "0 * * * *", "scope": scope},
            ]
        }
    )
    return env, EtcdVerificationCatalog(env.client, table)


def test_age_of_the_newest_verified_snapshot_against_the_tightest_target(dynamodb: Any, table: str) -> None:
    clock = Clock(utc(2026, 1, 10, 12, 0))
    env, verifications = setup(dynamodb, table, clock)
    service = EtcdStatusService(env.policies, verifications, clock=clock)
    [never] = service.statuses()
    assert (never.cluster, never.policies, never.age_minutes, never.rpo_target_minutes) == (
        "onprem",
        ("cp", "cp-daily"),
        None,
        60,
    )
    assert never.rpo_exceeded

    verifications.record(verification("20260110T113000Z-aaaaaa", utc(2026, 1, 10, 11, 30)))
    verifications.record(verification("20260110T115000Z-bbbbbb", utc(2026, 1, 10, 11, 50), ok=False))
    [fresh] = service.statuses()
    assert fresh.backup_id == "20260110T113000Z-aaaaaa" and fresh.age_minutes == 30 and not fresh.rpo_exceeded
    clock.advance(hours=1)
    [stale] = service.statuses()
    assert stale.age_minutes == 90 and stale.rpo_exceeded


def test_lifeboat_status_shows_it(dynamodb: Any, table: str, bucket: str, capsys: Any) -> None:
    from tests.integration.test_cli import AWS, run

    now = datetime.now(UTC)
    _, verifications = setup(dynamodb, table, Clock(now - timedelta(hours=2)))
    verifications.record(verification("20260110T113000Z-aaaaaa", now - timedelta(minutes=10)))
    _, docs = run(capsys, "status", "--output", "json", *AWS)
    by_name = {d["name"]: d for d in docs}
    assert by_name["cp"]["etcd"]["backup_id"] == "20260110T113000Z-aaaaaa"
    assert 9 <= by_name["cp"]["etcd"]["age_minutes"] <= 11 and not by_name["cp"]["etcd"]["rpo_exceeded"]
    assert "etcd" not in by_name["objects"]
    code, text = run(capsys, "status", *AWS)
    assert "etcd snapshots" in text and "20260110T113000Z-aaaaaa" in text
