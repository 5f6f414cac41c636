"""A dump's run in the cluster as data: the Secret with its presigned URLs and the Job that dumps into them."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any

from chalicelib.core.dump_scripts import DUMP_COMMANDS, PREFLIGHT, UPLOAD
from chalicelib.core.dumps import DEFAULT_USERS, DumpSpec
from chalicelib.core.scope import OWN_SNAPSHOT_LABEL

BACKUP_ID_LABEL = OWN_SNAPSHOT_LABEL
DUMP_LABEL = "lifeboat.io/dump"
MANAGED_BY = {"app.kubernetes.io/managed-by": "lifeboat"}
UPLOAD_MOUNT = "/var/run/lifeboat/upload"  # the run's Secret: ``parts`` (one URL a line) and ``report``
WORK_MOUNT = "/var/run/lifeboat/work"  # an emptyDir: one part at a time, the checksum pipes
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
    env = [
        *connection_env(spec, host),
        {"name": "LIFEBOAT_UPLOAD_DIR", "value": UPLOAD_MOUNT},
        {"name": "LIFEBOAT_WORK", "value": WORK_MOUNT},
        {"name": "LIFEBOAT_PART_SIZE", "value": str(run.part_size)},
        {"name": "LIFEBOAT_SNAPSHOT", "value": name},
    ]
    container = {
        "name": "dump",
        "image": spec.effective_image,
        "command": ["bash", "-c", dump_script(spec)],
        "env": env,
        "volumeMounts": [
            {"name": "upload", "mountPath": UPLOAD_MOUNT, "readOnly": True},
            {"name": "work", "mountPath": WORK_MOUNT},
        ],
        "terminationMessagePolicy": "File",
    }
    pod_labels = labels(run.backup_id, spec)
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {"name": name, "namespace": spec.namespace, "labels": pod_labels},
        "spec": {
            "backoffLimit": 0,  # a second attempt would need fresh URLs: Lifeboat decides, not the Job controller
            "activeDeadlineSeconds": spec.timeout_s,
            "ttlSecondsAfterFinished": JOB_TTL_S,
            "template": {
                "metadata": {"labels": pod_labels},
                "spec": {
                    "restartPolicy": "Never",
                    "automountServiceAccountToken": False,  # the Job needs no Kubernetes API
                    "containers": [container],
                    "volumes": [
                        {"name": "upload", "secret": {"secretName": name, "defaultMode": 0o400}},
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
    """The bash script the dump Job runs (its environment as ``dump_job`` sets it)."""
    return "set -euo pipefail\n" + PREFLIGHT + DUMP_COMMANDS[spec.engine] + UPLOAD
