"""An incremental backup lists object metadata first and reads whole only what changed, and ends where a full one
does: the same trees and counts."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from chalicelib.backup import BackupService
from chalicelib.core.jobs import BackupJob, ClusterRef
from chalicelib.core.resources import Resource
from chalicelib.core.scope import BackupScope
from chalicelib.services import Services

CM = Resource("", "v1", "ConfigMap", "configmaps", True, frozenset({"get", "list", "patch"}))
OBJECTS = 40
PAGE = 10  # pages of ten: a page with more than 4 changed objects is read again whole


class RecordingClient:
    """A Kubernetes client that records the single objects it reads and the pages it lists, and how."""

    def __init__(self, inner: Any) -> None:
        self._inner = inner
        self.gets: list[str] = []
        self.pages: list[tuple[str, bool]] = []

    def get(self, path: str, params: Any = None) -> Any:
        self.gets.append(path)
        return self._inner.get(path, params)

    def list_pages(self, path: str, **kwargs: Any) -> Iterator[Any]:
        for page in self._inner.list_pages(path, **kwargs):
            self.pages.append((path, page.metadata_only))
            yield page

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)


@pytest.fixture
def namespace(kube_client: Any) -> Iterator[str]:
    name = f"lbt-meta-{uuid.uuid4().hex[:6]}"
    kube_client.create_namespace(name)
    for i in range(OBJECTS):
        body = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": f"cm-{i:02d}"}, "data": {"n": str(i)}}
        kube_client.create(CM, body, namespace=name)
    try:
        yield name
    finally:
        kube_client.delete_namespace(name)


def _job(kubeconfig_path: Any, namespace: str) -> BackupJob:
    auth = {"type": "kubeconfig", "kubeconfig": kubeconfig_path.read_text()}
    return BackupJob(
        job_id=f"t-{uuid.uuid4()}",
        cluster=ClusterRef(f"meta-{namespace}", auth),
        scope=BackupScope(include_namespaces=(namespace,)),
    )


def _service(services: Services, clients: list[RecordingClient], **options: Any) -> BackupService:
    def connect(ref: Any) -> Any:
        clients.append(RecordingClient(services.connect(ref)))
        return clients[-1]

    return BackupService(
        services.catalog(), lambda: services.repository(create=True), connect, page_size=PAGE, **options
    )


def _manifest(services: Services, record: Any) -> Any:
    from chalicelib.repository import RepositoryReader

    assert record.state == "Completed", record.failure or record.errors
    return RepositoryReader(services.repository()).load_manifest(record.cluster, record.backup_id)


def _edit(kube_client: Any, namespace: str, numbers: range | list[int]) -> None:
    for i in numbers:
        kube_client.patch(CM, f"cm-{i:02d}", {"data": {"edited": uuid.uuid4().hex}}, namespace=namespace)


def _parent_read(monkeypatch: pytest.MonkeyPatch, ready: Any) -> None:
    """The listing threads find the parent's entries read when ``ready`` says so (None: they wait for them)."""
    from chalicelib.backup.metadata_first import MetadataFirst

    init = MetadataFirst.__init__

    def with_ready(self: MetadataFirst, scope: Any, namespaces: Any, prior: Any, **_: Any) -> None:
        init(self, scope, namespaces, prior, ready=ready)

    monkeypatch.setattr(MetadataFirst, "__init__", with_ready)


@pytest.fixture
def parent_read_first(monkeypatch: pytest.MonkeyPatch) -> None:
    """The listing threads wait for the parent's entries, so each page of metadata is judged by them."""
    _parent_read(monkeypatch, None)


@pytest.fixture
def parent_read_late(monkeypatch: pytest.MonkeyPatch) -> None:
    """The listing threads never find the parent's entries read: every page is kept as metadata."""
    _parent_read(monkeypatch, lambda: False)


def test_changed_objects_are_read_whole_and_the_backup_equals_a_full_one(
    services, kubeconfig_path, kube_client, namespace, parent_read_first
):
    clients: list[RecordingClient] = []
    svc = _service(services, clients)
    first = svc.run(_job(kubeconfig_path, namespace)).record
    assert first.state == "Completed" and all(not partial for _, partial in clients[0].pages)

    # Two objects of the first page changed: GETs; six of the third: that page and the rest are listed whole.
    _edit(kube_client, namespace, [1, 2, *range(21, 27)])
    kube_client.delete(CM, "cm-05", namespace=namespace)
    incremental = _manifest(services, svc.run(_job(kubeconfig_path, namespace)).record)
    client = clients[1]
    configmaps = [partial for path, partial in client.pages if path.endswith("/configmaps")]
    # (A cluster with a controller-manager adds kube-root-ca.crt, after the cm-* ones: a fifth page, whole.)
    assert configmaps[:3] == [True, True, False] and not any(configmaps[2:]) and len(configmaps) in (4, 5)
    assert sorted(client.gets) == [CM.object_path(f"cm-{i:02d}", namespace) for i in (1, 2)]
    assert incremental.stats["objects_reused"] == incremental.counts["objects"] - 8  # all but the edited ones

    full = _manifest(
        services, _service(services, [], reuse_unchanged=False).run(_job(kubeconfig_path, namespace)).record
    )
    assert full.root_tree == incremental.root_tree
    assert full.counts == incremental.counts | {"blobs_new": 0}
    assert full.kinds == incremental.kinds and full.errors == incremental.errors == []


def test_pages_listed_before_the_parent_is_read_are_completed_by_the_collector(
    services, kubeconfig_path, kube_client, namespace, parent_read_late
):
    clients: list[RecordingClient] = []
    svc = _service(services, clients)
    assert svc.run(_job(kubeconfig_path, namespace)).record.state == "Completed"

    # Six objects of the first page changed: GETs (asked for again, a first page would start a new snapshot); two
    # of the second: GETs; six of the third: that page again whole, with its token, in one request.
    edited = [*range(0, 6), 11, 12, *range(21, 27)]
    _edit(kube_client, namespace, edited)
    incremental = _manifest(services, svc.run(_job(kubeconfig_path, namespace)).record)
    client = clients[1]
    configmaps = [partial for path, partial in client.pages if path.endswith("/configmaps")]
    assert configmaps and all(configmaps), "every page was kept as metadata: the listing never waited"
    pages_again = [path for path in client.gets if path == CM.collection_path()]
    object_gets = sorted(path for path in client.gets if path != CM.collection_path())
    assert object_gets == [CM.object_path(f"cm-{i:02d}", namespace) for i in (0, 1, 2, 3, 4, 5, 11, 12)]
    assert len(pages_again) == 1
    assert incremental.stats["objects_reused"] == incremental.counts["objects"] - len(edited)

    full = _manifest(
        services, _service(services, [], reuse_unchanged=False).run(_job(kubeconfig_path, namespace)).record
    )
    assert full.root_tree == incremental.root_tree
    assert full.counts == incremental.counts | {"blobs_new": 0}


def test_a_full_backup_lists_whole(services, kubeconfig_path, namespace):
    clients: list[RecordingClient] = []
    record = _service(services, clients, reuse_unchanged=False).run(_job(kubeconfig_path, namespace)).record
    assert record.state == "Completed"
    svc = _service(services, clients, reuse_unchanged=False)
    assert svc.run(_job(kubeconfig_path, namespace)).record.state == "Completed"
    assert all(not partial for client in clients for _, partial in client.pages)
    assert all(not client.gets for client in clients)


@pytest.mark.fakeonly
def test_a_changed_object_that_cannot_be_read_fails_its_type_by_name(
    services, kubeconfig_path, kube_client, namespace, fake_kube
):
    clients: list[RecordingClient] = []
    svc = _service(services, clients)
    assert svc.run(_job(kubeconfig_path, namespace)).record.state == "Completed"
    _edit(kube_client, namespace, [3])
    fake_kube.forbid("configmaps", verbs=("get",))
    try:
        record = svc.run(_job(kubeconfig_path, namespace)).record
    finally:
        fake_kube.allow_all()
    assert record.state == "PartiallyFailed"
    (error,) = record.errors
    assert error["resource"] == "configmaps"
    assert error["error"].startswith("reading a changed object whole failed: ")
    assert "cm-03" in error["error"] and "forbidden" in error["error"]
