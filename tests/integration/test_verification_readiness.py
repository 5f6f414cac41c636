"""Readiness and the user's checks in a verification, where controllers run. On the Kubernetes API test server the
test plays kube-controller-manager: it holds the leader lease and writes the statuses a controller would write.
Against a real cluster these tests do not run (the real controller-manager plays itself there)."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from chalicelib.core.policies import Policy
from chalicelib.core.readiness import Target
from chalicelib.core.resources import Resource
from chalicelib.kube.controllers import LEASES
from chalicelib.repository import RepositoryReader
from chalicelib.restore import RestoreService
from chalicelib.verification.results import Progress
from chalicelib.verification.run import VerificationRun
from chalicelib.verification.worker import VerifyMessage
from tests.support.verification import apply_policy, back_up
from tests.support.verification import worker as make_worker

NAMESPACES = Resource("", "v1", "Namespace", "namespaces", False, frozenset({"get", "list"}))


@pytest.fixture
def controller_lease(fake_kube: Any, kube_client: Any, manifest: Any) -> Any:
    """A fresh kube-controller-manager lease: the cluster now looks like one whose controllers run. Taken after the
    sample app is seeded and backed up, or the seeding would wait for controllers that are not there."""
    now = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.000000Z")
    lease = {
        "apiVersion": "coordination.k8s.io/v1",
        "kind": "Lease",
        "metadata": {"name": "kube-controller-manager", "namespace": "kube-system"},
        "spec": {"holderIdentity": "test_controller", "renewTime": now, "leaseDurationSeconds": 15},
    }
    kube_client.create(LEASES, lease, namespace="kube-system")
    yield
    kube_client.delete(LEASES, "kube-controller-manager", "kube-system")


@pytest.fixture
def policy(services: Any, app_ns: Any) -> Policy:
    verify = {
        "schedule": "0 4 * * 0",
        "timeout": 600,
        "checks": [{"http": {"service": "web", "namespace": app_ns.namespaces[0], "port": 80}}],
    }
    return apply_policy(services, list(app_ns.namespaces), verify)


@pytest.fixture
def manifest(services: Any, kubeconfig_path: Any, policy: Policy) -> Any:
    record = back_up(services, kubeconfig_path, policy)
    return RepositoryReader(services.repository()).load_manifest(record.cluster, record.backup_id)


def _verifier(services: Any, kube_client: Any, **kwargs: Any) -> VerificationRun:
    reader = RepositoryReader(services.repository())
    return VerificationRun(reader, kube_client, RestoreService(reader, kube_client), **kwargs)


def _play_controller(kube_client: Any, progress: Progress, *, fail_jobs: bool = False) -> None:
    """Write the statuses the controllers (and kubelets) would write once each target is up."""
    for data in progress.pending:
        target = Target.from_dict(data)
        prefix = f"/apis/{target.group}/{target.version}" if target.group else f"/api/{target.version}"
        path = f"{prefix}/namespaces/{target.namespace}/{target.plural}/{target.name}/status"
        live = kube_client.get(path.removesuffix("/status"))
        spec, generation = live.get("spec") or {}, live["metadata"].get("generation", 1)
        replicas = spec.get("replicas", 1)
        status: dict[str, Any] = {
            "deployments": {
                "observedGeneration": generation,
                "replicas": replicas,
                "availableReplicas": replicas,
                "readyReplicas": replicas,
            },
            "statefulsets": {"observedGeneration": generation, "replicas": replicas, "readyReplicas": replicas},
            "daemonsets": {"observedGeneration": generation, "desiredNumberScheduled": 1, "numberAvailable": 1},
            "persistentvolumeclaims": {"phase": "Bound"},
            "jobs": {
                "conditions": [
                    {
                        "type": "Failed" if fail_jobs else "Complete",
                        "status": "True",
                        "message": "probe answered 503" if fail_jobs else "",
                    }
                ],
                **({} if fail_jobs else {"succeeded": 1}),
            },
        }[target.plural]
        kube_client.request("PATCH", path, body={"status": status}, content_type="application/merge-patch+json")


def _live_scratch(kube_client: Any, run_id: str) -> list[str]:
    found = kube_client.get(NAMESPACES.collection_path(None), {"labelSelector": f"lifeboat.io/verification={run_id}"})
    return [n["metadata"]["name"] for n in found["items"] if not n["metadata"].get("deletionTimestamp")]


def test_workloads_claims_and_the_http_check_must_become_ready(
    services: Any, kube_client: Any, controller_lease: Any, manifest: Any, policy: Policy
) -> None:
    run_id = f"v{uuid.uuid4().hex[:11]}"
    verifier = _verifier(services, kube_client)
    assert policy.verify is not None

    progress = verifier.start(manifest, run_id, checks=policy.verify.checks, timeout_s=600)

    assert progress.checks == "objects+readiness+checks"
    waiting = {Target.from_dict(d).plural for d in progress.pending}
    assert {"deployments", "statefulsets", "persistentvolumeclaims", "jobs"} <= waiting
    probe = next(Target.from_dict(d) for d in progress.pending if Target.from_dict(d).check)
    job = kube_client.get(f"/apis/batch/v1/namespaces/{probe.namespace}/jobs/{probe.name}")
    script = job["spec"]["template"]["spec"]["containers"][0]["command"][-1]
    assert f"http://web.{probe.namespace}.svc:80/" in script  # the restored Service, by its scratch namespace

    again = verifier.poll(progress)
    assert again.waiting and len(again.pending) == len(progress.pending)  # nothing ready yet
    _play_controller(kube_client, again)
    done = verifier.poll(again)
    assert not done.waiting and done.problems == ()
    result = verifier.finish(done)

    assert result.state == "Succeeded", result.problems
    assert "ready" in result.phases and result.rto_s is not None
    assert _live_scratch(kube_client, run_id) == []


def test_a_failing_check_fails_the_run_naming_it(
    services: Any, kube_client: Any, controller_lease: Any, manifest: Any, policy: Policy
) -> None:
    run_id = f"v{uuid.uuid4().hex[:11]}"
    verifier = _verifier(services, kube_client)
    assert policy.verify is not None
    progress = verifier.start(manifest, run_id, checks=policy.verify.checks, timeout_s=600)

    _play_controller(kube_client, progress, fail_jobs=True)
    result = verifier.finish(verifier.poll(progress))

    assert result.state == "Failed" and result.rto_s is None
    [failed] = [p for p in result.problems if p.problem.startswith("check ")]
    assert failed.problem.startswith(f"check http {policy.verify.checks[0].namespace}/web:80/ failed:")
    assert "probe answered 503" in failed.problem
    assert _live_scratch(kube_client, run_id) == []


def test_a_run_that_times_out_fails_and_still_cleans_up(
    services: Any, kube_client: Any, controller_lease: Any, manifest: Any
) -> None:
    run_id = f"v{uuid.uuid4().hex[:11]}"
    clock = [datetime.now(UTC)]
    verifier = _verifier(services, kube_client, clock=lambda: clock[0])
    progress = verifier.start(manifest, run_id, timeout_s=60)
    assert progress.waiting

    clock[0] += timedelta(seconds=61)  # nothing became ready within the run's timeout
    result = verifier.finish(verifier.poll(progress))

    assert result.state == "Failed"
    assert result.message.startswith("timed out after ") and "objects not ready" in result.message
    assert any("was not ready before the run's timeout" in p.problem for p in result.problems)
    assert result.cleanup.namespaces > 0
    assert _live_scratch(kube_client, run_id) == []


class Queue:
    def __init__(self) -> None:
        self.sent: list[tuple[str, int]] = []

    def send(self, body: str, *, delay_s: int = 0) -> str:
        self.sent.append((body, delay_s))
        return "m-1"


def test_the_worker_waits_across_invocations_through_the_queue(
    services: Any, kube_client: Any, controller_lease: Any, manifest: Any, policy: Policy
) -> None:
    queue = Queue()
    worker = make_worker(
        services,
        kube_client,
        queue=queue,
        inline_wait_s=0,  # checkpoint at the first wait: the next step comes from the delayed message
    )
    run, _ = worker.start(policy.name)

    assert worker.handle(run.verification_id) is None  # restored, compared, now waiting
    waiting = worker._verifications.get(run.verification_id)
    assert waiting.state == "Running" and waiting.progress and waiting.progress["pending"]
    [(body, delay)] = queue.sent
    assert delay > 0 and VerifyMessage.from_json(body).token == waiting.worker
    assert worker.handle_message(VerifyMessage(run.verification_id, "not-the-holder").to_json()) is None

    _play_controller(kube_client, Progress.from_dict(waiting.progress))
    done = worker.handle_message(body)

    assert done is not None and done.state == "Succeeded", done.problems or done.message
    assert done.progress is None and "ready" in done.phases
    assert worker.handle_message(body) is None  # a duplicate continuation after the end does nothing
