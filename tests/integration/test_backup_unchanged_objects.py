"""Incremental backups that reuse unchanged objects' blobs end in the same trees and manifest as full ones."""

from __future__ import annotations

import time
import uuid
from typing import Any

import pytest

from chalicelib.backup import BackupService
from chalicelib.core.jobs import BackupJob, ClusterRef
from chalicelib.core.resources import Resource
from chalicelib.core.scope import BackupScope
from chalicelib.services import Services

CM = Resource("", "v1", "ConfigMap", "configmaps", True, frozenset({"get", "patch"}))


@pytest.fixture
def trees_read(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The backups whose trees a backup reads as its parent's objects, in order."""
    from chalicelib.backup import opening

    read: list[str] = []
    load_prior = opening.load_prior

    def recording(reader: Any, manifest: Any, cluster_uid: str | None) -> Any:
        read.append(manifest.backup_id)
        return load_prior(reader, manifest, cluster_uid)

    monkeypatch.setattr(opening, "load_prior", recording)
    return read


def _job(kubeconfig_path: Any, namespaces: list[str]) -> BackupJob:
    auth = {"type": "kubeconfig", "kubeconfig": kubeconfig_path.read_text()}
    return BackupJob(
        job_id=f"t-{uuid.uuid4()}",
        cluster=ClusterRef("reuse-cluster", auth),
        scope=BackupScope(include_namespaces=tuple(namespaces)),
    )


def _manifest(services: Services, record: Any) -> Any:
    from chalicelib.repository import RepositoryReader

    assert record.state == "Completed", record.failure or record.errors
    return RepositoryReader(services.repository()).load_manifest(record.cluster, record.backup_id)


def _change_one_configmap(kube_client: Any, namespace: str) -> None:
    existing = [o for o in kube_client.get(CM.collection_path(namespace))["items"]
                if (o["metadata"].get("labels") or {}).get("lifeboat.io/exclude") != "true"]
    kube_client.patch(CM, existing[0]["metadata"]["name"], {"data": {"changed": uuid.uuid4().hex}},
                      namespace=namespace)


def test_an_incremental_after_a_change_equals_a_full_backup_of_the_same_state(services, kubeconfig_path, app_ns,
                                                                             kube_client):
    reusing = services.backup_service()
    first = _manifest(services, reusing.run(_job(kubeconfig_path, app_ns.namespaces)).record)
    assert first.cluster_uid, "the test server has a kube-system namespace: the cluster is known"
    assert first.stats["objects_reused"] == 0

    _change_one_configmap(kube_client, app_ns.namespaces[0])
    incremental = _manifest(services, reusing.run(_job(kubeconfig_path, app_ns.namespaces)).record)
    # Every object but the changed one came from the parent's trees...
    assert incremental.stats["objects_reused"] == incremental.counts["objects"] - 1
    assert incremental.counts["blobs_new"] == 3  # the changed object, its namespace tree, the root tree

    # ...and a backup that sanitizes and hashes every object again (same cluster, same state) agrees on every tree.
    full_path = BackupService(services.catalog(), lambda: services.repository(create=True), services.connect,
                              reuse_unchanged=False)
    full = _manifest(services, full_path.run(_job(kubeconfig_path, app_ns.namespaces)).record)
    assert full.stats["objects_reused"] == 0
    assert full.root_tree == incremental.root_tree
    assert full.counts == incremental.counts | {"blobs_new": 0}
    for key in ("kinds", "scope", "errors", "kubernetes_version", "cluster", "cluster_uid", "policy"):
        assert getattr(full, key) == getattr(incremental, key), key


def test_a_recreated_object_is_backed_up_anew(services, kubeconfig_path, app_ns, kube_client):
    from chalicelib.repository import RepositoryReader

    svc = services.backup_service()
    shop = app_ns.namespaces[0]
    svc.run(_job(kubeconfig_path, app_ns.namespaces))
    existing = [o for o in kube_client.get(CM.collection_path(shop))["items"]
                if (o["metadata"].get("labels") or {}).get("lifeboat.io/exclude") != "true"]
    victim = existing[0]
    kube_client.delete(CM, victim["metadata"]["name"], namespace=shop)
    kube_client.create(CM, {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {
        "name": victim["metadata"]["name"], "namespace": shop, "labels": victim["metadata"].get("labels") or {}},
        "data": victim.get("data") or {}}, namespace=shop)
    again = _manifest(services, svc.run(_job(kubeconfig_path, app_ns.namespaces)).record)
    assert again.stats["objects_reused"] == again.counts["objects"] - 1
    reader = RepositoryReader(services.repository())
    (entry,) = [e for scope, e in reader.walk(again) if scope == shop and e.kind == "ConfigMap"
                and e.name == victim["metadata"]["name"]]
    assert entry.uid != victim["metadata"]["uid"]


class CountingClient:
    """A Kubernetes client that counts the list pages it is asked for, per collection path."""

    def __init__(self, inner: Any) -> None:
        self._inner = inner
        self.lists: list[str] = []

    def list_pages(self, path: str, **kwargs: Any) -> Any:
        self.lists.append(path)
        return self._inner.list_pages(path, **kwargs)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)


def test_a_scope_that_selects_no_namespace_lists_only_namespaces(services, kubeconfig_path):
    clients: list[CountingClient] = []

    def connect(ref: Any) -> Any:
        clients.append(CountingClient(services.connect(ref)))
        return clients[-1]

    svc = BackupService(services.catalog(), lambda: services.repository(create=True), connect)
    record = svc.run(_job(kubeconfig_path, [f"no-such-namespace-{uuid.uuid4().hex[:6]}-*"])).record
    assert record.state == "Completed", record.failure or record.errors
    assert record.counts["objects"] == 0 and record.counts["namespaces"] == 0
    assert clients[0].lists == ["/api/v1/namespaces"]


def test_the_parents_trees_are_read_only_when_an_object_can_be_listed(services, kubeconfig_path, app_ns,
                                                                      trees_read):
    read = trees_read
    svc = services.backup_service()
    first = svc.run(_job(kubeconfig_path, app_ns.namespaces)).record
    read.clear()
    _next_second()
    empty = svc.run(_job(kubeconfig_path, [f"no-such-namespace-{uuid.uuid4().hex[:6]}-*"])).record
    assert empty.state == "Completed" and empty.parent == first.backup_id, empty.failure or empty.errors
    assert read == [], "a backup that can list no object does not read its parent's trees"
    _next_second()
    again = svc.run(_job(kubeconfig_path, app_ns.namespaces)).record
    assert again.state == "Completed" and again.parent == empty.backup_id
    assert read == [empty.backup_id]


def _next_second() -> None:
    """Backup ids sort by the second they start in, then a random suffix: an empty scope's backup is quick enough to
    share its parent's second, and then which of the two is the newest (the next backup's parent) is a coin toss."""
    started = int(time.time())
    while int(time.time()) == started:
        time.sleep(0.02)


def _guessing(catalog: Any, guessed: Any) -> Any:
    """``catalog``, whose state index names ``guessed(parent)`` as the newest backup: a stale index entry."""

    class Catalog:
        def latest(self, cluster: str, *args: Any, indexed: Any = None, **kwargs: Any) -> Any:
            record = catalog.latest(cluster, *args, **kwargs)
            if indexed is not None and record is not None:
                indexed(guessed(record))
            return record

        def __getattr__(self, name: str) -> Any:
            return getattr(catalog, name)

    return Catalog()


def test_the_parent_named_by_the_index_is_read_before_it_is_confirmed(services, kubeconfig_path, app_ns,
                                                                     trees_read, monkeypatch):
    read = trees_read
    catalog = services.catalog()
    first = services.backup_service().run(_job(kubeconfig_path, app_ns.namespaces)).record
    _next_second()
    get = catalog.get
    read_before_confirmed: list[bool] = []

    def confirming_late(cluster: str, backup_id: str) -> Any:
        # The consistent read of the parent answers only once its trees were read on the index's word.
        deadline = time.monotonic() + 10
        while not read and time.monotonic() < deadline:
            time.sleep(0.01)
        read_before_confirmed.append(bool(read))
        return get(cluster, backup_id)

    monkeypatch.setattr(catalog, "get", confirming_late)
    svc = BackupService(catalog, lambda: services.repository(create=True), services.connect)
    record = svc.run(_job(kubeconfig_path, app_ns.namespaces)).record
    assert record.state == "Completed" and record.parent == first.backup_id, record.failure or record.errors
    assert read_before_confirmed[:1] == [True], "the parent's trees were read before the consistent read answered"
    assert read == [first.backup_id], "and only once"
    assert record.stats["objects_reused"] == record.counts["objects"]


def test_a_parent_the_consistent_read_does_not_confirm_gives_way_to_the_confirmed_one(
    services, kubeconfig_path, app_ns, trees_read
):
    from dataclasses import replace

    read = trees_read
    svc = services.backup_service()
    older = svc.run(_job(kubeconfig_path, app_ns.namespaces)).record
    _next_second()
    newer = svc.run(_job(kubeconfig_path, app_ns.namespaces)).record
    _next_second()
    read.clear()

    # The index still names the older backup (say the newer one's state change has not reached it yet).
    stale = _guessing(services.catalog(), lambda record: replace(record, backup_id=older.backup_id))
    guessed = BackupService(stale, lambda: services.repository(create=True), services.connect)
    record = guessed.run(_job(kubeconfig_path, app_ns.namespaces)).record
    assert record.state == "Completed" and record.parent == newer.backup_id, record.failure or record.errors
    assert read == [older.backup_id, newer.backup_id], "the guess is read, then the confirmed parent"
    assert record.stats["objects_reused"] == record.counts["objects"]
