"""Driving sharded backups in process: the backup-jobs queue as a list, jobs, and comparing what backups wrote."""

from __future__ import annotations

import uuid
from collections import deque
from typing import Any

from chalicelib.backup.errors import RetryLater
from chalicelib.backup.worker import handle_message
from chalicelib.core.jobs import BackupJob, ClusterRef
from chalicelib.core.resources import Resource
from chalicelib.core.scope import BackupScope
from chalicelib.services import Services
from chalicelib.settings import Settings
from tests.conftest import TEST_BUCKET, TEST_REGION, TEST_TABLE

CM = Resource("", "v1", "ConfigMap", "configmaps", True, frozenset({"create", "list"}))


class ListQueue:
    """The backup-jobs queue as a list: what was sent, with delays, handled first in, first out."""

    def __init__(self) -> None:
        self.messages: deque[dict[str, Any]] = deque()
        self.sent: list[tuple[dict[str, Any], int]] = []

    def send(self, message: dict[str, Any], *, delay_s: int = 0) -> None:
        self.messages.append(message)
        self.sent.append((message, delay_s))

    def send_many(self, messages: Any) -> int:
        count = 0
        for message in messages:
            self.send(message)
            count += 1
        return count


def drain(service: Any, queue: ListQueue, *, remaining_ms: Any = None, stop: Any = None) -> list[dict[str, Any]]:
    """Handle messages until the queue is empty (or ``stop(message)`` says so); RetryLater goes to the back."""
    results = []
    for _ in range(5000):
        if not queue.messages or (stop is not None and stop(queue.messages[0])):
            return results
        message = queue.messages.popleft()
        try:
            results.append(handle_message(service, message, remaining_ms=remaining_ms))
        except RetryLater:
            queue.messages.append(message)
    raise AssertionError("the queue never drained")


def make_services(prefix: str) -> Services:
    return Services(Settings(table=TEST_TABLE, bucket=TEST_BUCKET, region=TEST_REGION, repository_prefix=prefix))


def make_job(
    kubeconfig_path: Any, cluster: str, namespaces: list[str], *, shard: bool | None, **scope: Any
) -> BackupJob:
    auth = {"type": "kubeconfig", "kubeconfig": kubeconfig_path.read_text()}
    return BackupJob(
        job_id=f"t-{uuid.uuid4()}",
        cluster=ClusterRef(cluster, auth),
        scope=BackupScope(include_namespaces=tuple(namespaces), **scope),
        shard=shard,
    )


def one_shot_backup(services: Services, kubeconfig_path: Any, namespaces: list[str], **scope: Any) -> Any:
    record = (
        services.backup_service().run(make_job(kubeconfig_path, "oneshot", namespaces, shard=False, **scope)).record
    )
    assert record.state == "Completed", record.failure or record.errors
    return manifest_of(services, record)


def sharded_backup(services: Services, job: BackupJob, queue: ListQueue, **options: Any) -> Any:
    remaining_ms = options.pop("remaining_ms", None)
    service = services.backup_service(queue=queue, **options)
    started = handle_message(service, job.to_dict())
    assert started["status"] == "Running", started
    results = drain(service, queue, remaining_ms=remaining_ms)
    record = services.catalog().get(job.cluster.name, started["backup_id"])
    return record, results


def manifest_of(services: Services, record: Any) -> Any:
    from chalicelib.repository import RepositoryReader

    reader = RepositoryReader(services.repository())
    return reader.load_manifest(record.cluster, record.backup_id)


def assert_same_backup(a: Any, b: Any) -> None:
    assert a.root_tree == b.root_tree
    assert a.kinds == b.kinds
    for key in ("objects", "trees", "namespaces", "errors"):
        assert a.counts[key] == b.counts[key], key
    assert a.scope == b.scope and a.errors == b.errors


def shard_records(services: Services) -> Any:
    from chalicelib.catalog.shards import ShardCatalog

    return ShardCatalog(services.client("dynamodb"), TEST_TABLE)


def assert_self_contained(services: Services, manifest: Any) -> None:
    """Every blob the manifest reaches is in an index file it names, and the repository checks clean."""
    from chalicelib.repository import RepositoryReader, check_repository

    reader = RepositoryReader(services.repository())
    holders: dict[str, set[str]] = {}
    for index_id, index_file in reader.index_files().items():
        for blobs in index_file.packs.values():
            for blob in blobs:
                holders.setdefault(blob[0], set()).add(index_id)
    root = reader.root(manifest)
    reached = {manifest.root_tree, *root.values(), *(entry.blob for _, entry in reader.walk(manifest))}
    named = set(manifest.index_files)
    assert all(holders.get(blob, set()) & named for blob in reached), "a reached blob's index file is not named"
    report = check_repository(reader, read_data=True)
    assert report.ok, report.problems
