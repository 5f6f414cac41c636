"""Replication's Chalice handlers (chalice.test.Client), its CLI commands, deployment config and a replica restore."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from chalice.test import Client

from chalicelib import services as services_module
from chalicelib.cli.main import main
from chalicelib.core.models import ReplicaState
from chalicelib.replication import BatchFailed, parse_message
from tests.support.replication import (
    CLUSTER,
    PREFIX,
    PRIMARY_BUCKET,
    REGION,
    REPLICA_BUCKET,
    REPLICA_REGION,
    ReplicationEnv,
    make_env,
    objects,
    write_backup,
)

ROOT = Path(__file__).resolve().parents[2]
FULL = "20260101T000000Z-aaaaaa"


@pytest.fixture
def env(aws: None, table: str) -> ReplicationEnv:
    return make_env()


@pytest.fixture
def app_client(env: ReplicationEnv) -> Iterator[Any]:
    import app as app_module

    services_module.set_services(env.services)
    try:
        with Client(app_module.app) as client:
            yield client
    finally:
        services_module.set_services(None)


def _emf(capsys: Any) -> list[dict[str, Any]]:
    """The EMF documents the handlers printed (the Lambda runtime ships stdout to CloudWatch)."""
    docs = [json.loads(line) for line in capsys.readouterr().out.splitlines() if line.startswith('{"_aws"')]
    assert all(d["_aws"]["CloudWatchMetrics"][0]["Dimensions"] == [["service"]] for d in docs)  # what alarms match
    return docs


def _state(env: ReplicationEnv, backup_id: str) -> str | None:
    return env.services.catalog().get(CLUSTER, backup_id).replicas.get(REPLICA_REGION, {}).get("state")


# -- handlers -----------------------------------------------------------------------------------------------------


def test_replicator_handler_takes_s3_notifications_from_sqs(env: ReplicationEnv, app_client: Any, capsys: Any) -> None:
    write_backup(env, FULL, objects())
    bodies = env.drain()
    bodies.insert(0, json.dumps({"Service": "Amazon S3", "Event": "s3:TestEvent", "Bucket": PRIMARY_BUCKET}))
    bodies.append("not an S3 event")  # dropped, not redelivered forever

    for start in range(0, len(bodies), 10):
        event = app_client.events.generate_sqs_event(
            message_bodies=bodies[start : start + 10], queue_name="lifeboat-replication"
        )
        app_client.lambda_.invoke("replicator", event)

    assert env.stored(replica=True) == env.stored()
    assert _state(env, FULL) == ReplicaState.REPLICATED
    (first,) = [d for d in _emf(capsys) if "ReplicationCopies" in d]
    assert first["cluster"] == CLUSTER and first["region"] == REPLICA_REGION and first["ReplicationLag"][0] >= 0

    manifest = [b for b in bodies if "manifest.json" in b]
    app_client.lambda_.invoke("replicator", app_client.events.generate_sqs_event(message_bodies=manifest))
    (again,) = [d for d in _emf(capsys) if "ReplicationCopies" in d]
    assert "ReplicationLag" not in again and again["ReplicationCopies"] == [0]  # a duplicate does not re-measure


def test_replicator_handler_fails_the_batch_when_an_object_cannot_be_replicated(
    env: ReplicationEnv, app_client: Any, capsys: Any
) -> None:
    write_backup(env, FULL, objects(namespaces=1, per_namespace=5))
    bodies = env.drain()
    pack = next(k for k in env.stored() if k.startswith("packs/"))
    env.s3.put_object(Bucket=PRIMARY_BUCKET, Key=PREFIX + pack, Body=b"damaged")

    event = app_client.events.generate_sqs_event(message_bodies=bodies, queue_name="lifeboat-replication")
    with pytest.raises(BatchFailed):
        app_client.lambda_.invoke("replicator", event)
    assert _state(env, FULL) == ReplicaState.FAILED
    failures = [d for d in _emf(capsys) if "ReplicationFailures" in d]
    assert {d["key"].split("/")[0] for d in failures} == {"packs", "index", "clusters"}


def test_reconciler_handler_reports_the_backlog(env: ReplicationEnv, app_client: Any, capsys: Any) -> None:
    write_backup(env, FULL, objects(namespaces=1, per_namespace=5))
    env.drain()  # the events are lost

    event = app_client.events.generate_cw_event("aws.events", "Scheduled Event", {}, [])
    payload = app_client.lambda_.invoke("replication_reconciler", event).payload

    # Just written: the reconciler leaves it to its events for a few minutes, but counts it.
    assert payload["backlog"] == 1 and payload["deferred"] == 1 and payload["replicated"] == []
    (backlog,) = [d for d in _emf(capsys) if "ReplicationBacklog" in d]
    assert backlog["ReplicationBacklog"] == [1] and backlog["ReplicationBacklogAge"][0] >= 0


# -- CLI ----------------------------------------------------------------------------------------------------------


def _cli(capsys: Any, *args: str) -> tuple[int, Any]:
    common = [
        "--table",
        "lifeboat-test",
        "--bucket",
        PRIMARY_BUCKET,
        "--region",
        REGION,
        "--replica-bucket",
        REPLICA_BUCKET,
        "--replica-region",
        REPLICA_REGION,
        "--output",
        "json",
    ]
    code = main(["replication", *args, *common])
    out = capsys.readouterr().out
    return code, json.loads(out) if out.strip() else None


def test_cli_reconcile_then_status_shows_lag_and_no_backlog(env: ReplicationEnv, capsys: Any) -> None:
    write_backup(env, FULL, objects(namespaces=1, per_namespace=5))
    write_backup(env, "20260102T000000Z-bbbbbb", objects(namespaces=1, per_namespace=6), parent=FULL)
    env.drain()

    code, before = _cli(capsys, "status")
    assert code == 0
    assert [(r["cluster"], r["region"], r["backups"], r["backlog"], r["not_started"]) for r in before] == [
        (CLUSTER, REPLICA_REGION, 2, 2, 2)
    ]
    code, report = _cli(capsys, "reconcile")
    assert code == 0 and sorted(report["replicated"]) == [f"{CLUSTER}/{FULL}", f"{CLUSTER}/20260102T000000Z-bbbbbb"]
    code, (after,) = _cli(capsys, "status", "--cluster", CLUSTER)
    assert (after["replicated"], after["backlog"], after["oldest_backlog_age_s"]) == (2, 0, None)
    assert after["last_replicated"] == "20260102T000000Z-bbbbbb" and after["max_lag_s"] >= after["last_lag_s"] >= 0


def test_cli_copies_flags_policies_without_an_off_region_copy(env: ReplicationEnv, capsys: Any) -> None:
    write_backup(env, FULL, objects(namespaces=1, per_namespace=5), policy="nightly")
    write_backup(
        env,
        "20260101T010000Z-cccccc",
        objects(namespaces=1, per_namespace=3),
        policy="hourly",
        volume_snapshots=[{"type": "ebs", "snapshot_id": "snap-1"}],
    )
    nightly_events = [b for b in env.drain() if "cccccc" not in b]
    env.services.replicator().handle([e for body in nightly_events for e in parse_message(body)])

    code, rows = _cli(capsys, "copies", "--cluster", CLUSTER)

    by_policy = {r["policy"]: r for r in rows}
    assert code == 3  # finished, but a policy breaks the rule
    assert by_policy["nightly"]["rule_ok"] and by_policy["nightly"]["off_region_regions"] == [REPLICA_REGION]
    assert not by_policy["hourly"]["rule_ok"] and by_policy["hourly"]["copies"] == 3
    assert by_policy["hourly"]["kinds_of_storage"] == ["ebs-snapshot", "kubernetes", "s3"]
    assert by_policy["hourly"]["problems"] == ["no copy outside the primary region"]


def test_cli_without_a_replica_says_so(env: ReplicationEnv, capsys: Any) -> None:
    code = main(
        [
            "replication",
            "reconcile",
            "--table",
            "lifeboat-test",
            "--bucket",
            PRIMARY_BUCKET,
            "--replica-bucket",
            "",
            "--replica-region",
            "",
        ]
    )
    assert code == 1 and "LIFEBOAT_REPLICA_BUCKET" in capsys.readouterr().err


# -- deployment ---------------------------------------------------------------------------------------------------


def test_handlers_are_wired_to_the_queue_and_schedule_the_template_and_config_declare() -> None:
    import app as app_module

    sources = {s.name: s for s in app_module.app.event_sources}
    assert (sources["replicator"].queue, sources["replicator"].batch_size) == ("lifeboat-replication", 10)
    rate = sources["replication_reconciler"].schedule_expression
    assert (rate.value, rate.unit) == (15, "MINUTES")

    config = json.loads((ROOT / ".chalice" / "config.json").read_text())
    functions = config["lambda_functions"]
    # 15 minutes each: a large closure may take long; the queue's visibility timeout (5400 s) is 6 times that.
    assert functions["replicator"]["lambda_timeout"] == functions["replication_reconciler"]["lambda_timeout"] == 900
    assert functions["replication_reconciler"]["reserved_concurrency"] == 1  # runs never overlap
    # The replica key and bucket come from the replica stack's outputs, passed to the primary stack by infra/deploy.py.
    from infra import deploy

    assert deploy.environment()["LIFEBOAT_REPLICA_KMS_KEY_ID"] == {"Ref": "ReplicaKeyArn"}
    assert deploy.environment()["LIFEBOAT_REPLICA_BUCKET"] == {"Ref": "ReplicaBucketName"}

    class Loader(yaml.SafeLoader):
        pass

    Loader.add_multi_constructor(
        "!",
        lambda loader, suffix, node: (
            {suffix: loader.construct_scalar(node)} if isinstance(node, yaml.ScalarNode) else None
        ),
    )
    template = yaml.load((ROOT / "infra" / "lifeboat.yaml").read_text(), Loader=Loader)
    resources = template["Resources"]
    assert resources["ReplicationQueue"]["Properties"]["QueueName"] == "lifeboat-replication"
    assert resources["ReplicationQueue"]["Properties"]["VisibilityTimeout"] >= 6 * 900
    alarms = {
        r["Properties"]["MetricName"]: r["Properties"]
        for r in resources.values()
        if r["Type"] == "AWS::CloudWatch::Alarm" and r["Properties"].get("Namespace") == "Lifeboat"
    }
    assert alarms["ReplicationLag"]["Threshold"] == {"Ref": "ReplicationLagThresholdSeconds"}
    assert alarms["ReplicationBacklogAge"]["Threshold"] == {"Ref": "ReplicationLagThresholdSeconds"}
    assert alarms["ReplicationFailures"]["Threshold"] == 0
    assert template["Parameters"]["ReplicationLagThresholdSeconds"]["Default"] == 3600


# -- restore from the replica into a cluster ---------------------------------------------------------------------


def test_restore_from_the_replica_bucket_alone(env: ReplicationEnv, kube_client: Any) -> None:
    from chalicelib.core.restore_options import RestoreOptions
    from chalicelib.repository import RepositoryReader
    from chalicelib.restore import RestoreService, RestoreState

    write_backup(env, FULL, objects(namespaces=2, per_namespace=10))
    env.services.replicator().handle([e for body in env.drain() for e in parse_message(body)])
    for key in env.stored():
        env.s3.delete_object(Bucket=PRIMARY_BUCKET, Key=PREFIX + key)
    env.s3.delete_bucket(Bucket=PRIMARY_BUCKET)
    targets = {f"app-{i}": f"lbrep-{uuid.uuid4().hex[:8]}" for i in range(2)}

    reader = RepositoryReader(env.services.repository(replica=True))
    manifest = reader.load_manifest(CLUSTER, FULL)
    try:
        result = RestoreService(reader, kube_client).run(manifest, RestoreOptions(namespace_mapping=targets))
        assert result.state == RestoreState.COMPLETED, result.message
        from chalicelib.core.resources import Resource

        configmaps = Resource("", "v1", "ConfigMap", "configmaps", True, frozenset({"get"}))
        restored = kube_client.get_object(configmaps, "config-007", targets["app-1"])
        expected = next(
            o
            for o in objects(namespaces=2, per_namespace=10)
            if o["metadata"].get("namespace") == "app-1" and o["metadata"]["name"] == "config-007"
        )
        assert restored["data"] == expected["data"]
    finally:
        for namespace in targets.values():
            kube_client.delete_namespace(namespace)


def test_cli_restore_reads_the_replica_region_when_the_primary_is_gone(
    env: ReplicationEnv, kube_client: Any, kubeconfig_path: Path, capsys: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    write_backup(env, FULL, objects(namespaces=1, per_namespace=4))
    env.services.replicator().handle([e for body in env.drain() for e in parse_message(body)])
    for key in env.stored():
        env.s3.delete_object(Bucket=PRIMARY_BUCKET, Key=PREFIX + key)
    env.s3.delete_bucket(Bucket=PRIMARY_BUCKET)
    monkeypatch.delenv("LIFEBOAT_TABLE", raising=False)  # the primary region's table is gone too
    target = f"lbrep-{uuid.uuid4().hex[:8]}"
    capsys.readouterr()

    try:
        code = main(
            [
                "restore",
                FULL,
                "--bucket",
                REPLICA_BUCKET,
                "--region",
                REPLICA_REGION,
                "--kubeconfig",
                str(kubeconfig_path),
                "--namespace-mapping",
                f"app-0:{target}",
                "--output",
                "json",
            ]
        )
        result = json.loads(capsys.readouterr().out)
        from chalicelib.core.resources import Resource

        configmaps = Resource("", "v1", "ConfigMap", "configmaps", True, frozenset({"get"}))
        restored = kube_client.get_object(configmaps, "config-003", target)
    finally:
        kube_client.delete_namespace(target)
    assert code == 0, result
    assert result["state"] == "Completed" and result["backup_id"] == FULL
    assert restored is not None and restored["data"] == objects(namespaces=1, per_namespace=4)[4]["data"]
