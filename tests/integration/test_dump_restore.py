"""``lifeboat dumps restore``: the mirror Job created in the target namespace with the engine's restore script and a
presigned GET URL in its own Secret, waited for (the test playing the Job controller), deleted, and its exit code."""

from __future__ import annotations

import base64
import json
import threading
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pytest
import requests

from chalicelib.backup.worker import handle_message
from chalicelib.cli import dumps_cmd
from chalicelib.cli.main import main
from chalicelib.cli.output import EXIT_ERROR, EXIT_OK
from chalicelib.core.dump_restore_job import restore_script
from chalicelib.core.dumps import DumpSpec, dumps_from_list
from chalicelib.core.jobs import BackupJob, ClusterRef
from chalicelib.core.resources import Resource
from chalicelib.core.scope import BackupScope
from chalicelib.snapshots.dump_jobs import JOBS, PODS, SECRETS
from tests.conftest import TEST_BUCKET, TEST_TABLE
from tests.integration.test_dump_backup import _jobs_of, _run_the_job
from tests.support.api import register_test_cluster
from tests.support.clocks import Clock
from tests.support.sharded import ListQueue

pytestmark = pytest.mark.fakeonly
AWS = ["--table", TEST_TABLE, "--bucket", TEST_BUCKET, "--region", "us-east-1"]
MERGE = "application/merge-patch+json"
DUMP = b"-- MySQL dump\nCREATE TABLE t (id int);\nINSERT INTO t VALUES (1),(2);\n"


@pytest.fixture
def registered(services: Any, kubeconfig_path: Any) -> str:
    return register_test_cluster(services, kubeconfig_path.read_text(), "dumps")


@pytest.fixture
def backup_id(services: Any, registered: str, kube_client: Any, test_namespace: str) -> str:
    """A backup of ``registered`` with two mysql dumps: ``orders`` stored, ``users`` failed."""
    entries = [
        {
            "name": n,
            "engine": "mysql",
            "namespace": test_namespace,
            "target": "db",
            "databases": ["shop"],
            "credentials": {"secret": "db", "password_key": "password"},
        }
        for n in ("orders", "users")
    ]
    job = BackupJob(
        job_id=f"t-{uuid.uuid4()}",
        cluster=ClusterRef(registered, {"type": "kubeconfig_secret", "secret_id": f"lifeboat/{registered}"}),
        scope=BackupScope(include_namespaces=(test_namespace,)),
        shard=False,
        dumps=dumps_from_list(entries),
    )
    queue = ListQueue()
    clock = Clock(datetime.now(UTC).replace(microsecond=0))
    service = services.backup_service(queue=queue, clock=clock)
    started = handle_message(service, job.to_dict())
    jobs = {
        j["metadata"]["labels"]["lifeboat.io/dump"]: j
        for j in _jobs_of(kube_client, test_namespace, started["backup_id"])
    }
    _run_the_job(kube_client, jobs["orders"], DUMP)
    _run_the_job(kube_client, jobs["users"], None)
    clock.advance(seconds=30)
    assert handle_message(service, queue.messages.popleft())["status"] == "PartiallyFailed"
    return str(started["backup_id"])


@pytest.fixture
def scratch(kube_client: Any) -> Iterator[str]:
    """The namespace restored into, apart from the backed-up one."""
    name = f"scratch-{uuid.uuid4().hex[:6]}"
    kube_client.create_namespace(name)
    # The Job controller's pod needs the namespace's default ServiceAccount (the test server has no controller for it).
    account = Resource("", "v1", "ServiceAccount", "serviceaccounts", True, frozenset({"create"}))
    kube_client.create(account, {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": "default"}}, name)
    try:
        yield name
    finally:
        kube_client.delete_namespace(name)


def _in_background(argv: list[str], capsys: Any) -> tuple[threading.Thread, dict[str, Any]]:
    out: dict[str, Any] = {}

    def run() -> None:
        out["code"] = main(argv)

    capsys.readouterr()
    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread, out


def _the_restore_job(kube_client: Any, namespace: str, thread: threading.Thread) -> dict[str, Any]:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        items = kube_client.get(JOBS.collection_path(namespace), {"labelSelector": "lifeboat.io/dump-restore"})["items"]
        # The Job first, then its Secret (owned by the Job): its pod waits for the Secret's volume like a kubelet.
        if items and kube_client.get_object(SECRETS, items[0]["metadata"]["name"], namespace) is not None:
            return dict(items[0])
        assert thread.is_alive(), "the command ended before creating its Job"
        time.sleep(0.05)
    raise AssertionError(f"no restore Job in {namespace}")


def _patch_status(kube_client: Any, resource: Any, name: str, namespace: str, status: dict[str, Any]) -> None:
    path = resource.object_path(name, namespace) + "/status"
    kube_client.request("PATCH", path, body={"status": status}, content_type=MERGE)


@pytest.fixture(autouse=True)
def fast_polls(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(dumps_cmd, "POLL_S", 0.05)


def test_a_dump_is_restored_by_a_job_in_the_target_namespace(
    services: Any, backup_id: str, kube_client: Any, scratch: str, test_namespace: str, capsys: Any
) -> None:
    argv = [
        "dumps",
        "restore",
        backup_id,
        "orders",
        "--into",
        f"{scratch}/mariadb",
        "--database",
        "shop_copy",
        "--secret",
        "scratch-db",
        "--password-key",
        "root",
        "--wait-seconds",
        "60",
        *AWS,
        "--output",
        "json",
    ]
    thread, out = _in_background(argv, capsys)
    job = _the_restore_job(kube_client, scratch, thread)
    name = job["metadata"]["name"]
    container = job["spec"]["template"]["spec"]["containers"][0]
    spec = DumpSpec(name="orders", engine="mysql", namespace=test_namespace)
    assert container["command"] == ["bash", "-c", restore_script(spec)]
    downloader = job["spec"]["template"]["spec"]["containers"][1]
    assert "mysql --host" in container["command"][2] and "gunzip -c" in downloader["command"][2]
    env = {e["name"]: e.get("value", e.get("valueFrom")) for e in container["env"]}
    assert env["LIFEBOAT_HOST"] == f"mariadb.{scratch}.svc" and env["LIFEBOAT_DATABASES"] == "shop_copy"
    assert env["LIFEBOAT_PASSWORD"] == {"secretKeyRef": {"name": "scratch-db", "key": "root"}}
    secret = kube_client.get_object(SECRETS, name, scratch)
    assert secret["metadata"]["ownerReferences"][0]["name"] == name
    url = base64.b64decode(secret["data"]["url"]).decode().strip()
    got = requests.get(url, timeout=30)
    assert got.status_code == 200 and got.content == DUMP, "the URL reads the stored dump"
    assert "X-Amz-Expires" in url and f"/dumps/{test_namespace}/orders.sql.gz" in url

    _patch_status(kube_client, JOBS, name, scratch, {"succeeded": 1})
    thread.join(timeout=30)
    assert out["code"] == EXIT_OK
    result = json.loads(capsys.readouterr().out)
    assert result["state"] == "succeeded" and result["job"] == f"{scratch}/{name}"
    assert result["database"] == "shop_copy" and result["into"] == f"{scratch}/mariadb"
    assert kube_client.get_object(JOBS, name, scratch) is None, "the Job is deleted after"
    assert kube_client.get_object(SECRETS, name, scratch) is None, "and its URL with it"


def test_a_failed_restore_exits_1_naming_the_job_and_its_termination_message(
    services: Any, backup_id: str, kube_client: Any, scratch: str, capsys: Any
) -> None:
    argv = ["dumps", "restore", backup_id, "orders", "--into", f"{scratch}/mariadb", "--wait-seconds", "60", *AWS]
    thread, out = _in_background(argv, capsys)
    job = _the_restore_job(kube_client, scratch, thread)
    name = job["metadata"]["name"]
    pod = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": f"{name}-x7k2p", "namespace": scratch, "labels": {"batch.kubernetes.io/job-name": name}},
        "spec": {"restartPolicy": "Never", "containers": [{"name": "restore", "image": "mysql:8.4"}]},
    }
    kube_client.create(PODS, pod, scratch)
    terminated = {"exitCode": 1, "reason": "Error", "message": "ERROR 1049 (42000): Unknown database 'shop'"}
    _patch_status(
        kube_client,
        PODS,
        pod["metadata"]["name"],
        scratch,
        {"phase": "Failed", "containerStatuses": [{"name": "restore", "state": {"terminated": terminated}}]},
    )
    failed = [
        {
            "type": "Failed",
            "status": "True",
            "reason": "BackoffLimitExceeded",
            "message": "Job has reached the specified backoff limit",
        }
    ]
    _patch_status(kube_client, JOBS, name, scratch, {"failed": 1, "conditions": failed})
    thread.join(timeout=30)
    assert out["code"] == EXIT_ERROR
    text = " ".join(capsys.readouterr().out.split())
    assert f"the restore Job {scratch}/{name} failed" in text
    assert "Unknown database 'shop'" in text and "backoff limit" in text
    assert kube_client.get_object(JOBS, name, scratch) is None


def test_a_job_that_does_not_finish_in_time_is_deleted_and_exits_1(
    services: Any, backup_id: str, kube_client: Any, scratch: str, capsys: Any
) -> None:
    argv = ["dumps", "restore", backup_id, "orders", "--into", f"{scratch}/mariadb", "--wait-seconds", "1", *AWS]
    thread, out = _in_background(argv, capsys)
    name = _the_restore_job(kube_client, scratch, thread)["metadata"]["name"]
    thread.join(timeout=30)
    assert out["code"] == EXIT_ERROR
    assert "did not finish within 1s" in " ".join(capsys.readouterr().out.split())
    assert kube_client.get_object(JOBS, name, scratch) is None


def test_an_unknown_dump_is_one_sentence_listing_the_known_ones(
    backup_id: str, test_namespace: str, scratch: str, capsys: Any
) -> None:
    capsys.readouterr()
    code = main(["dumps", "restore", backup_id, "invoices", "--into", f"{scratch}/db", *AWS])
    err = " ".join(capsys.readouterr().err.split())
    assert code == EXIT_ERROR
    assert f"backup {backup_id} has no dump 'invoices'" in err
    assert f"{test_namespace}/orders" in err and f"{test_namespace}/users" in err


def test_a_dump_that_failed_at_backup_time_cannot_be_restored(backup_id: str, scratch: str, capsys: Any) -> None:
    capsys.readouterr()
    code = main(["dumps", "restore", backup_id, "users", "--into", f"{scratch}/db", *AWS])
    err = " ".join(capsys.readouterr().err.split())
    assert code == EXIT_ERROR and "failed when it was taken" in err and "Access denied" in err


def test_into_must_name_a_namespace_and_a_target(backup_id: str, capsys: Any) -> None:
    capsys.readouterr()
    code = main(["dumps", "restore", backup_id, "orders", "--into", "mariadb", *AWS])
    assert code == EXIT_ERROR and "--into must be NAMESPACE/TARGET" in capsys.readouterr().err
