"""The cost model's request counts against the requests a backup, a replication and a restore really make (moto,
the test server)."""

from __future__ import annotations

import collections
import os
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from typing import Any

import pytest

from bench.harness import counting
from chalicelib.core.cost.model import ClusterShape, backup_requests, restore_requests
from chalicelib.core.jobs import BackupJob, ClusterRef
from chalicelib.core.resources import Resource
from chalicelib.core.scope import BackupScope

CM = Resource("", "v1", "ConfigMap", "configmaps", True, frozenset({"get", "patch"}))
OBJECTS = 400
SPREAD_PER_NAMESPACE = 100


def _fill(kube_client: Any, count: int, value: Callable[[], str]) -> str:
    """A new namespace holding ``count`` ConfigMaps, each with one ``value()``."""
    ns = f"cost-{uuid.uuid4().hex[:6]}"
    kube_client.create_namespace(ns)
    for i in range(count):
        body = {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": {"name": f"cm-{i}", "namespace": ns},
            "data": {"v": value()},
        }
        kube_client.create(CM, body, namespace=ns)
    return ns


@pytest.fixture
def many(kube_client: Any) -> Iterator[str]:
    ns = _fill(kube_client, OBJECTS, lambda: uuid.uuid4().hex * 8)
    yield ns
    kube_client.delete_namespace(ns)


@pytest.fixture
def spread(kube_client: Any) -> Iterator[list[str]]:
    """Four namespaces of 100 ConfigMaps holding 24 KB of random hex each: two packs (about 5 MB after zstd)."""
    names = [_fill(kube_client, SPREAD_PER_NAMESPACE, lambda: os.urandom(12_000).hex()) for _ in range(4)]
    yield names
    for ns in names:
        kube_client.delete_namespace(ns)
        kube_client.delete_namespace(f"{ns}-restored")


def _job(kubeconfig_path: Any, *namespaces: str) -> BackupJob:
    auth = {"type": "kubeconfig", "kubeconfig": kubeconfig_path.read_text()}
    return BackupJob(
        job_id=f"t-{uuid.uuid4()}", cluster=ClusterRef("cost", auth), scope=BackupScope(include_namespaces=namespaces)
    )


def _measured(calls: collections.Counter[str]) -> dict[str, int]:
    return {
        "s3_put": calls["s3.PutObject"] + calls["s3.CreateMultipartUpload"],
        "s3_get": calls["s3.GetObject"] + calls["s3.HeadObject"],
        "s3_list": calls["s3.ListObjectsV2"],
        "ddb_write": sum(
            calls[f"dynamodb.{op}"] for op in ("PutItem", "UpdateItem", "DeleteItem", "TransactWriteItems")
        ),
        "ddb_read": sum(calls[f"dynamodb.{op}"] for op in ("GetItem", "Query", "Scan")),
        "events": calls["events.PutEvents"],
    }


def _agree(predicted: Any, measured: dict[str, int], what: str) -> None:
    for key, count in measured.items():
        guess = getattr(predicted, key)
        assert abs(guess - count) <= 0.1 * count, f"{what}: {key} predicted {guess}, measured {count}"


def test_predicted_puts_agree_with_measured(services: Any, kubeconfig_path: Any, many: str, kube_client: Any) -> None:
    from chalicelib.repository import last_loaded

    svc = services.backup_service()
    measured: dict[str, collections.Counter[str]] = {}
    last_loaded.LAST_LOADED.clear()
    with counting() as calls:
        record = svc.run(_job(kubeconfig_path, many)).record
    assert record.state == "Completed", record.failure
    measured["full"] = calls
    # The model counts a cold worker's requests: each backup runs as the first of its process.
    last_loaded.LAST_LOADED.clear()
    with counting() as calls:
        svc.run(_job(kubeconfig_path, many))
    measured["noop"] = calls
    for i in range(OBJECTS // 100):
        kube_client.patch(CM, f"cm-{i}", {"data": {"changed": uuid.uuid4().hex}}, namespace=many)
    last_loaded.LAST_LOADED.clear()
    with counting() as calls:
        svc.run(_job(kubeconfig_path, many))
    measured["one_percent"] = calls
    shape = ClusterShape(objects=record.counts["objects"], namespaces=1)
    _agree(backup_requests(shape, 1.0, new_repository=True), _measured(measured["full"]), "full backup")
    _agree(backup_requests(shape, 0.0), _measured(measured["noop"]), "no-op incremental")
    _agree(backup_requests(shape, 0.01), _measured(measured["one_percent"]), "1% incremental")


def test_predicted_replication_requests_agree_with_measured(aws: None, table: str) -> None:
    from chalicelib.core.cost.model import Requests, replication_requests
    from chalicelib.replication.worker import handle_messages
    from tests.support.replication import make_env, objects, write_backup

    env = make_env()
    full, incr = "20260101T000000Z-aaaaaa", "20260102T000000Z-bbbbbb"
    for backup_id, objs, parent in ((full, objects(), None), (incr, objects(changed=["app-0/config-001"]), full)):
        with counting() as writes:
            write_backup(env, backup_id, objs, parent=parent)
        with counting() as calls:
            handle_messages(env.services.replicator(), env.drain())
        written = Requests(s3_put=writes["s3.PutObject"])
        predicted = replication_requests(written, incremental=parent is not None)
        measured = {
            "s3_copy": calls["s3.CopyObject"],
            "s3_get": calls["s3.GetObject"] + calls["s3.HeadObject"],
            "s3_list": calls["s3.ListObjectsV2"],
            "ddb_write": calls["dynamodb.UpdateItem"] + calls["dynamodb.PutItem"],
            "sqs": calls["sqs.ReceiveMessage"] + calls["sqs.DeleteMessage"] + calls["sqs.DeleteMessageBatch"],
            "events": calls["events.PutEvents"],
        }
        _agree(predicted, measured, f"replication of {backup_id}")


def test_predicted_restore_requests_agree_with_measured(
    services: Any, kubeconfig_path: Any, spread: list[str], kube_client: Any
) -> None:
    """A restore job of a full backup, from the API's transaction creating it to its event (SQS is Lambda's)."""
    from chalicelib.catalog.restore_records import RestoreRecord
    from chalicelib.core.restore_jobs import RestoreState
    from chalicelib.core.restore_options import RestoreOptions
    from chalicelib.repository import RepositoryReader
    from chalicelib.restore.service import RestoreService
    from chalicelib.restore.worker import RestoreWorker

    record = services.backup_service().run(_job(kubeconfig_path, *spread)).record
    assert record.state == "Completed", record.failure
    restore_id = f"r-20261201T000000Z-{uuid.uuid4().hex[:8]}"
    mapping = {ns: f"{ns}-restored" for ns in spread}
    catalog = services.restore_catalog()
    with counting() as calls:
        job = RestoreRecord(
            restore_id=restore_id,
            state=RestoreState.PENDING,
            backup_cluster="cost",
            backup_id=record.backup_id,
            target_cluster={"name": "dr", "auth": {"type": "kubeconfig_secret", "secret_id": "lifeboat/dr"}},
            options=RestoreOptions.from_dict({"restore_id": restore_id, "namespace_mapping": mapping}).to_dict(),
            dry_run=False,
            created_at="2026-12-01T00:00:00.000Z",
        )
        catalog.create(job, idem_key=restore_id, request_hash="h", now=datetime.now(UTC))
        worker = RestoreWorker(
            catalog,
            lambda: RepositoryReader(services.repository()),
            lambda name: kube_client,
            RestoreService,
            services.restore_events(),
            services.restore_queue(),
        )
        outcome = worker.handle(restore_id)
    objects = record.counts["objects"]
    assert outcome["state"] == "Completed" and outcome["counts"] == {"created": objects}
    raw, packed = record.stats["bytes_raw"], record.stats["bytes_uploaded"]
    shape = ClusterShape(
        objects=objects, avg_object_bytes=raw // objects, compression=packed / raw, namespaces=len(spread)
    )
    predicted = restore_requests(shape)
    assert predicted.s3_get >= 7, "two packs of objects, the trees, the root, the index, manifest and config"
    _agree(predicted, _measured(calls), "restore of a full backup")
