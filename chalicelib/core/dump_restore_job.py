"""The mirror of a dump Job as data: the Job that restores a dump's artifact into a target, and its URL Secret."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, replace
from typing import Any

from chalicelib.core.dump_job import BACKUP_ID_LABEL, MANAGED_BY, WORK_MOUNT, connection_env, run_env, two_container_job
from chalicelib.core.dump_transfer import downloader_script, engine_restore_script
from chalicelib.core.dumps import ELASTICSEARCH, REDIS, Credentials, DumpSpec
from chalicelib.core.errors import InvalidPolicy

RESTORE_LABEL = "lifeboat.io/dump-restore"
DOWNLOAD_MOUNT = "/var/run/lifeboat/download"  # the run's Secret: ``url`` (the artifact's presigned GET URL)


@dataclass(frozen=True)
class RestoreTarget:
    """Where a dump is restored: a Service in a namespace, the database in it, and the Secret with its credentials."""

    namespace: str
    service: str
    database: str = ""
    credentials: Credentials | None = None
    port: int = 0
    create_database: bool = False  # create ``database`` first (postgres, mysql): a scratch one, for verification


def restore_job_name(backup_id: str, spec: DumpSpec, target: RestoreTarget) -> str:
    """``lifeboat-restore-<name>-<hash>``: one Job per backup, dump and target, a valid DNS label."""
    digest = hashlib.sha256(
        f"{backup_id}/{spec.namespace}/{spec.name}/{target.namespace}/{target.service}/{target.database}".encode()
    ).hexdigest()[:8]
    return f"lifeboat-restore-{spec.name[:37]}-{digest}"


def restore_labels(backup_id: str, spec: DumpSpec) -> dict[str, str]:
    return {**MANAGED_BY, BACKUP_ID_LABEL: backup_id, RESTORE_LABEL: spec.name}


def restore_secret(backup_id: str, spec: DumpSpec, target: RestoreTarget, url: str) -> dict[str, Any]:
    """The Secret holding the artifact's presigned GET URL (a bearer token until it expires), the Job's alone."""
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {
            "name": restore_job_name(backup_id, spec, target),
            "namespace": target.namespace,
            "labels": restore_labels(backup_id, spec),
        },
        "type": "Opaque",
        "stringData": {"url": url + "\n"},
    }


def restore_database(spec: DumpSpec, target: RestoreTarget) -> str:
    """The database a restore goes into: the target's, else the dump's one (an Elasticsearch dump's indices never)."""
    if target.database or spec.engine == ELASTICSEARCH:
        return target.database
    return spec.databases[0] if len(spec.databases) == 1 else ""


def restore_job(backup_id: str, spec: DumpSpec, target: RestoreTarget) -> dict[str, Any]:
    """The Job that restores ``spec``'s artifact (its URL in ``restore_secret``) into ``target`` with the engine's tool.

    The connection is the dump's own, pointed at the target: its Service's DNS name, the target's database (the
    dump's when none is given) and the target's credentials (the dump's when none are given), by ``secretKeyRef``.
    Redis keeps each key's database number, so a target database is refused; for Elasticsearch the database is
    only the target's (a prefix for the restored indices), never the dump's index list.
    """
    name = restore_job_name(backup_id, spec, target)
    if spec.engine == REDIS and target.database:
        raise InvalidPolicy(
            [f"dump {spec.namespace}/{spec.name}: a redis restore keeps each key's database number; give no database"]
        )
    database = restore_database(spec, target)
    into = replace(
        spec,
        namespace=target.namespace,
        service=target.service,
        selector="",
        port=target.port or spec.port,
        credentials=target.credentials or spec.credentials,
        databases=(database,) if database else (),
    )
    env = [
        *connection_env(into, into.service_host() or target.service),
        *run_env(spec),
        {"name": "LIFEBOAT_SOURCE_DATABASE", "value": spec.databases[0] if spec.databases else ""},
    ]
    if target.create_database and database:
        env.append({"name": "LIFEBOAT_CREATE_DATABASE", "value": "1"})
    engine = {
        "name": "restore",
        "image": spec.effective_image,
        "command": ["bash", "-c", restore_script(spec)],
        "env": env,
        "volumeMounts": [{"name": "work", "mountPath": WORK_MOUNT}],
        # The tool's last words (pg_restore's error) become the pod's termination message when it fails.
        "terminationMessagePolicy": "FallbackToLogsOnError",
    }
    downloader = {
        "name": "download",
        "image": spec.effective_uploader_image,
        "command": ["bash", "-c", download_script(spec)],
        "env": [*run_env(spec), {"name": "LIFEBOAT_GET_URL_FILE", "value": f"{DOWNLOAD_MOUNT}/url"}],
        "volumeMounts": [
            {"name": "download", "mountPath": DOWNLOAD_MOUNT, "readOnly": True},
            {"name": "work", "mountPath": WORK_MOUNT},
        ],
        "terminationMessagePolicy": "FallbackToLogsOnError",
    }
    # A restore half applied is not retried blindly (backoffLimit 0): the user decides.
    pod_labels = restore_labels(backup_id, spec)
    return two_container_job(name, target.namespace, spec.timeout_s, pod_labels, (engine, downloader), "download")


def restore_script(spec: DumpSpec) -> str:
    """The bash of the restore's engine container: ``restore.fifo`` (the downloader's) into the engine's tool.

    Environment: LIFEBOAT_HOST/PORT/USER/PASSWORD, LIFEBOAT_DATABASES (the database to restore into),
    LIFEBOAT_WORK, LIFEBOAT_TIMEOUT. Redis: a scratch server in the pod loads the RDB and MIGRATEs every key
    to the target. Elasticsearch: the snapshot the artifact names is restored by the target's ``_restore`` API from
    its repository ``lifeboat``, each index renamed ``<database>_<index>`` when a database (a prefix) is given.
    """
    return engine_restore_script(spec.engine)


def download_script(spec: DumpSpec) -> str:
    """The bash of the restore's downloader container: the presigned GET (LIFEBOAT_GET_URL_FILE) into the FIFO."""
    return downloader_script(spec.engine)
