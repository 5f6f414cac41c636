"""A dump's run in the cluster as data: the Secret with its presigned URLs and the Job that dumps into them.

The Job's pod has two containers sharing an emptyDir: ``dump`` runs the engine's tool in the engine's image (it gets
the database credentials, never the URLs) and ``upload`` runs curl in the uploader image (it gets the URLs, never
the credentials); ``core/dump_transfer.py`` has their bash and how they hand the stream over.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any

from chalicelib.core.dump_transfer import engine_dump_script, uploader_script
from chalicelib.core.dumps import DEFAULT_USERS, DumpSpec
from chalicelib.core.scope import OWN_SNAPSHOT_LABEL

BACKUP_ID_LABEL = OWN_SNAPSHOT_LABEL
DUMP_LABEL = "lifeboat.io/dump"
MANAGED_BY = {"app.kubernetes.io/managed-by": "lifeboat"}
UPLOAD_MOUNT = "/var/run/lifeboat/upload"  # the run's Secret: ``parts`` (one URL a line) and ``report``
WORK_MOUNT = "/var/run/lifeboat/work"  # the emptyDir both containers share: the FIFO, status files, one part
DEFAULT_PART_SIZE = 64 << 20
JOB_TTL_S = 3600  # Lifeboat deletes the Job itself; the TTL only cleans up after a backup that was abandoned


@dataclass(frozen=True)
class DumpRun:
    """The presigned URLs of one run of one dump: part N to ``part_urls[N-1]``, the JSON report to ``report_url``."""

    backup_id: str
    key: str  # the artifact's key, relative to the repository prefix
    part_urls: tuple[str, ...]
    report_url: str
    part_size: int = DEFAULT_PART_SIZE


def job_name(backup_id: str, spec: DumpSpec) -> str:
    """``lifeboat-dump-<name>-<hash>``: one Job per backup and dump, a valid DNS label."""
    digest = hashlib.sha256(f"{backup_id}/{spec.namespace}/{spec.name}".encode()).hexdigest()[:8]
    return f"lifeboat-dump-{spec.name[:40]}-{digest}"


def labels(backup_id: str, spec: DumpSpec) -> dict[str, str]:
    return {**MANAGED_BY, BACKUP_ID_LABEL: backup_id, DUMP_LABEL: spec.name}


def upload_secret(spec: DumpSpec, run: DumpRun) -> dict[str, Any]:
    """The Secret holding the run's presigned URLs; it dies with the Job (owner reference set by the caller)."""
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {
            "name": job_name(run.backup_id, spec),
            "namespace": spec.namespace,
            "labels": labels(run.backup_id, spec),
        },
        "type": "Opaque",
        "stringData": {"parts": "\n".join(run.part_urls) + "\n", "report": run.report_url + "\n"},
    }


def dump_job(spec: DumpSpec, run: DumpRun, host: str) -> dict[str, Any]:
    """The Job that dumps ``spec`` from ``host`` (the Service's DNS name, or a pod's address) into ``run``'s URLs."""
    name = job_name(run.backup_id, spec)
    work = {"name": "work", "mountPath": WORK_MOUNT}
    engine = {
        "name": "dump",
        "image": spec.effective_image,
        "command": ["bash", "-c", dump_script(spec)],
        "env": [*connection_env(spec, host), *run_env(spec), {"name": "LIFEBOAT_SNAPSHOT", "value": name}],
        "volumeMounts": [work],
        # The tool's last words (pg_dump's error) become the container's termination message when it fails.
        "terminationMessagePolicy": "FallbackToLogsOnError",
    }
    uploader = {
        "name": "upload",
        "image": spec.effective_uploader_image,
        "command": ["bash", "-c", upload_script(spec)],
        "env": [
            *run_env(spec),
            {"name": "LIFEBOAT_UPLOAD_DIR", "value": UPLOAD_MOUNT},
            {"name": "LIFEBOAT_PART_SIZE", "value": str(run.part_size)},
        ],
        "volumeMounts": [{"name": "upload", "mountPath": UPLOAD_MOUNT, "readOnly": True}, work],
        "terminationMessagePolicy": "FallbackToLogsOnError",  # the report, or why the dump failed
    }
    # A second attempt would need fresh URLs: Lifeboat decides, not the Job controller.
    pod_labels = labels(run.backup_id, spec)
    return two_container_job(name, spec.namespace, spec.timeout_s, pod_labels, (engine, uploader), "upload")


def run_env(spec: DumpSpec) -> list[dict[str, Any]]:
    """What both containers of a pod are told: the shared directory and the deadline they both keep."""
    return [{"name": "LIFEBOAT_WORK", "value": WORK_MOUNT}, {"name": "LIFEBOAT_TIMEOUT", "value": str(spec.timeout_s)}]


def two_container_job(
    name: str,
    namespace: str,
    timeout_s: int,
    pod_labels: dict[str, str],
    containers: tuple[dict[str, Any], ...],
    url_volume: str,
) -> dict[str, Any]:
    """The Job around a dump's or restore's pod: one attempt (``backoffLimit: 0``, ``restartPolicy: Never``, so a
    container that fails fails the pod and the Job), the dump's timeout, no service account token, and the run's
    Secret mounted as ``url_volume`` beside the emptyDir ``work``."""
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {"name": name, "namespace": namespace, "labels": pod_labels},
        "spec": {
            "backoffLimit": 0,
            "activeDeadlineSeconds": timeout_s,
            "ttlSecondsAfterFinished": JOB_TTL_S,
            "template": {
                "metadata": {"labels": pod_labels},
                "spec": {
                    "restartPolicy": "Never",
                    "automountServiceAccountToken": False,  # the Job needs no Kubernetes API
                    "containers": list(containers),
                    "volumes": [
                        {"name": url_volume, "secret": {"secretName": name, "defaultMode": 0o400}},
                        {"name": "work", "emptyDir": {}},
                    ],
                },
            },
        },
    }


def connection_env(spec: DumpSpec, host: str) -> list[dict[str, Any]]:
    env: list[dict[str, Any]] = [
        {"name": "LIFEBOAT_HOST", "value": host},
        {"name": "LIFEBOAT_PORT", "value": str(spec.effective_port)},
        {"name": "LIFEBOAT_DATABASES", "value": " ".join(spec.databases)},
    ]
    c = spec.credentials
    if c is None:
        env.append({"name": "LIFEBOAT_USER", "value": DEFAULT_USERS[spec.engine]})
        return env
    if c.user_key:
        env.append({"name": "LIFEBOAT_USER", "valueFrom": {"secretKeyRef": {"name": c.secret, "key": c.user_key}}})
    else:
        env.append({"name": "LIFEBOAT_USER", "value": c.user or DEFAULT_USERS[spec.engine]})
    env.append({"name": "LIFEBOAT_PASSWORD", "valueFrom": {"secretKeyRef": {"name": c.secret, "key": c.password_key}}})
    return env


def dump_script(spec: DumpSpec) -> str:
    """The bash of the dump's engine container (its environment as ``dump_job`` sets it)."""
    return engine_dump_script(spec.engine)


def upload_script(spec: DumpSpec) -> str:
    """The bash of the dump's uploader container."""
    return uploader_script(spec.engine)
