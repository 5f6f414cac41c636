"""Backups whose job names the cluster's etcd: the snapshot beside the manifest, in the closure replication copies."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

import pytest

from chalicelib.core.etcd import EtcdTarget
from chalicelib.core.jobs import BackupJob, ClusterRef
from chalicelib.core.scope import BackupScope
from chalicelib.etcd.credentials import secret_value
from chalicelib.services import Services
from chalicelib.settings import Settings
from tests.conftest import TEST_BUCKET, TEST_REGION, TEST_TABLE
from tests.support import etcd as etcd_helpers
from tests.support.etcd import EtcdProcess, free_port

pytestmark = pytest.mark.etcd
etcd_certs = etcd_helpers.etcd_certs
etcd_member = etcd_helpers.etcd_member
SECRET = "lifeboat/etcd-test"


@pytest.fixture
def services(bucket: str, table: str, etcd_member: EtcdProcess) -> Services:
    import boto3

    certs = etcd_member.certs
    value = secret_value(certs.ca.read_bytes(), certs.client_cert.read_bytes(), certs.client_key.read_bytes())
    boto3.client("secretsmanager", region_name=TEST_REGION).create_secret(Name=SECRET, SecretString=value)
    return Services(Settings(table=TEST_TABLE, bucket=TEST_BUCKET, region=TEST_REGION))


def job(kubeconfig_path: Any, namespace: str, endpoints: list[str], *, job_id: str | None = None) -> BackupJob:
    auth = {"type": "kubeconfig", "kubeconfig": kubeconfig_path.read_text()}
    etcd = EtcdTarget(tuple(endpoints), SECRET)
    return BackupJob(
        job_id=job_id or f"t-{uuid.uuid4()}",
        cluster=ClusterRef("selfmanaged", auth, etcd=etcd),
        scope=BackupScope(include_namespaces=(namespace,)),
    )


def s3_calls(services: Services) -> list[str]:
    calls: list[str] = []
    services.client("s3").meta.events.register("before-call.s3.*", lambda model, **_: calls.append(model.name))
    return calls


def test_the_snapshot_is_in_the_manifest_and_the_closure(
    services: Services, kubeconfig_path: Any, test_namespace: str, etcd_member: EtcdProcess
) -> None:
    from chalicelib.replication.closure import backup_closure
    from chalicelib.repository import RepositoryReader

    record = services.backup_service().run(job(kubeconfig_path, test_namespace, [etcd_member.client_url])).record
    assert record.state == "Completed", record.errors
    reader = RepositoryReader(services.repository())
    manifest = reader.load_manifest(record.cluster, record.backup_id)
    entry = manifest.etcd_snapshot
    assert entry is not None and entry["key"] == "etcd.db"
    status = etcd_member.client().status()
    assert entry["member"] == status.member_id and entry["version"] == status.version
    assert entry["revision"] > 0 and entry["db_size"] > 1 << 20 and entry["size"] == entry["db_size"] + 32
    key = f"clusters/selfmanaged/backups/{record.backup_id}/etcd.db"
    store = services.store()
    assert store.exists(key)
    closure = backup_closure(reader, manifest, store.list(key.rsplit("/", 1)[0] + "/"))
    assert closure.artifacts == ((key, entry["sha256"]),)


def test_a_redelivered_job_does_not_upload_the_snapshot_again(
    services: Services, kubeconfig_path: Any, test_namespace: str, etcd_member: EtcdProcess
) -> None:
    svc = services.backup_service()
    the_job = job(kubeconfig_path, test_namespace, [etcd_member.client_url], job_id="etcd-redelivered")
    # The first delivery's worker stored the snapshot and died before the commit.
    long_ago = datetime(2026, 1, 1, tzinfo=UTC)
    record, _ = services.catalog().claim_job(
        the_job.job_id, "selfmanaged", "20260101T000000Z-dead01", policy=None, parent=None, now=long_ago
    )
    first = services.etcd_snapshot(the_job.cluster.etcd, "selfmanaged", record.backup_id, services.store())
    calls = s3_calls(services)
    done = svc.run(the_job).record  # the redelivery finds the heartbeat stale and takes over
    assert done.state == "Completed", done.errors
    assert not {"CreateMultipartUpload", "UploadPart"} & set(calls)
    manifest = services.repository().store.get(f"clusters/selfmanaged/backups/{record.backup_id}/manifest.json")
    assert first["sha256"].encode() in manifest


def test_an_unreachable_etcd_is_a_partial_failure_without_an_artifact(
    services: Services, kubeconfig_path: Any, test_namespace: str
) -> None:
    record = services.backup_service().run(job(kubeconfig_path, test_namespace, [f"https://127.0.0.1:{free_port()}"]))
    assert record.record.state == "PartiallyFailed"
    assert [e["resource"] for e in record.record.errors] == ["etcd"]
    assert "EtcdUnavailable" in record.record.errors[0]["error"]
    store = services.store()
    assert not store.exists(f"clusters/selfmanaged/backups/{record.record.backup_id}/etcd.db")


def test_a_sharded_backup_takes_the_snapshot_in_its_commit(
    services: Services, kubeconfig_path: Any, test_namespace: str, etcd_member: EtcdProcess
) -> None:
    from chalicelib.backup.worker import handle_message
    from chalicelib.repository import RepositoryReader
    from tests.support.sharded import ListQueue, drain

    the_job = job(kubeconfig_path, test_namespace, [etcd_member.client_url])
    the_job = BackupJob(the_job.job_id, the_job.cluster, the_job.scope, shard=True)
    queue = ListQueue()
    service = services.backup_service(queue=queue)
    started = handle_message(service, the_job.to_dict())
    assert started["status"] == "Running", started
    drain(service, queue)
    record = services.catalog().get("selfmanaged", started["backup_id"])
    assert record.state == "Completed", record.errors
    manifest = RepositoryReader(services.repository()).load_manifest("selfmanaged", record.backup_id)
    assert manifest.etcd_snapshot is not None and manifest.etcd_snapshot["db_size"] > 0
    assert services.store().exists(f"clusters/selfmanaged/backups/{record.backup_id}/etcd.db")
