"""Etcd-only backups (a policy's separate etcd schedule) against a real etcd and moto: kind etcd, an empty root tree,
never the parent of a resource backup, refused by a restore, and a failed snapshot commits nothing."""

from __future__ import annotations

import uuid
from typing import Any

import pytest

from chalicelib.core.etcd import EtcdTarget
from chalicelib.core.jobs import BackupJob, ClusterRef
from chalicelib.core.manifest import KIND_ETCD
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
SECRET = "lifeboat/etcd-only-test"
# No Kubernetes API answers here: an etcd-only backup must not need one (the control plane may be what broke).
NOWHERE = {"type": "kubeconfig", "kubeconfig": "apiVersion: v1\nkind: Config\nclusters: []\ncontexts: []\nusers: []\n"}


@pytest.fixture
def services(bucket: str, table: str, etcd_member: EtcdProcess) -> Services:
    import boto3

    certs = etcd_member.certs
    value = secret_value(certs.ca.read_bytes(), certs.client_cert.read_bytes(), certs.client_key.read_bytes())
    boto3.client("secretsmanager", region_name=TEST_REGION).create_secret(Name=SECRET, SecretString=value)
    return Services(Settings(table=TEST_TABLE, bucket=TEST_BUCKET, region=TEST_REGION))


def etcd_job(endpoint: str, *, auth: dict[str, Any] | None = None) -> BackupJob:
    target = EtcdTarget((endpoint,), SECRET)
    ref = ClusterRef("selfmanaged", auth or NOWHERE, etcd=target)
    return BackupJob(job_id=f"etcd:cp:{uuid.uuid4().hex}", cluster=ref, policy="cp", etcd_only=True)


def resource_job(kubeconfig_path: Any, namespace: str) -> BackupJob:
    auth = {"type": "kubeconfig", "kubeconfig": kubeconfig_path.read_text()}
    scope = BackupScope(include_namespaces=(namespace,))
    return BackupJob(job_id=f"t-{uuid.uuid4()}", cluster=ClusterRef("selfmanaged", auth), scope=scope, policy="cp")


def s3_puts(services: Services) -> list[str]:
    calls: list[str] = []

    def note(model: Any, params: Any, **_: Any) -> None:
        if model.name in ("PutObject", "CreateMultipartUpload"):
            calls.append(params["Key"])

    services.client("s3").meta.events.register("before-parameter-build.s3.*", note)
    return calls


def test_an_etcd_only_backup_holds_the_snapshot_and_no_resources(services: Services, etcd_member: EtcdProcess) -> None:
    from chalicelib.replication.closure import backup_closure
    from chalicelib.repository import RepositoryReader

    record = services.backup_service().run(etcd_job(etcd_member.client_url)).record
    assert record.state == "Completed", (record.failure, record.errors)
    assert record.etcd_only and record.counts["objects"] == 0
    reader = RepositoryReader(services.repository())
    manifest = reader.load_manifest(record.cluster, record.backup_id)
    assert manifest.kind == KIND_ETCD and manifest.etcd_only and manifest.scope == {}
    assert list(reader.walk(manifest)) == []  # an empty root tree, readable like any
    assert manifest.etcd_snapshot is not None and manifest.etcd_snapshot["revision"] > 0
    key = f"clusters/selfmanaged/backups/{record.backup_id}/etcd.db"
    closure = backup_closure(reader, manifest, services.store().list(key.rsplit("/", 1)[0] + "/"))
    assert closure.artifacts == ((key, manifest.etcd_snapshot["sha256"]),)

    # The empty root tree is stored once: the next etcd-only backup writes its snapshot and its manifest only.
    puts = s3_puts(services)
    second = services.backup_service().run(etcd_job(etcd_member.client_url)).record
    assert second.state == "Completed", second.failure
    assert sorted(k.rsplit("/", 1)[-1] for k in puts) == ["etcd.db", "manifest.json"], puts


def test_an_etcd_only_backup_is_not_the_parent_of_the_next_resource_backup(
    services: Services, etcd_member: EtcdProcess, kubeconfig_path: Any, test_namespace: str, kube_client: Any
) -> None:
    for name in ("a", "b", "c"):
        kube_client.request(
            "POST",
            f"/api/v1/namespaces/{test_namespace}/configmaps",
            body={"metadata": {"name": name}, "data": {"k": name}},
        )
    svc = services.backup_service()
    first = svc.run(resource_job(kubeconfig_path, test_namespace)).record
    assert first.state == "Completed"
    between = svc.run(etcd_job(etcd_member.client_url)).record
    assert between.etcd_only and between.parent == first.backup_id
    after = svc.run(resource_job(kubeconfig_path, test_namespace)).record
    assert after.parent == first.backup_id  # not the etcd-only backup, which holds no objects to reuse
    assert after.stats["objects_reused"] == after.counts["objects"] > 0


def test_a_restore_of_an_etcd_only_backup_says_there_is_nothing_to_restore(
    services: Services, etcd_member: EtcdProcess, kubeconfig_path: Any
) -> None:
    from chalicelib.core.restore_options import RestoreOptions
    from chalicelib.kube import KubeClient
    from chalicelib.repository import RepositoryReader
    from chalicelib.restore import RestoreService
    from chalicelib.restore.errors import NothingToRestore

    record = services.backup_service().run(etcd_job(etcd_member.client_url)).record
    reader = RepositoryReader(services.repository())
    manifest = reader.load_manifest(record.cluster, record.backup_id)
    engine = RestoreService(reader, KubeClient.from_kubeconfig(kubeconfig_path.read_text()))
    with pytest.raises(
        NothingToRestore, match=f"{record.backup_id} is an etcd-only backup.*lifeboat etcd restore-plan"
    ):
        engine.plan(manifest, RestoreOptions.from_dict({"restore_id": "r-etcd-only"}))


def test_an_etcd_only_backup_whose_snapshot_fails_commits_nothing(services: Services) -> None:
    record = services.backup_service().run(etcd_job(f"https://127.0.0.1:{free_port()}")).record
    assert record.state == "Failed" and "etcd snapshot failed" in (record.failure or "")
    assert not services.store().exists(f"clusters/selfmanaged/backups/{record.backup_id}/manifest.json")
