"""Verification kinds beyond resources: the replica region's copy (the primary gone), and the etcd snapshot's test."""

from __future__ import annotations

from typing import Any

import pytest

from chalicelib.catalog.etcd_verifications import EtcdVerificationRecord
from chalicelib.core.policies import Policy
from chalicelib.replication.worker import handle_messages
from chalicelib.verification.worker import VerificationWorker
from tests.support.replication import PREFIX, PRIMARY_BUCKET, REPLICA_REGION, ReplicationEnv, make_env
from tests.support.verification import apply_policy, back_up, worker


@pytest.fixture
def env(aws: None, table: str) -> ReplicationEnv:
    return make_env()


def _policy(env: ReplicationEnv, namespaces: list[str], kinds: list[str]) -> Policy:
    return apply_policy(env.services, namespaces, {"schedule": "0 4 1 * *", "kinds": kinds})


def _backup(env: ReplicationEnv, kubeconfig_path: Any, policy: Policy) -> Any:
    return back_up(env.services, kubeconfig_path, policy)


def _worker(env: ReplicationEnv, kube_client: Any, **kwargs: Any) -> VerificationWorker:
    return worker(env.services, kube_client, **kwargs)


def test_the_replica_kind_restores_the_replica_regions_copy_with_the_primary_gone(
    env: ReplicationEnv, kubeconfig_path: Any, kube_client: Any, app_ns: Any
) -> None:
    policy = _policy(env, list(app_ns.namespaces), ["replica"])
    backup = _backup(env, kubeconfig_path, policy)
    worker = _worker(env, kube_client, replica_reader=env.replica_reader, replica_region=REPLICA_REGION)

    run, _ = worker.start(policy.name)
    early = worker.handle(run.verification_id)
    assert early is not None and early.state == "Failed"  # not replicated yet: nothing to prove
    assert early.message == f"policy {policy.name!r} has no Completed backup replicated to {REPLICA_REGION} to verify"

    while bodies := env.drain():
        handle_messages(env.services.replicator(), bodies)
    assert (
        env.services.catalog().get("test-cluster", backup.backup_id).replicas[REPLICA_REGION]["state"] == "Replicated"
    )
    s3 = env.s3  # a regional disaster: every primary object gone
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=PRIMARY_BUCKET, Prefix=PREFIX):
        for item in page.get("Contents", []):
            s3.delete_object(Bucket=PRIMARY_BUCKET, Key=item["Key"])

    run, _ = worker.start(policy.name)
    done = worker.handle(run.verification_id)

    assert done is not None and done.state == "Succeeded", done.message or done.problems
    assert done.backup_id == backup.backup_id and done.checked > 20
    assert done.outcomes["replica"].startswith(f"verified: {done.checked} objects restored from the replica region")


class FakeEtcdVerifier:
    def __init__(self, ok: bool) -> None:
        self.ok = ok
        self.asked: list[str] = []

    def verify(self, manifest: Any) -> EtcdVerificationRecord:
        self.asked.append(manifest.backup_id)
        return EtcdVerificationRecord(
            cluster=manifest.cluster,
            backup_id=manifest.backup_id,
            ok=self.ok,
            verified_at="2026-12-01T00:00:00Z",
            snapshot_at="2026-12-01T00:00:00Z",
            keys=3000 if self.ok else 0,
            revision=42,
            error="" if self.ok else "the restored data holds no key",
        )


def test_the_etcd_kind_says_when_the_backup_holds_no_snapshot(
    env: ReplicationEnv, kubeconfig_path: Any, kube_client: Any, app_ns: Any
) -> None:
    policy = _policy(env, list(app_ns.namespaces), ["resources", "etcd", "dumps"])
    _backup(env, kubeconfig_path, policy)
    verifier = FakeEtcdVerifier(ok=True)
    worker = _worker(env, kube_client, etcd_verifier=lambda: verifier)
    run, _ = worker.start(policy.name)

    done = worker.handle(run.verification_id)

    assert done is not None and done.state == "Succeeded"  # resources passed; the rest is said, not passed
    assert (
        done.outcomes["etcd"].startswith("not verified: backup ") and "holds no etcd snapshot" in done.outcomes["etcd"]
    )
    assert done.outcomes["dumps"] == f"not verified: backup {done.backup_id} holds no dumps"
    assert verifier.asked == []
    assert "etcd not verified" in done.message and "dumps not verified" in done.message


@pytest.mark.parametrize("ok", [True, False])
def test_the_etcd_kind_runs_the_snapshots_restore_test(ok: bool) -> None:
    from chalicelib.catalog.verifications import VerificationRecord
    from chalicelib.verification.results import VerificationResult

    class Manifest:
        cluster, backup_id, etcd_snapshot = "dc1", "20261201T000000Z-abcdef", {"key": "etcd.db", "revision": 42}

    class Reader:
        def load_manifest(self, cluster: str, backup_id: str) -> Any:
            return Manifest()

    verifier = FakeEtcdVerifier(ok=ok)
    worker = VerificationWorker(
        verifications=None,  # type: ignore[arg-type]
        backups=None,
        policies=None,
        connect=lambda name: None,
        reader=Reader,
        etcd_verifier=lambda: verifier,
    )
    run = VerificationRecord("v1", "cp", "dc1", "dc1", kinds=["resources", "etcd"])
    result = VerificationResult("v1", Manifest.backup_id, "dc1", "Succeeded", "", "", 12.0, checked=5)

    fields = worker._fields(run, result)

    assert verifier.asked == [Manifest.backup_id]
    if ok:
        assert fields["state"] == "Succeeded" and fields["rto_s"] == 12.0
        assert fields["outcomes"]["etcd"] == "verified: 3000 keys at revision 42 read back from a restore"
    else:
        assert fields["state"] == "Failed" and fields["rto_s"] is None
        assert fields["outcomes"]["etcd"] == "failed: the restored data holds no key"
        assert any(p["key"] == "etcd" and "did not restore" in p["problem"] for p in fields["problems"])
