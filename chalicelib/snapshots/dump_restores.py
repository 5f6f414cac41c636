"""Restoring a database dump in the cluster: the mirror Job and its URL Secret, looked at, and why it failed."""

from __future__ import annotations

import contextlib
from typing import Any

from chalicelib.core.dump_restore_job import RestoreTarget, restore_job, restore_secret
from chalicelib.core.dumps import DumpSpec
from chalicelib.kube.errors import AlreadyExists, KubeError, NotFound
from chalicelib.snapshots.dump_jobs import FAILED, JOBS, RUNNING, SECRETS, SUCCEEDED, termination_messages
from chalicelib.snapshots.dumps import DumpError


class DumpRestores:
    """Restore Jobs: ``start`` creates one with its Secret, ``observe`` says how it is going, ``delete`` cleans up."""

    def __init__(self, client: Any) -> None:
        self._client = client

    def start(self, backup_id: str, spec: DumpSpec, target: RestoreTarget, url: str) -> str:
        """The Job's name. Raises ``DumpError`` naming the Job when it cannot be created (or one of its name exists)."""
        job = restore_job(backup_id, spec, target)
        name, ns = str(job["metadata"]["name"]), target.namespace
        try:
            created = self._client.create(JOBS, job, ns)
        except AlreadyExists as exc:
            # A restore into the same target that is still running, or one that was left behind: never run two.
            raise DumpError(
                f"a restore Job {ns}/{name} already exists (a restore of this dump into {target.service} is running "
                "or was left behind); delete it and try again"
            ) from exc
        except KubeError as exc:
            raise DumpError(f"the restore Job {ns}/{name} could not be created: {exc}") from exc
        secret = restore_secret(backup_id, spec, target, url)
        # Owned by the Job, so the cluster deletes the URL with it even if this process never comes back.
        uid = ((created or {}).get("metadata") or {}).get("uid", "")
        secret["metadata"]["ownerReferences"] = [{"apiVersion": "batch/v1", "kind": "Job", "name": name, "uid": uid}]
        try:
            try:
                self._client.create(SECRETS, secret, ns)
            except AlreadyExists:  # left by an earlier Job of this name: its URL is stale, this run's replaces it
                self._client.delete(SECRETS, name, ns)
                self._client.create(SECRETS, secret, ns)
        except KubeError as exc:
            self.delete(ns, name)
            raise DumpError(f"the Secret of the restore Job {ns}/{name} could not be created: {exc}") from exc
        return name

    def observe(self, namespace: str, job: str) -> tuple[str, str]:
        """(running | succeeded | failed, why it failed: the Job's condition and its pod's termination message)."""
        found = self._client.get_object(JOBS, job, namespace)
        if found is None:
            return FAILED, f"the restore Job {namespace}/{job} is gone"
        status = found.get("status") or {}
        if int(status.get("succeeded") or 0) > 0:
            return SUCCEEDED, ""
        failed = [
            c.get("message") or c.get("reason") or "failed"
            for c in status.get("conditions") or ()
            if c.get("type") == "Failed" and c.get("status") == "True"
        ]
        if failed or int(status.get("failed") or 0) > 0:
            why = "; ".join([*failed[:1], *termination_messages(self._client, namespace, job)]) or "failed"
            return FAILED, f"the restore Job {namespace}/{job} failed: {why}"
        return RUNNING, ""

    def delete(self, namespace: str, job: str) -> None:
        """Delete the Job, its pods and its Secret (an already deleted one is fine)."""
        for resource in (JOBS, SECRETS):
            with contextlib.suppress(NotFound):
                self._client.delete(resource, job, namespace, propagation_policy="Background")
