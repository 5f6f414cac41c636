"""Replication benchmark: a 10,000-object backup, then a 1 % incremental one, replicated from S3 -> SQS events.

moto's server (its own process) sends the real notifications; the replicator takes them in batches of 10, one
fresh replicator per batch as one Lambda invocation would. Then the primary bucket is deleted and the replica alone
is checked (every blob re-hashed) and restored into the Kubernetes API test server.

Prints a table and, last, one JSON line:
  copy_requests_full          CopyObject requests to replicate the full backup (= objects it wrote)
  copy_requests_incremental   CopyObject requests for the incremental one (target: its new packs + index + manifest)
  incremental_expected        the objects the incremental backup wrote (new packs, its index file, its manifest)
  replica_restore_ok          the replica alone passes check and restores every object (true)
"""

from __future__ import annotations

import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import orjson  # noqa: E402

from bench.harness import servers  # noqa: E402

CLUSTER = "bench"
PREFIX = "lifeboat/v1/"
BATCH = 10
PLURALS = {"Namespace": "namespaces", "ConfigMap": "configmaps", "Secret": "secrets", "Deployment": "deployments"}


def provision(endpoint: str) -> Any:
    """Services for the sandbox buckets and table, a replica-region KMS key, and S3 -> SQS on the primary."""
    import boto3

    from chalicelib.services import Services
    from chalicelib.settings import Settings
    from sandbox.environment import BUCKET, REGION, REPLICA_BUCKET, REPLICA_REGION, TABLE

    key = boto3.client("kms", region_name=REPLICA_REGION, endpoint_url=endpoint).create_key()["KeyMetadata"]["Arn"]
    settings = Settings(
        table=TABLE,
        bucket=BUCKET,
        region=REGION,
        replica_bucket=REPLICA_BUCKET,
        replica_region=REPLICA_REGION,
        replica_kms_key_id=key,
        endpoint_url=endpoint,
    )
    services = Services(settings)
    sqs = services.client("sqs")
    url = sqs.create_queue(QueueName="lifeboat-replication")["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    services.client("s3").put_bucket_notification_configuration(
        Bucket=BUCKET,
        NotificationConfiguration={"QueueConfigurations": [{"QueueArn": arn, "Events": ["s3:ObjectCreated:*"]}]},
    )
    return services, url


def drain(services: Any, url: str) -> list[str]:
    sqs = services.client("sqs")
    bodies: list[str] = []
    while True:
        messages = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10).get("Messages", [])
        if not messages:
            return bodies
        for message in messages:
            bodies.append(message["Body"])
            sqs.delete_message(QueueUrl=url, ReceiptHandle=message["ReceiptHandle"])


def write_backup(services: Any, backup_id: str, objects: list[dict[str, Any]], parent: str | None) -> Any:
    """What the backup worker writes for these objects, by the production write stage (tests/support/builders.py)."""
    from chalicelib.core.resources import Resource
    from tests.support.builders import write_backup as write_backup_in

    def resource(obj: dict[str, Any]) -> Resource:
        group, _, version = obj["apiVersion"].rpartition("/")
        return Resource(group, version, obj["kind"], PLURALS[obj["kind"]], obj["kind"] != "Namespace")

    written = write_backup_in(
        services.repository(create=True),
        [(resource(obj), obj) for obj in objects],
        cluster=CLUSTER,
        backup_id=backup_id,
        policy="nightly",
        parent=parent,
        catalog=services.catalog(),
        clock=lambda: datetime.now(UTC),
    )
    return written.manifest


def replicate(services: Any, bodies: list[str]) -> float:
    from chalicelib.replication.worker import handle_messages

    started = time.perf_counter()
    for start in range(0, len(bodies), BATCH):
        handle_messages(services.replicator(), bodies[start : start + BATCH])
    return time.perf_counter() - started


def replica_restore(services: Any, kubeconfig: Path, manifest: Any, objects: list[dict[str, Any]]) -> dict[str, Any]:
    """With the primary bucket gone: check the replica, compare every blob, restore into the cluster."""
    from chalicelib.core.canonical import canonical_blob
    from chalicelib.core.restore_options import RestoreOptions
    from chalicelib.core.sanitize import sanitize
    from chalicelib.kube import KubeClient
    from chalicelib.repository import RepositoryReader, check_repository
    from chalicelib.restore import RestoreService
    from sandbox.environment import BUCKET

    s3 = services.client("s3")
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=BUCKET):
        for item in page.get("Contents", []):
            s3.delete_object(Bucket=BUCKET, Key=item["Key"])
    s3.delete_bucket(Bucket=BUCKET)

    reader = RepositoryReader(services.repository(replica=True))
    check = check_repository(reader, read_data=True)
    expected = {canonical_blob(sanitize(o, o["kind"], o["apiVersion"]))[0] for o in objects}
    stored = {entry.blob for _, entry in reader.walk(manifest)}
    started = time.perf_counter()
    client = KubeClient.from_kubeconfig(kubeconfig.read_text())
    result = RestoreService(reader, client).run(manifest, RestoreOptions(restore_id="replica-restore"))
    restored = sum(1 for r in result.results if str(r.outcome) == "created")
    return {
        "check_ok": check.ok,
        "blobs_match": stored == expected,
        "restore_state": str(result.state),
        "restored": restored,
        "restore_s": time.perf_counter() - started,
        "ok": check.ok and stored == expected and str(result.state) == "Completed" and restored == len(objects),
    }


def main() -> None:
    import os

    from rich.console import Console

    os.environ.setdefault("POWERTOOLS_METRICS_DISABLED", "true")  # the handlers' EMF lines would bury the result
    from rich.table import Table

    from sandbox.synthetic import mutate_fraction, synthetic_objects

    objects = list(synthetic_objects(namespaces=20, configmaps=4750, secrets=4750, deployments=500))
    changed = {
        (o["kind"], o["metadata"]["namespace"], o["metadata"]["name"]): o for o in mutate_fraction(objects, 0.01)
    }
    edited = [changed.get((o["kind"], o["metadata"].get("namespace"), o["metadata"]["name"]), o) for o in objects]
    copies: list[str] = []
    with servers(Path(tempfile.mkdtemp(prefix="lifeboat-bench-"))) as srv:
        services, url = provision(srv.aws_endpoint)
        services.client("s3", services.settings.replica_region).meta.events.register(
            "provide-client-params.s3.CopyObject", lambda params, **_: copies.append(params["Key"])
        )
        drain(services, url)  # the s3:TestEvent
        write_backup(services, "20260101T000000Z-full00", objects, None)
        full_events = drain(services, url)
        full_s = replicate(services, full_events)
        full_copies, copies[:] = len(copies), []
        incr = write_backup(services, "20260102T000000Z-incr00", edited, "20260101T000000Z-full00")
        incr_events = drain(services, url)
        incr_s = replicate(services, incr_events)
        incr_copies = len(copies)
        states = [
            services.catalog().get(CLUSTER, b).replicas.get(services.settings.replica_region, {})
            for b in ("20260101T000000Z-full00", "20260102T000000Z-incr00")
        ]
        restore = replica_restore(services, srv.kubeconfig, incr, edited)

    result = {
        "objects": len(objects),
        "changed": len(changed),
        "copy_requests_full": full_copies,
        "events_full": len(full_events),
        "copy_requests_incremental": incr_copies,
        "incremental_expected": len(incr_events),
        # Baseline, same run: the objects the incremental backup wrote to the primary (1.0 = nothing extra copied).
        "incremental_copies_vs_objects_written": round(incr_copies / max(1, len(incr_events)), 2),
        "replicate_full_s": round(full_s, 3),
        "replicate_incremental_s": round(incr_s, 3),
        "lag_s": [s.get("lag_s") for s in states],
        "replicated": all(s.get("state") == "Replicated" for s in states),
        "replica_check_ok": restore["check_ok"],
        "replica_restore_s": round(restore["restore_s"], 3),
        "replica_restore_ok": restore["ok"],
    }
    table = Table(title="Replication benchmark (10,000 objects, then 1 % changed)")
    table.add_column("measure")
    table.add_column("value", justify="right")
    for key, value in result.items():
        table.add_row(key.replace("_", " "), str(value))
    Console(stderr=True).print(table)
    print(orjson.dumps(result).decode())


if __name__ == "__main__":
    main()
