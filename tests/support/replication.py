"""A primary and a replica region in moto with S3 -> SQS notifications, and backups written into the primary."""

from __future__ import annotations

import hashlib
import random
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from chalicelib.core.manifest import Manifest
from chalicelib.repository import RepositoryReader
from chalicelib.services import Services
from chalicelib.settings import Settings
from tests.support.builders import write_backup as write_backup_in

REGION = "us-east-1"
REPLICA_REGION = "us-west-2"
PRIMARY_BUCKET = "lifeboat-test-primary"
REPLICA_BUCKET = "lifeboat-test-replica"
QUEUE = "lifeboat-replication"
PREFIX = "lifeboat/v1/"
CLUSTER = "prod-eu"
PACK_TARGET = 16 << 10  # small packs, so a backup of a hundred objects spans several


@dataclass
class ReplicationEnv:
    services: Services
    queue_url: str
    kms_key_arn: str
    copies: list[str] = field(default_factory=list)  # keys of every CopyObject sent to the replica, in order

    @property
    def s3(self) -> Any:
        return self.services.client("s3")

    @property
    def s3_replica(self) -> Any:
        return self.services.client("s3", REPLICA_REGION)

    def drain(self) -> list[str]:
        """Every message on the replication queue (deleted from it), in arrival order."""
        sqs = self.services.client("sqs")
        bodies: list[str] = []
        while True:
            resp = sqs.receive_message(QueueUrl=self.queue_url, MaxNumberOfMessages=10, WaitTimeSeconds=0)
            messages = resp.get("Messages", [])
            if not messages:
                return bodies
            for message in messages:
                bodies.append(message["Body"])
                sqs.delete_message(QueueUrl=self.queue_url, ReceiptHandle=message["ReceiptHandle"])

    def stored(self, *, replica: bool = False) -> dict[str, bytes]:
        """Repository key -> bytes, of the primary or the replica bucket."""
        client, bucket = (self.s3_replica, REPLICA_BUCKET) if replica else (self.s3, PRIMARY_BUCKET)
        out = {}
        for page in client.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=PREFIX):
            for item in page.get("Contents", []):
                body = client.get_object(Bucket=bucket, Key=item["Key"])["Body"].read()
                out[item["Key"][len(PREFIX) :]] = body
        return out

    def replica_reader(self) -> RepositoryReader:
        return RepositoryReader(self.services.repository(replica=True))


def make_env(endpoint_url: str | None = None, *, drain_test_event: bool = True) -> ReplicationEnv:
    """Both buckets, the replica region's KMS key, the services, and S3 -> SQS on the primary; in moto (in process,
    or the server at ``endpoint_url``). The catalog table must exist already."""
    import boto3

    boto3.client("s3", region_name=REGION, endpoint_url=endpoint_url).create_bucket(Bucket=PRIMARY_BUCKET)
    boto3.client("s3", region_name=REPLICA_REGION, endpoint_url=endpoint_url).create_bucket(
        Bucket=REPLICA_BUCKET, CreateBucketConfiguration={"LocationConstraint": REPLICA_REGION}
    )
    kms = boto3.client("kms", region_name=REPLICA_REGION, endpoint_url=endpoint_url)
    key = kms.create_key(Description="replica")["KeyMetadata"]
    settings = Settings(
        table="lifeboat-test",
        bucket=PRIMARY_BUCKET,
        region=REGION,
        replica_bucket=REPLICA_BUCKET,
        replica_region=REPLICA_REGION,
        replica_kms_key_id=key["Arn"],
        endpoint_url=endpoint_url,
    )
    services = Services(settings)
    sqs = services.client("sqs")
    url = sqs.create_queue(QueueName=QUEUE)["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    services.client("s3").put_bucket_notification_configuration(
        Bucket=PRIMARY_BUCKET,
        NotificationConfiguration={
            "QueueConfigurations": [
                {
                    "QueueArn": arn,
                    "Events": ["s3:ObjectCreated:*"],
                    "Filter": {"Key": {"FilterRules": [{"Name": "prefix", "Value": PREFIX}]}},
                }
            ]
        },
    )
    env = ReplicationEnv(services, url, key["Arn"])
    if drain_test_event:
        env.drain()  # S3 sends an s3:TestEvent when a notification is configured
    env.s3_replica.meta.events.register(
        "provide-client-params.s3.CopyObject", lambda params, **_: env.copies.append(params["Key"][len(PREFIX) :])
    )
    return env


def objects(namespaces: int = 3, per_namespace: int = 40, *, seed: int = 0, changed: Iterable[str] = ()) -> list[dict]:
    """Namespaces with ConfigMaps holding random text (so packs fill up); ``changed`` names get new content."""
    rng = random.Random(seed)
    changed = set(changed)
    out: list[dict[str, Any]] = []
    for n in range(namespaces):
        ns = f"app-{n}"
        out.append({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}})
        for i in range(per_namespace):
            name = f"config-{i:03d}"
            payload = rng.randbytes(300).hex()
            if f"{ns}/{name}" in changed:
                payload = hashlib.sha256(payload.encode()).hexdigest() * 4
            out.append(
                {
                    "apiVersion": "v1",
                    "kind": "ConfigMap",
                    "metadata": {"name": name, "namespace": ns, "labels": {"app": "shop"}},
                    "data": {"payload": payload},
                }
            )
    return out


def write_backup(
    env: ReplicationEnv,
    backup_id: str,
    objs: list[dict[str, Any]],
    *,
    cluster: str = CLUSTER,
    parent: str | None = None,
    policy: str = "nightly",
    etcd: bytes | None = None,
    etcd_sha256: str | None = None,
    volume_snapshots: list[dict[str, Any]] | None = None,
) -> Manifest:
    """A committed backup in the primary bucket, written by the production write stage and recorded in the catalog."""
    fields: dict[str, Any] = {"volume_snapshots": volume_snapshots or []}
    upload = None
    if etcd is not None:
        key = f"clusters/{cluster}/backups/{backup_id}/etcd.db"
        fields["etcd_snapshot"] = {
            "key": "etcd.db",
            "sha256": etcd_sha256 or hashlib.sha256(etcd).hexdigest(),
            "size": len(etcd),
        }

        def upload() -> None:
            import boto3  # upload_fileobj is boto3's; the product's clients are plain botocore ones

            settings = env.services.settings
            s3 = boto3.client("s3", region_name=settings.region, endpoint_url=settings.endpoint_url)
            s3.upload_fileobj(_Reader(etcd), PRIMARY_BUCKET, PREFIX + key)

    written = write_backup_in(
        env.services.repository(create=True),
        objs,
        cluster=cluster,
        backup_id=backup_id,
        policy=policy,
        parent=parent,
        catalog=env.services.catalog(),
        clock=lambda: datetime.now(UTC),
        manifest_fields=fields,
        before_manifest=upload,
        pack_target_bytes=PACK_TARGET,
    )
    assert written.manifest is not None
    return written.manifest


class _Reader:
    """A file-like view of bytes, so upload_fileobj uses a real multipart upload for large artifacts."""

    def __init__(self, data: bytes) -> None:
        self._data = memoryview(data)
        self._pos = 0

    def read(self, size: int = -1) -> bytes:
        end = len(self._data) if size < 0 else min(len(self._data), self._pos + size)
        chunk = bytes(self._data[self._pos : end])
        self._pos = end
        return chunk


def message_key(body: str) -> str:
    """The (decoded) repository key an S3 event message names, for ordering tests."""
    from chalicelib.replication.events import parse_message

    (event,) = parse_message(body)
    return event.key[len(PREFIX) :]
