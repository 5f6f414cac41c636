"""The verification's dumps kind: each dump of the backup restored by its mirror Job into a scratch database of the
restored target, once the restored workloads are ready. The test plays kube-controller-manager and the Job
controller on the Kubernetes API test server; where no controllers run, the kind is not run and says why."""

# ruff: noqa: F811 - the readiness tests' fixtures are imported by name and requested by name

from __future__ import annotations

import uuid
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

import pytest

from chalicelib.core.dumps import dumps_from_list
from chalicelib.core.policies import Policy
from chalicelib.repository import RepositoryReader
from chalicelib.snapshots.dump_jobs import JOBS
from chalicelib.verification import dumps as dump_kind
from chalicelib.verification.results import Progress
from chalicelib.verification.worker import VerifyMessage
from tests.integration.test_verification_readiness import (  # noqa: F401 - fixtures shared with the readiness tests
    Queue,
    _live_scratch,
    _play_controller,
    _verifier,
    controller_lease,
    manifest,
    policy,
)
from tests.support.verification import back_up
from tests.support.verification import worker as make_worker

pytestmark = pytest.mark.fakeonly
MERGE = "application/merge-patch+json"


def _data_ns(app_ns: Any) -> str:
    return next(ns for ns in app_ns.namespaces if ns.startswith("shop-data"))


def _specs(app_ns: Any) -> Any:
    ns = _data_ns(app_ns)
    entries = [
        {
            "name": name,
            "engine": "postgres",
            "namespace": ns,
            "target": "db",
            "databases": ["shop"],
            "credentials": {"secret": "db", "password_key": "password"},
        }
        for name in ("orders", "users")
    ]
    return dumps_from_list(entries)


def _with_dumps(manifest: Any, app_ns: Any, *, users_failed: bool = True) -> Any:
    ns = _data_ns(app_ns)
    records = [
        {
            "name": "orders",
            "engine": "postgres",
            "namespace": ns,
            "key": f"dumps/{ns}/orders.pgdump",
            "state": "completed",
        },
        {
            "name": "users",
            "engine": "postgres",
            "namespace": ns,
            "key": f"dumps/{ns}/users.pgdump",
            **({"state": "failed", "error": "pg_dump: connection refused"} if users_failed else {"state": "completed"}),
        },
    ]
    return replace(manifest, dumps=records)


def _restore_jobs(kube_client: Any, namespace: str) -> list[dict[str, Any]]:
    found = kube_client.get(JOBS.collection_path(namespace), {"labelSelector": "lifeboat.io/dump-restore"})
    return list(found["items"])


def _set_job(kube_client: Any, namespace: str, name: str, status: dict[str, Any]) -> None:
    kube_client.request(
        "PATCH", JOBS.object_path(name, namespace) + "/status", body={"status": status}, content_type=MERGE
    )


def _env(job: dict[str, Any]) -> dict[str, Any]:
    return {
        e["name"]: e.get("value", e.get("valueFrom")) for e in job["spec"]["template"]["spec"]["containers"][0]["env"]
    }


def test_each_dump_is_restored_into_a_scratch_database_once_the_workloads_are_ready(
    services: Any, kube_client: Any, controller_lease: Any, manifest: Any, app_ns: Any
) -> None:
    run_id = f"v{uuid.uuid4().hex[:11]}"
    verifier = _verifier(services, kube_client)
    progress = verifier.start(_with_dumps(manifest, app_ns), run_id, timeout_s=600, dumps=_specs(app_ns))

    by_dump = {e["dump"].split("/")[1]: e for e in progress.dumps}
    assert by_dump["orders"]["state"] == "waiting" and progress.waiting
    assert by_dump["users"]["state"] == "not run"
    assert "failed when it was taken: pg_dump: connection refused" in by_dump["users"]["error"]
    scratch = by_dump["orders"]["namespace"]
    assert scratch in progress.namespaces and scratch != _data_ns(app_ns)
    assert _restore_jobs(kube_client, scratch) == [], "no restore before the database is ready"

    _play_controller(kube_client, progress)
    started = verifier.poll(verifier.poll(progress))  # readiness passes, then the restore Job starts
    [job] = _restore_jobs(kube_client, scratch)
    env = _env(job)
    assert env["LIFEBOAT_HOST"] == f"db.{scratch}.svc"
    assert env["LIFEBOAT_DATABASES"] == by_dump["orders"]["database"]
    assert env["LIFEBOAT_DATABASES"].startswith("lifeboat_verify_") and env["LIFEBOAT_CREATE_DATABASE"] == "1"
    assert started.waiting and verifier.poll(started).waiting, "the Job is still running"

    _set_job(kube_client, scratch, job["metadata"]["name"], {"succeeded": 1})
    done = verifier.poll(started)
    assert not done.waiting
    result = verifier.finish(done)

    states = {e["dump"].split("/")[1]: e["state"] for e in result.dumps}
    assert states == {"orders": "passed", "users": "not run"}
    outcome, problems = dump_kind.outcome(result.dumps, result.backup_id)
    assert outcome.startswith("not verified: 1 of 2 dumps not run") and problems == []
    assert _live_scratch(kube_client, run_id) == [], "the Jobs go with the scratch namespaces"


def test_a_restore_job_that_fails_fails_the_kind_with_its_error(
    services: Any, kube_client: Any, controller_lease: Any, manifest: Any, app_ns: Any
) -> None:
    run_id = f"v{uuid.uuid4().hex[:11]}"
    verifier = _verifier(services, kube_client)
    progress = verifier.start(
        _with_dumps(manifest, app_ns, users_failed=False), run_id, timeout_s=600, dumps=_specs(app_ns)
    )
    _play_controller(kube_client, progress)
    started = verifier.poll(verifier.poll(progress))
    scratch = started.dumps[0]["namespace"]
    jobs = {
        j["metadata"]["labels"]["lifeboat.io/dump-restore"]: j["metadata"]["name"]
        for j in _restore_jobs(kube_client, scratch)
    }
    assert set(jobs) == {"orders", "users"}
    failed = [{"type": "Failed", "status": "True", "reason": "BackoffLimitExceeded", "message": "pg_restore: error"}]
    _set_job(kube_client, scratch, jobs["orders"], {"failed": 1, "conditions": failed})
    _set_job(kube_client, scratch, jobs["users"], {"succeeded": 1})

    result = verifier.finish(verifier.poll(started))

    outcome, problems = dump_kind.outcome(result.dumps, result.backup_id)
    assert outcome == "failed: 1 of 2 dumps did not restore"
    [problem] = problems
    assert problem.startswith(f"dump {_data_ns(app_ns)}/orders did not restore: the restore Job {scratch}/")
    assert "pg_restore: error" in problem


def test_without_controllers_the_dumps_are_not_run_and_say_why(
    services: Any, kube_client: Any, manifest: Any, app_ns: Any
) -> None:
    run_id = f"v{uuid.uuid4().hex[:11]}"
    verifier = _verifier(services, kube_client)
    progress = verifier.start(
        _with_dumps(manifest, app_ns, users_failed=False), run_id, wait_for_ready=False, dumps=_specs(app_ns)
    )

    assert not progress.waiting
    result = verifier.finish(progress)
    assert [e["state"] for e in result.dumps] == ["not run", "not run"]
    outcome, problems = dump_kind.outcome(result.dumps, result.backup_id)
    assert outcome.startswith("not verified: 2 of 2 dumps not run")
    assert "no kube-controller-manager runs on the target cluster" in outcome and problems == []


class DumpsReader:
    """The repository's reader, with dumps in every manifest it loads (the backup's dump Jobs are not the subject)."""

    def __init__(self, reader: Any, app_ns: Any) -> None:
        self._reader, self._app_ns = reader, app_ns

    def __getattr__(self, name: str) -> Any:
        return getattr(self._reader, name)

    def load_manifest(self, cluster: str, backup_id: str) -> Any:
        return _with_dumps(self._reader.load_manifest(cluster, backup_id), self._app_ns, users_failed=False)


def test_the_worker_waits_for_the_restore_jobs_across_invocations_and_records_each_dump(
    services: Any, kube_client: Any, kubeconfig_path: Any, controller_lease: Any, app_ns: Any
) -> None:
    verify = {"schedule": "0 4 * * 0", "timeout": 600, "kinds": ["resources", "dumps"]}
    data = Policy.from_dict(
        {
            "name": f"shop-{uuid.uuid4().hex[:6]}",
            "cluster": "test-cluster",
            "schedule": "0 2 * * *",
            "scope": {"include_namespaces": list(app_ns.namespaces)},
            "verify": verify,
            "dumps": [s.to_dict() for s in _specs(app_ns)],
        }
    )
    services.policy_catalog().create(data, next_run_at=None, now=datetime.now(UTC))
    back_up(services, kubeconfig_path, data)
    queue = Queue()
    worker = make_worker(services, kube_client, queue=queue, inline_wait_s=0)
    worker._reader = lambda: DumpsReader(RepositoryReader(services.repository()), app_ns)
    run, _ = worker.start(data.name)
    assert worker.handle(run.verification_id) is None
    waiting = worker._verifications.get(run.verification_id)
    _play_controller(kube_client, Progress.from_dict(waiting.progress))
    body = queue.sent[-1][0]
    assert worker.handle_message(body) is None, "readiness passed: the restore Jobs started, the run waits for them"
    waiting = worker._verifications.get(run.verification_id)
    entries = waiting.progress["dumps"]
    assert [e["state"] for e in entries] == ["running", "running"]
    for entry in entries:
        _set_job(kube_client, entry["namespace"], entry["job"], {"succeeded": 1})

    done = worker.handle_message(VerifyMessage(run.verification_id, waiting.worker).to_json())

    assert done is not None and done.state == "Succeeded", done.problems or done.message
    assert done.outcomes["dumps"] == "verified: 2 dumps restored into scratch databases"
    assert [(d["dump"].split("/")[1], d["state"]) for d in done.dumps] == [("orders", "passed"), ("users", "passed")]
    assert all(d["database"].startswith("lifeboat_verify_") for d in done.dumps)
