"""A backup's database dump Jobs in the cluster: create one per dump, look at it until it ends, record, clean up."""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from chalicelib.core.dump_job import dump_job, job_name, upload_secret
from chalicelib.core.dumps import DumpSpec, dumps_from_list
from chalicelib.core.resources import Resource
from chalicelib.kube.errors import AlreadyExists, KubeError, NotFound
from chalicelib.repository.errors import StorageError
from chalicelib.repository.presigned import PresignedUpload
from chalicelib.snapshots.dumps import DumpError, DumpRecord, DumpUploads

_VERBS = frozenset({"create", "delete", "get", "list", "patch"})
JOBS = Resource("batch", "v1", "Job", "jobs", True, _VERBS)
SECRETS = Resource("", "v1", "Secret", "secrets", True, _VERBS)
PODS = Resource("", "v1", "Pod", "pods", True, _VERBS)
RUNNING, SUCCEEDED, FAILED = "running", "succeeded", "failed"
# The Job controller labels its pods with their Job's name (``batch.kubernetes.io/job-name`` since 1.27, beside it).
JOB_NAME_LABELS = ("batch.kubernetes.io/job-name", "job-name")
# Past the Job's own deadline (activeDeadlineSeconds), how long a Job that never even started may keep us waiting.
START_MARGIN_S = 300


@dataclass(frozen=True)
class PendingDump:
    """A dump whose Job was created: what a checkpoint keeps to look at it again in a later invocation."""

    spec: DumpSpec
    upload: PresignedUpload
    job: str
    deadline: datetime

    def to_dict(self) -> dict[str, Any]:
        return {
            "spec": self.spec.to_dict(),
            "upload": self.upload.to_dict(),
            "job": self.job,
            "deadline": self.deadline.isoformat(),
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> PendingDump:
        spec = dumps_from_list([data["spec"]], "pending dump")[0]
        return cls(
            spec, PresignedUpload.from_dict(data["upload"]), str(data["job"]), datetime.fromisoformat(data["deadline"])
        )


class DumpJobs:
    """Runs dumps as Jobs: ``start`` creates the Job and its URL Secret, ``observe`` says how it is going, ``settle``
    records the outcome (completing or aborting the upload) and deletes the Job and the Secret."""

    def __init__(self, client: Any, uploads: DumpUploads) -> None:
        self._client = client
        self._uploads = uploads

    def start(self, cluster: str, backup_id: str, spec: DumpSpec, now: datetime) -> PendingDump:
        """Raises ``DumpError`` naming the dump when it cannot start (no target pod, the API refused the Job)."""
        where = f"dump {spec.namespace}/{spec.name}"
        host = spec.service_host() or self._pod_address(spec, where)
        try:
            run, upload = self._uploads.start(cluster, backup_id, spec)
        except StorageError as exc:
            raise DumpError(f"{where}: the upload could not be opened: {exc}") from exc
        job = dump_job(spec, run, host)
        try:
            with contextlib.suppress(AlreadyExists):  # a duplicate delivery created it; its URLs are as good
                self._client.create(JOBS, job, spec.namespace)
            created = self._client.get_object(JOBS, job["metadata"]["name"], spec.namespace) or {}
            secret = upload_secret(spec, run)
            # Owned by the Job, so the cluster deletes the URLs with it even if Lifeboat never comes back.
            owner = {
                "apiVersion": "batch/v1",
                "kind": "Job",
                "name": job["metadata"]["name"],
                "uid": (created.get("metadata") or {}).get("uid", ""),
            }
            secret["metadata"]["ownerReferences"] = [owner]
            with contextlib.suppress(AlreadyExists):
                self._client.create(SECRETS, secret, spec.namespace)
        except KubeError as exc:
            self._uploads.abort(upload)
            raise DumpError(f"{where}: the Job could not be created in {spec.namespace}: {exc}") from exc
        deadline = now + timedelta(seconds=spec.timeout_s + START_MARGIN_S)
        return PendingDump(spec, upload, job_name(backup_id, spec), deadline)

    def observe(self, pending: PendingDump, now: datetime) -> tuple[str, str]:
        """(running | succeeded | failed, why it failed)."""
        job = self._client.get_object(JOBS, pending.job, pending.spec.namespace)
        if job is None:
            return FAILED, f"the Job {pending.spec.namespace}/{pending.job} is gone"
        status = job.get("status") or {}
        if int(status.get("succeeded") or 0) > 0:
            return SUCCEEDED, ""
        failed = [
            c.get("message") or c.get("reason") or "failed"
            for c in status.get("conditions") or ()
            if c.get("type") == "Failed" and c.get("status") == "True"
        ]
        if failed or int(status.get("failed") or 0) > 0:
            # The containers' own words say why: the engine's tool's error, the uploader's "exit status N" of it.
            why = "; ".join([*failed[:1], *termination_messages(self._client, pending.spec.namespace, pending.job)])
            return FAILED, f"the Job {pending.job} failed" + (f": {why}" if why else "")
        if now >= pending.deadline:
            return FAILED, f"the Job {pending.job} did not finish within {pending.spec.timeout_s}s"
        return RUNNING, ""

    def settle(self, pending: PendingDump, state: str, error: str = "") -> DumpRecord:
        """The manifest's record of a Job that ended; the Job and its Secret are deleted either way."""
        where = f"dump {pending.spec.namespace}/{pending.spec.name}"
        try:
            if state == SUCCEEDED:
                try:
                    return self._uploads.finish(pending.spec, pending.upload)
                except DumpError as exc:
                    return DumpRecord.failed(pending.spec, str(exc))
            self._uploads.abort(pending.upload)
            return DumpRecord.failed(pending.spec, f"{where}: {error or 'the Job did not succeed'}")
        finally:
            self._delete(pending)

    def _delete(self, pending: PendingDump) -> None:
        ns = pending.spec.namespace
        for resource in (JOBS, SECRETS):
            with contextlib.suppress(NotFound):
                self._client.delete(resource, pending.job, ns, propagation_policy="Background")

    def _pod_address(self, spec: DumpSpec, where: str) -> str:
        try:
            path = PODS.collection_path(spec.namespace)
            pods = self._client.get(path, {"labelSelector": spec.selector}).get("items") or []
        except KubeError as exc:
            raise DumpError(f"{where}: listing pods {spec.selector!r} in {spec.namespace} failed: {exc}") from exc
        ready = sorted(
            (
                p
                for p in pods
                if (p.get("status") or {}).get("phase") == "Running" and (p.get("status") or {}).get("podIP")
            ),
            key=lambda p: p["metadata"]["name"],
        )
        if not ready:
            raise DumpError(f"{where}: no running pod in {spec.namespace} matches {spec.selector!r}")
        return str(ready[0]["status"]["podIP"])


def termination_messages(client: Any, namespace: str, job: str) -> list[str]:
    """The termination messages of the Job's pods' containers (``name: message``, each at most 2000 characters)."""
    for label in JOB_NAME_LABELS:
        try:
            pods = client.get(PODS.collection_path(namespace), {"labelSelector": f"{label}={job}"})
        except KubeError:
            return []  # the Job's own condition still says it failed
        messages = [
            (str(s.get("name") or ""), str(((s.get("state") or {}).get("terminated") or {}).get("message") or ""))
            for p in pods.get("items") or ()
            for s in (p.get("status") or {}).get("containerStatuses") or ()
        ]
        if any(m.strip() for _, m in messages):
            return [f"{name}: {m.strip()[-2000:]}" if name else m.strip()[-2000:] for name, m in messages if m.strip()]
    return []
