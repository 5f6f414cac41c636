"""Each function's role (its row of infra/iam-actions.json) against the AWS actions its flows call on moto.

Every test drives one function's flows through its Chalice handler (or the service the handler calls) inside
``recorder.as_function(<function>)`` and asserts: nothing it called is outside its row, and every action of the row
it did not reach has a reason in the row's ``reason`` (and no reason is left for an action it does reach). The row
cannot silently grow: an action added without a flow that calls it needs a written reason.
"""

from __future__ import annotations

import dataclasses
import json
import re
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from chalice.local import LambdaContext
from chalice.test import Client

from chalicelib import services as services_module
from chalicelib.catalog.verifications import VerificationCatalog
from chalicelib.core.etcd import EtcdTarget
from chalicelib.core.jobs import BackupJob, ClusterRef
from chalicelib.core.policies import Policy
from chalicelib.core.resources import Resource
from chalicelib.core.scope import BackupScope
from chalicelib.core.volume_snapshots import VolumeSettings
from chalicelib.replication import Reconciler
from chalicelib.replication.worker import run_reconciler
from chalicelib.repository import Repository
from chalicelib.restore import checkpointer as checkpointer_module
from chalicelib.services import Services
from chalicelib.settings import Settings
from chalicelib.verification.messages import VerifyMessage
from tests.conftest import TEST_BUCKET, TEST_REGION, TEST_TABLE
from tests.integration.test_volume_ebs_backup import snapshot_event
from tests.support import etcd as etcd_helpers
from tests.support.api import EVERYTHING, add_client, register_test_cluster, signed_headers
from tests.support.builders import backup_id_at, backup_reaching, record_backup
from tests.support.iam_actions import Recorder, check_rows
from tests.support.kube import configmap
from tests.support.objects import configmaps
from tests.support.replication import make_env as replication_env
from tests.support.replication import objects as replication_objects
from tests.support.replication import write_backup as write_replicated
from tests.support.sharded import CM
from tests.support.verification import apply_policy
from tests.support.volumes import claim

ROOT = Path(__file__).resolve().parents[2]
TABLE = json.loads((ROOT / "infra" / "iam-actions.json").read_text())
REPLICA_BUCKET = "lifeboat-test-replica"
REPLICA_REGION = "us-west-2"
QUEUES = {
    "backup-queue": "lifeboat-backup-jobs",
    "restore-queue": "lifeboat-restore-jobs",
    "verification-queue": "lifeboat-verification-jobs",
}
EKS = {"type": "eks", "cluster_name": "prod", "region": "eu-central-1"}
CLIENT_ID = "iam-admin"
SECRET = "iam-secret"


def assert_least_privilege(recorder: Recorder, *functions: str, partial: bool = False) -> None:
    check_rows(recorder, TABLE, functions, partial=partial)


@pytest.fixture
def world(aws: None, bucket: str, table: str) -> Iterator[dict[str, Any]]:
    """The template's queues, an API client allowed everything, services on them, and an app client."""
    import boto3

    sqs = boto3.client("sqs", region_name=TEST_REGION)
    urls = {key: sqs.create_queue(QueueName=name)["QueueUrl"] for key, name in QUEUES.items()}
    dynamodb = boto3.client("dynamodb", region_name=TEST_REGION)
    add_client(dynamodb, boto3.client("secretsmanager", region_name=TEST_REGION), table, CLIENT_ID, EVERYTHING, SECRET)
    boto3.client("s3", region_name=REPLICA_REGION).create_bucket(
        Bucket=REPLICA_BUCKET, CreateBucketConfiguration={"LocationConstraint": REPLICA_REGION}
    )
    replica_key = boto3.client("kms", region_name=REPLICA_REGION).create_key()["KeyMetadata"]["Arn"]
    settings = Settings(
        table=TEST_TABLE,
        bucket=TEST_BUCKET,
        region=TEST_REGION,
        replica_bucket=REPLICA_BUCKET,
        replica_region=REPLICA_REGION,
        replica_kms_key_id=replica_key,
        poll_delay_s=0,
        backup_queue_url=urls["backup-queue"],
        restore_queue_url=urls["restore-queue"],
        verification_queue_url=urls["verification-queue"],
    )
    services = Services(settings)
    services_module.set_services(services)
    import app as app_module

    try:
        with (
            Recorder(
                buckets={TEST_BUCKET: "bucket", REPLICA_BUCKET: "replica"}, queues={u: k for k, u in urls.items()}
            ) as recorder,
            Client(app_module.app) as client,
        ):
            yield {"services": services, "recorder": recorder, "client": client, "urls": urls, "sqs": sqs}
    finally:
        services_module.set_services(None)


def signed(body: bytes, method: str, path: str, content_type: str = "application/json") -> dict[str, str]:
    headers = {"Content-Type": content_type, "Idempotency-Key": uuid.uuid4().hex}
    return signed_headers(CLIENT_ID, SECRET, method, path, body, **headers)


def policy_file(name: str = "nightly", **extra: Any) -> bytes:
    policy = {
        "name": name,
        "cluster": "prod",
        "schedule": {"cron": "0 2 * * *"},
        "scope": {"include_namespaces": ["shop"]},
        "retention": {"keep_last": 1},
        **extra,
    }
    return json.dumps({"policies": [policy]}).encode()


def scheduled(client: Client) -> Any:
    return client.events.generate_cw_event("", "", {}, [])


# -- the API --------------------------------------------------------------------------------------------------------


def test_api_handler(world: dict[str, Any]) -> None:
    services, recorder, client = world["services"], world["recorder"], world["client"]
    for name in ("prod", "dr"):
        auth = {"type": "kubeconfig_secret", "secret_id": f"lifeboat/clusters/{name}"}
        services.cluster_catalog().register(name, auth, kubernetes_version=None, now=datetime.now(UTC))
    backup_id = backup_id_at(datetime(2026, 1, 1, tzinfo=UTC))
    record_backup(services.catalog(), "prod", backup_id, policy=None, started=datetime(2026, 1, 1, tzinfo=UTC))
    with recorder.as_function("api_handler"):
        body = policy_file()
        assert (
            client.http.put("/v1/policies", headers=signed(body, "PUT", "/v1/policies"), body=body).status_code == 200
        )
        assert client.http.get("/v1/policies", headers=signed(b"", "GET", "/v1/policies")).status_code == 200
        path = "/v1/policies/nightly"
        assert client.http.get(path, headers=signed(b"", "GET", path)).status_code == 200
        body = json.dumps({"backup_id": backup_id, "target_cluster": "dr"}).encode()
        created = client.http.post("/v1/restores", headers=signed(body, "POST", "/v1/restores"), body=body)
        assert created.status_code == 202, created.body
        path = created.json_body["status_url"]
        assert client.http.get(path, headers=signed(b"", "GET", path)).status_code == 200
        query = {"cluster": "prod"}
        headers = signed_headers(CLIENT_ID, SECRET, "GET", "/v1/backups", b"", query=query)
        listed = client.http.get("/v1/backups?cluster=prod", headers=headers)
        assert listed.status_code == 200 and listed.json_body["backups"], listed.body
        body = json.dumps({"name": "nightly"}).encode()
        path = "/v1/policies/nightly"
        assert client.http.delete(path, headers=signed(body, "DELETE", path), body=body).status_code == 200
    assert_least_privilege(recorder, "api_handler")


# -- scheduling and monitoring --------------------------------------------------------------------------------------


def test_dispatcher_and_rpo_monitor(world: dict[str, Any]) -> None:
    services, recorder, client = world["services"], world["recorder"], world["client"]
    services.cluster_catalog().register("prod", EKS, kubernetes_version="v1.31.0", now=datetime.now(UTC))
    services.policy_service().apply_document(json.loads(policy_file()))
    verify = {"schedule": {"cron": "0 4 * * *"}, "target_cluster": "prod"}
    services.policy_service().apply_document(json.loads(policy_file("verified", verify=verify)))
    services.policy_service().apply_document(json.loads(policy_file("dropped", verify=verify)))
    with recorder.outside():  # its verification schedule stays behind: the dispatcher removes it
        services.policy_catalog().delete("dropped")
    later = datetime.now(UTC) + timedelta(days=2)
    with recorder.as_function("dispatcher"):
        client.lambda_.invoke("dispatcher", scheduled(client))
        summary = dict(services.dispatcher(clock=lambda: later).dispatch_due().summary())
    assert summary["counts"], summary
    with recorder.as_function("rpo_monitor"):
        assert client.lambda_.invoke("rpo_monitor", scheduled(client)).payload["policies"] == 2
    assert_least_privilege(recorder, "dispatcher", "rpo_monitor")


# -- maintenance ----------------------------------------------------------------------------------------------------


def locked_repository(services: Services, recorder: Recorder) -> Services:
    """Services on a second repository, in an Object Lock bucket (immutability mode), holding a dead backup."""
    locked = "lifeboat-test-locked"
    s3 = services.client("s3")
    s3.create_bucket(Bucket=locked, ObjectLockEnabledForBucket=True)
    rule = {"DefaultRetention": {"Mode": "GOVERNANCE", "Days": 1}}
    s3.put_object_lock_configuration(
        Bucket=locked, ObjectLockConfiguration={"ObjectLockEnabled": "Enabled", "Rule": rule}
    )
    recorder.buckets[locked] = "bucket"  # the same role resource: the repository bucket
    locked_services = Services(dataclasses.replace(services.settings, bucket=locked))
    repo = locked_services.repository(create=True)
    dead = backup_id_at(datetime(2026, 3, 1, tzinfo=UTC))
    backup_reaching(repo, "prod", dead, configmaps("only-dead", 2))
    backup_reaching(repo, "prod", backup_id_at(datetime(2026, 3, 2, tzinfo=UTC)), configmaps("live", 2))
    repo.store.delete(Repository.manifest_key("prod", dead))  # as retention deletes it: a delete marker
    return locked_services


def moto_later(monkeypatch: pytest.MonkeyPatch, by: timedelta) -> datetime:
    """Now plus ``by``, on moto's S3 clock too (it checks Object Lock retention against its own clock)."""
    import moto.s3.models as s3_models

    real = s3_models.utcnow  # type: ignore[attr-defined]
    monkeypatch.setattr(s3_models, "utcnow", lambda: real() + by)
    return datetime.now(UTC) + by


def test_maintenance(world: dict[str, Any], kubeconfig_path: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    services, recorder, client = world["services"], world["recorder"], world["client"]
    services.cluster_catalog().register("prod", EKS, kubernetes_version="v1.31.0", now=datetime.now(UTC))
    register_test_cluster(services, kubeconfig_path.read_text(), "iam")  # its credentials in Secrets Manager
    services.policy_service().apply_document(json.loads(policy_file()))
    repo = services.repository(create=True)
    for i in range(3):
        day = datetime(2026, 1, 1 + i, 2, tzinfo=UTC)
        bid = backup_id_at(day)
        backup_reaching(repo, "prod", bid, configmaps("shared", 2) + configmaps(f"night{i}", 2))
        record_backup(services.catalog(), "prod", bid, policy="nightly", started=day)
    ec2 = services.client("ec2")
    volume = ec2.create_volume(AvailabilityZone=f"{TEST_REGION}a", Size=8)["VolumeId"]
    tags = [
        {"Key": "lifeboat.io/backup-id", "Value": "20251201T000000Z-gone00"},
        {"Key": "lifeboat.io/cluster", "Value": "prod"},
    ]
    orphan = ec2.create_snapshot(VolumeId=volume, TagSpecifications=[{"ResourceType": "snapshot", "Tags": tags}])
    with recorder.as_function("maintenance"):
        assert client.lambda_.invoke("maintenance", scheduled(client)).payload["status"] == "done"
        # A month on: the garbage and the orphan snapshot are older than their safety margins.
        later = datetime.now(UTC) + timedelta(days=30)
        report = services.maintenance_service(safety_margin=timedelta(0), clock=lambda: later).run()
    assert report.to_dict()["status"] == "done", report.to_dict()
    assert not ec2.describe_snapshots(Filters=[{"Name": "snapshot-id", "Values": [orphan["SnapshotId"]]}])["Snapshots"]
    locked = locked_repository(services, recorder)
    two_days_on = moto_later(monkeypatch, timedelta(days=2))
    with recorder.as_function("maintenance"):
        report = locked.maintenance_service(safety_margin=timedelta(0), clock=lambda: two_days_on).run()
    assert report.to_dict()["status"] == "done", report.to_dict()
    assert_least_privilege(recorder, "maintenance")


# -- backups and their EBS snapshots --------------------------------------------------------------------------------

PV = Resource("", "v1", "PersistentVolume", "persistentvolumes", False, frozenset({"create", "delete", "list"}))
PVC = Resource("", "v1", "PersistentVolumeClaim", "persistentvolumeclaims", True, frozenset({"create", "list"}))


@pytest.fixture
def ebs_claim(world: dict[str, Any], kube_client: Any, test_namespace: str) -> Iterator[str]:
    """A claim in the test namespace on a moto EBS volume (the EBS CSI driver)."""
    from tests.integration.test_volume_ebs_backup import ebs_volume

    ec2 = world["services"].client("ec2")
    volume_id = ec2.create_volume(AvailabilityZone=f"{TEST_REGION}a", Size=8)["VolumeId"]
    pv = f"pv-{test_namespace}-data"
    kube_client.create(PV, ebs_volume(pv, test_namespace, "data", volume_id))
    kube_client.create(PVC, claim("data", pv, "8Gi"), namespace=test_namespace)
    kube_client.create(CM, configmap("cfg", test_namespace), namespace=test_namespace)
    yield volume_id
    kube_client.delete(PV, pv)


def backup_job(cluster: str, namespace: str, *, shard: bool, ebs: bool) -> dict[str, Any]:
    auth = {"type": "kubeconfig_secret", "secret_id": f"lifeboat/{cluster}"}
    volumes = VolumeSettings.from_dict({"mode": "ebs"}) if ebs else VolumeSettings()
    job = BackupJob(
        f"t-{uuid.uuid4()}",
        ClusterRef(cluster, auth),
        BackupScope(include_namespaces=(namespace,)),
        shard=shard,
        volumes=volumes,
    )
    return job.to_dict()


def send_backup(world: dict[str, Any], job: dict[str, Any]) -> None:
    with world["recorder"].outside():  # the dispatcher's message
        world["sqs"].send_message(QueueUrl=world["urls"]["backup-queue"], MessageBody=json.dumps(job))


@pytest.mark.fakeonly  # EBS volumes of moto's behind the claims
def test_backup_worker_run_backup_and_the_ebs_functions(
    world: dict[str, Any], kubeconfig_path: Any, test_namespace: str, ebs_claim: str
) -> None:
    services, recorder, client = world["services"], world["recorder"], world["client"]
    cluster = register_test_cluster(services, kubeconfig_path.read_text(), "iam")
    with recorder.as_function("backup_worker"):
        send_backup(world, backup_job(cluster, test_namespace, shard=False, ebs=True))
        send_backup(world, backup_job(cluster, test_namespace, shard=True, ebs=False))
        assert drain(world, "backup-queue", "backup_worker") >= 3
    with recorder.as_function("run_backup"):
        for shard, ebs in ((False, True), (True, False)):
            result = client.lambda_.invoke("run_backup", backup_job(cluster, test_namespace, shard=shard, ebs=ebs))
            assert result.payload["status"] in ("Completed", "Running"), result.payload
    drain(world, "backup-queue", "backup_worker")
    records, _ = services.catalog().list(cluster)
    assert {r.state for r in records} == {"Completed"}, [(r.state, r.errors) for r in records]
    copies = services.ec2_snapshots(REPLICA_REGION).tagged("lifeboat.io/backup-id")
    assert copies, "the EBS snapshots were copied into the replica region"
    with recorder.as_function("ebs_snapshot_events"):
        source = f"arn:aws:ec2::{TEST_REGION}:snapshot/{copies[0].tags['lifeboat.io/copy-of'].split('/')[-1]}"
        event = snapshot_event("copySnapshot", "succeeded", copies[0].snapshot_id, REPLICA_REGION, source)
        assert client.lambda_.invoke("ebs_snapshot_events", event).payload["outcome"] == "completed"
    with recorder.as_function("ebs_snapshot_poller"):
        client.lambda_.invoke("ebs_snapshot_poller", scheduled(client))
    assert_least_privilege(recorder, "backup_worker", "run_backup", "ebs_snapshot_events", "ebs_snapshot_poller")


# -- restores and restore verification ------------------------------------------------------------------------------


def drain(world: dict[str, Any], queue: str, function: str) -> int:
    """Hand every message of ``queue`` (a QUEUES key) to ``function``'s handler until none is left."""
    sqs, url, client, recorder = world["sqs"], world["urls"][queue], world["client"], world["recorder"]
    for handled in range(100):
        with recorder.outside():  # the SQS event source receives and deletes, not the function
            got = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=1, WaitTimeSeconds=0).get("Messages", [])
            if got:
                sqs.delete_message(QueueUrl=url, ReceiptHandle=got[0]["ReceiptHandle"])
        if not got:
            return handled
        event = client.events.generate_sqs_event(message_bodies=[got[0]["Body"]], queue_name=QUEUES[queue])
        client.lambda_.invoke(function, event)
    raise AssertionError(f"the {queue} never drained")


def test_restore_and_verification_workers(
    world: dict[str, Any], kubeconfig_path: Any, kube_client: Any, test_namespace: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    services, recorder, client = world["services"], world["recorder"], world["client"]
    for i in range(6):
        kube_client.create(CM, configmap(f"cfg-{i}", test_namespace), namespace=test_namespace)
    cluster = register_test_cluster(services, kubeconfig_path.read_text(), "iam")
    verify = {"schedule": "0 4 * * 0", "kinds": ["resources"]}
    policy = apply_policy(services, [test_namespace], verify, cluster=cluster)
    auth = {"type": "kubeconfig_secret", "secret_id": f"lifeboat/{cluster}"}
    job = BackupJob(f"t-{uuid.uuid4()}", ClusterRef(cluster, auth), policy.scope, policy=policy.name, shard=False)
    record = services.backup_service().run(job).record
    assert record.state == "Completed", record.errors
    target = f"{test_namespace}-r"
    try:
        body = json.dumps(
            {
                "backup_id": record.backup_id,
                "target_cluster": cluster,
                "options": {"namespace_mapping": [f"{test_namespace}:{target}"]},
            }
        ).encode()
        with recorder.as_function("api_handler"):
            created = client.http.post("/v1/restores", headers=signed(body, "POST", "/v1/restores"), body=body)
        assert created.status_code == 202, created.body
        # The first invocation runs out of time after a few objects: it checkpoints and continues from a message.
        monkeypatch.setattr(checkpointer_module, "FLUSH_EVERY", 1)
        budget = iter([600_000] * 3)
        monkeypatch.setattr(LambdaContext, "get_remaining_time_in_millis", lambda self: next(budget, 1000))
        with recorder.as_function("restore_worker"):
            assert drain(world, "restore-queue", "restore_worker") == 2
        restore_id = created.json_body["restore_id"]
        assert services.restore_catalog().get(restore_id).state == "Completed"
        assert kube_client.get(f"/api/v1/namespaces/{target}/configmaps/cfg-5")["data"]
    finally:
        kube_client.delete_namespace(target)
    with recorder.outside():  # what the dispatcher does when the policy's verification is due
        run, _ = services.verification_worker().start(policy.name)
        services.verification_queue().send(VerifyMessage(run.verification_id).to_json())
    with recorder.as_function("verification_worker"):
        assert drain(world, "verification-queue", "verification_worker") >= 1
    ended = VerificationCatalog(services.client("dynamodb"), TEST_TABLE).get(run.verification_id)
    assert ended.state == "Succeeded", ended
    assert_least_privilege(recorder, "restore_worker", "verification_worker")


# -- cross-region replication ---------------------------------------------------------------------------------------


@pytest.fixture
def replication(aws: None, table: str) -> Iterator[dict[str, Any]]:
    """Both regions' buckets with S3 -> SQS notifications (tests/support/replication.py), services on them."""
    from chalice.test import Client as ChaliceClient

    import app as app_module

    env = replication_env()
    services_module.set_services(env.services)
    try:
        recorder = Recorder(buckets={TEST_BUCKET: "bucket", REPLICA_BUCKET: "replica"})
        with recorder, ChaliceClient(app_module.app) as client:
            yield {"env": env, "recorder": recorder, "client": client}
    finally:
        services_module.set_services(None)


def test_replicator_and_reconciler(replication: dict[str, Any]) -> None:
    env, recorder, client = replication["env"], replication["recorder"], replication["client"]
    full, next_one = "20260101T000000Z-aaaaaa", "20260102T000000Z-bbbbbb"
    write_replicated(env, full, replication_objects(), etcd=b"etcd snapshot bytes")
    with recorder.outside():
        bodies = env.drain()
    with recorder.as_function("replicator"):
        for start in range(0, len(bodies), 10):
            event = client.events.generate_sqs_event(message_bodies=bodies[start : start + 10], queue_name="x")
            client.lambda_.invoke("replicator", event)
    write_replicated(env, next_one, replication_objects(changed=["ns-0/cm-1"]), parent=full)
    with recorder.outside():
        env.drain()  # lost: the reconciler replicates the backup
    with recorder.as_function("replication_reconciler"):
        client.lambda_.invoke("replication_reconciler", scheduled(client))  # defers the new backup: too young
        later = datetime.now(UTC) + timedelta(hours=1)
        run_reconciler(Reconciler(env.services.replicator(), env.services.catalog(), clock=lambda: later))
    assert env.stored(replica=True) == env.stored()
    assert_least_privilege(recorder, "replicator", "replication_reconciler")


# -- etcd snapshots -------------------------------------------------------------------------------------------------

etcd_certs = etcd_helpers.etcd_certs
etcd_member = etcd_helpers.etcd_member


@pytest.mark.etcd
def test_etcd_snapshot_backup_and_etcd_verifier(
    world: dict[str, Any], kubeconfig_path: Any, test_namespace: str, etcd_member: Any
) -> None:
    from chalicelib.etcd.credentials import secret_value

    services, recorder, client = world["services"], world["recorder"], world["client"]
    certs = etcd_member.certs
    value = secret_value(certs.ca.read_bytes(), certs.client_cert.read_bytes(), certs.client_key.read_bytes())
    services.client("secretsmanager").create_secret(Name="lifeboat/etcd-iam", SecretString=value)
    policy = {
        "name": "control-plane",
        "cluster": "selfmanaged",
        "schedule": "0 2 * * *",
        "scope": {"include_namespaces": [test_namespace]},
        "etcd": {"enabled": True},
    }
    services.policy_catalog().create(Policy.from_dict(policy), next_run_at=None, now=datetime.now(UTC))
    auth = {"type": "kubeconfig", "kubeconfig": kubeconfig_path.read_text()}
    ref = ClusterRef("selfmanaged", auth, etcd=EtcdTarget((etcd_member.client_url,), "lifeboat/etcd-iam"))
    job = BackupJob(f"t-{uuid.uuid4()}", ref, BackupScope(include_namespaces=(test_namespace,)), shard=False)
    with recorder.as_function("run_backup"):
        assert client.lambda_.invoke("run_backup", job.to_dict()).payload["status"] == "Completed"
    bin_dir = str(Path(etcd_helpers.etcd_bin("etcd")).parent)
    services_module.set_services(Services(dataclasses.replace(services.settings, etcd_bin_dir=bin_dir)))
    with recorder.as_function("etcd_verifier"):
        report = client.lambda_.invoke("etcd_verifier", scheduled(client)).payload
    assert report["verified"] and not report["failed"], report
    assert_least_privilege(recorder, "etcd_verifier")
    assert_least_privilege(recorder, "run_backup", partial=True)  # its etcd snapshot; its other flows: above


def test_every_function_of_the_table_is_driven_here() -> None:
    source = Path(__file__).read_text()
    calls = re.findall(r"assert_least_privilege\(recorder, ([^)]*)\)", source)
    driven = {name for call in calls if "partial" not in call for name in re.findall(r'"(\w+)"', call)}
    assert driven == {f for f in TABLE if not f.startswith("_")}
