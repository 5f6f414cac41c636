"""Dump Jobs against the Kubernetes API test server, the test playing the Job controller, uploading to moto's S3."""

from __future__ import annotations

import base64
import hashlib
import json
import urllib.request
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest

from chalicelib.core.dumps import DumpSpec, dumps_from_list
from chalicelib.core.resources import Resource
from chalicelib.repository.store import S3ObjectStore
from chalicelib.snapshots.dump_jobs import FAILED, JOBS, PODS, RUNNING, SECRETS, SUCCEEDED, DumpJobs, PendingDump
from chalicelib.snapshots.dumps import DumpError, DumpUploads
from tests.support.clocks import utc
from tests.support.databases import moto_s3_store

BUCKET = "dump-jobs"
NOW = utc(2026, 12, 2, 3, 0)
MERGE = "application/merge-patch+json"


@pytest.fixture(scope="module")
def store() -> Iterator[S3ObjectStore]:
    with moto_s3_store(BUCKET) as found:
        yield found


@pytest.fixture
def jobs(fake_kube: Any, kube_client: Any, store: S3ObjectStore) -> DumpJobs:
    return DumpJobs(kube_client, DumpUploads(store, part_size=5 << 20, max_size=10 << 20))


def spec_in(namespace: str, **extra: Any) -> DumpSpec:
    entry = {
        "name": "orders",
        "engine": "postgres",
        "namespace": namespace,
        "target": "db",
        "databases": ["shop"],
        "credentials": {"secret": "pg", "password_key": "password"},
        "timeout": 600,
        **extra,
    }
    return dumps_from_list([entry])[0]


def set_status(kube_client: Any, resource: Any, name: str, namespace: str, status: dict[str, Any]) -> None:
    path = resource.object_path(name, namespace) + "/status"
    kube_client.request("PATCH", path, body={"status": status}, content_type=MERGE)


def play_the_job(kube_client: Any, pending: PendingDump, body: bytes) -> None:
    """What the Job's script does, with the URLs it would find mounted from its Secret."""
    secret = kube_client.get_object(SECRETS, pending.job, pending.spec.namespace)
    data = {k: base64.b64decode(v).decode() for k, v in secret["data"].items()}
    parts, report = data["parts"].splitlines(), data["report"].strip()
    put(parts[0], body)
    put(
        report,
        json.dumps(
            {
                "sha256": hashlib.sha256(body).hexdigest(),
                "size": len(body),
                "parts": 1,
                "tool_version": "pg_dump (PostgreSQL) 16.4",
                "duration_s": 3,
            }
        ).encode(),
    )


def put(url: str, data: bytes) -> None:
    request = urllib.request.Request(url, data=data, method="PUT", headers={"Content-Type": ""})
    with urllib.request.urlopen(request, timeout=30) as response:  # noqa: S310 - the test's S3
        assert response.status == 200


def test_a_job_that_succeeds_is_recorded_and_cleaned_up(
    jobs: DumpJobs, kube_client: Any, test_namespace: str, store: S3ObjectStore
) -> None:
    spec = spec_in(test_namespace)
    pending = jobs.start("prod", "20261202T030000Z-aaaaaa", spec, NOW)

    job = kube_client.get_object(JOBS, pending.job, test_namespace)
    assert job["metadata"]["labels"]["lifeboat.io/backup-id"] == "20261202T030000Z-aaaaaa"
    assert job["spec"]["backoffLimit"] == 0
    secret = kube_client.get_object(SECRETS, pending.job, test_namespace)
    assert secret["metadata"]["ownerReferences"][0]["uid"] == job["metadata"]["uid"]
    assert jobs.observe(pending, NOW) == (RUNNING, "")
    # A duplicate delivery starting the same dump finds the Job there and creates nothing twice.
    assert jobs.start("prod", "20261202T030000Z-aaaaaa", spec, NOW).job == pending.job

    play_the_job(kube_client, pending, b"PGDMP the dump")
    set_status(kube_client, JOBS, pending.job, test_namespace, {"succeeded": 1})
    state, error = jobs.observe(PendingDump.from_dict(json.loads(json.dumps(pending.to_dict()))), NOW)
    assert (state, error) == (SUCCEEDED, "")
    record = jobs.settle(pending, state)

    assert record.to_manifest() == {
        "name": "orders",
        "namespace": test_namespace,
        "engine": "postgres",
        "key": f"dumps/{test_namespace}/orders.pgdump",
        "state": "completed",
        "size": 14,
        "sha256": hashlib.sha256(b"PGDMP the dump").hexdigest(),
        "version": "pg_dump (PostgreSQL) 16.4",
        "duration_s": 3,
        "parts": 1,
    }
    assert store.get(pending.upload.key) == b"PGDMP the dump"
    assert kube_client.get_object(JOBS, pending.job, test_namespace) is None
    assert kube_client.get_object(SECRETS, pending.job, test_namespace) is None


def test_a_job_that_fails_is_recorded_as_failed_naming_the_dump(
    jobs: DumpJobs, kube_client: Any, test_namespace: str, store: S3ObjectStore
) -> None:
    spec = spec_in(test_namespace, name="broken")
    pending = jobs.start("prod", "20261202T030000Z-bbbbbb", spec, NOW)
    failed = {
        "type": "Failed",
        "status": "True",
        "reason": "BackoffLimitExceeded",
        "message": "Job has reached the specified backoff limit",
    }
    set_status(kube_client, JOBS, pending.job, test_namespace, {"failed": 1, "conditions": [failed]})

    state, error = jobs.observe(pending, NOW)
    assert state == FAILED and "reached the specified backoff limit" in error
    record = jobs.settle(pending, state, error)

    assert record.state == "failed"
    assert record.error.startswith(f"dump {test_namespace}/broken: the Job {pending.job} failed")
    assert not store.exists(pending.upload.key)
    assert not store._s3.list_multipart_uploads(Bucket=BUCKET, Prefix=store.prefix + pending.upload.key).get("Uploads")
    assert kube_client.get_object(JOBS, pending.job, test_namespace) is None


def test_a_failed_job_names_the_engine_failure_from_its_containers_termination_messages(
    jobs: DumpJobs, kube_client: Any, test_namespace: str, store: S3ObjectStore
) -> None:
    spec = spec_in(test_namespace, name="nodb")
    pending = jobs.start("prod", "20261202T030000Z-cccccc", spec, NOW)
    pod = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": f"{pending.job}-x7k2p",
            "namespace": test_namespace,
            "labels": {"batch.kubernetes.io/job-name": pending.job},
        },
        "spec": {"containers": [{"name": "dump", "image": "postgres:16"}, {"name": "upload", "image": "curl"}]},
    }
    # The pod needs the namespace's default ServiceAccount (the test server has no controller for it).
    account = Resource("", "v1", "ServiceAccount", "serviceaccounts", True, frozenset({"create"}))
    kube_client.create(
        account, {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": "default"}}, test_namespace
    )
    kube_client.create(PODS, pod, test_namespace)
    engine = {"exitCode": 1, "message": 'pg_dump: error: database "shop" does not exist'}
    uploader = {"exitCode": 5, "message": "lifeboat: the engine container's dump failed with exit status 1"}
    statuses = [
        {"name": "dump", "state": {"terminated": engine}},
        {"name": "upload", "state": {"terminated": uploader}},
    ]
    set_status(
        kube_client, PODS, pod["metadata"]["name"], test_namespace, {"phase": "Failed", "containerStatuses": statuses}
    )
    failed = {"type": "Failed", "status": "True", "reason": "BackoffLimitExceeded", "message": "backoff limit"}
    set_status(kube_client, JOBS, pending.job, test_namespace, {"failed": 1, "conditions": [failed]})

    state, error = jobs.observe(pending, NOW)

    assert state == FAILED
    assert error == (
        f'the Job {pending.job} failed: backoff limit; dump: pg_dump: error: database "shop" does not exist; '
        "upload: lifeboat: the engine container's dump failed with exit status 1"
    )
    assert jobs.settle(pending, state, error).state == "failed"
    assert not store.exists(pending.upload.key)


def test_a_job_past_its_deadline_or_gone_fails(jobs: DumpJobs, kube_client: Any, test_namespace: str) -> None:
    pending = jobs.start("prod", "20261202T030000Z-cccccc", spec_in(test_namespace, name="slow"), NOW)
    assert jobs.observe(pending, NOW + timedelta(seconds=600)) == (RUNNING, "")
    state, error = jobs.observe(pending, NOW + timedelta(seconds=901))
    assert (state, error) == (FAILED, f"the Job {pending.job} did not finish within 600s")
    kube_client.delete(JOBS, pending.job, test_namespace)
    assert jobs.observe(pending, NOW) == (FAILED, f"the Job {test_namespace}/{pending.job} is gone")
    assert jobs.settle(pending, FAILED, "gone").state == "failed"


def test_a_selector_target_runs_against_a_running_pod(jobs: DumpJobs, kube_client: Any, test_namespace: str) -> None:
    spec = spec_in(test_namespace, name="bysel", target={"selector": "app=pg"})
    with pytest.raises(DumpError, match=rf"dump {test_namespace}/bysel: no running pod in {test_namespace} matches"):
        jobs.start("prod", "20261202T030000Z-dddddd", spec, NOW)

    pod = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "pg-0", "labels": {"app": "pg"}},
        "spec": {"containers": [{"name": "pg", "image": "postgres:16"}]},
    }
    account = Resource("", "v1", "ServiceAccount", "serviceaccounts", True, frozenset({"create"}))
    kube_client.create(
        account, {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": "default"}}, test_namespace
    )
    kube_client.create(PODS, pod, test_namespace)
    set_status(kube_client, PODS, "pg-0", test_namespace, {"phase": "Running", "podIP": "10.1.2.3"})
    pending = jobs.start("prod", "20261202T030000Z-dddddd", spec, NOW)

    job = kube_client.get_object(JOBS, pending.job, test_namespace)
    env = {e["name"]: e.get("value") for e in job["spec"]["template"]["spec"]["containers"][0]["env"]}
    assert env["LIFEBOAT_HOST"] == "10.1.2.3"
    jobs.settle(pending, FAILED, "not run")
