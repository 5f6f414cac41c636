"""Backups of the sample application over real HTTP (test server or a real cluster) into emulated AWS."""

from __future__ import annotations

import time
import uuid
from typing import Any

import pytest

from chalicelib.core.jobs import BackupJob, ClusterRef
from chalicelib.core.scope import BackupScope
from chalicelib.services import Services
from chalicelib.settings import Settings
from tests.conftest import TEST_BUCKET, TEST_REGION, TEST_TABLE


def _job(kubeconfig_path: Any, namespaces: list[str], *, job_id: str | None = None, **scope: Any) -> BackupJob:
    auth = {"type": "kubeconfig", "kubeconfig": kubeconfig_path.read_text()}
    return BackupJob(
        job_id=job_id or f"t-{uuid.uuid4()}",
        cluster=ClusterRef("test-cluster", auth),
        scope=BackupScope(include_namespaces=tuple(namespaces), **scope),
    )


def _walk(services: Services, record: Any) -> list[tuple[str, Any]]:
    from chalicelib.repository import RepositoryReader

    reader = RepositoryReader(services.repository())
    return list(reader.walk(reader.load_manifest(record.cluster, record.backup_id)))


def test_full_backup_of_the_sample_app(services, kubeconfig_path, app_ns):
    record = services.backup_service().run(_job(kubeconfig_path, app_ns.namespaces)).record
    assert record.state == "Completed", record.failure or record.errors
    assert record.manifest_key and record.manifest_key.endswith(f"/{record.backup_id}/manifest.json")
    entries = _walk(services, record)
    names = {(e.kind, scope, e.name) for scope, e in entries}
    shop = app_ns.namespaces[0]
    kinds = {e.kind for _, e in entries}
    for kind in (
        "Deployment",
        "StatefulSet",
        "Service",
        "ConfigMap",
        "Secret",
        "PersistentVolumeClaim",
        "ServiceAccount",
        "Role",
        "RoleBinding",
        "CronJob",
        "HorizontalPodAutoscaler",
        "NetworkPolicy",
        "PodDisruptionBudget",
        "Ingress",
        "Namespace",
        "CustomResourceDefinition",
        "Widget",
    ):
        assert kind in kinds, kind
    assert not any(name == "scratch-cache" for _, _, name in names), "exclusion label must be honoured"
    assert ("Namespace", "", shop) in names
    assert record.counts["objects"] == len(entries)
    assert record.stats["bytes_uploaded"] > 0


def test_noop_incremental_costs_one_manifest_and_a_change_costs_its_blob_and_trees(
    services, kubeconfig_path, app_ns, kube_client
):
    svc = services.backup_service()
    first = svc.run(_job(kubeconfig_path, app_ns.namespaces)).record
    second = svc.run(_job(kubeconfig_path, app_ns.namespaces)).record
    assert second.state == "Completed" and second.parent == first.backup_id
    assert second.counts["blobs_new"] == 0
    assert second.stats["puts"] == 1, second.stats
    assert second.stats["bytes_uploaded"] < 4096, "only the manifest"

    from chalicelib.core.resources import Resource

    cm = Resource("", "v1", "ConfigMap", "configmaps", True, frozenset({"get", "patch"}))
    shop = app_ns.namespaces[0]
    existing = [
        o
        for o in kube_client.get(cm.collection_path(shop))["items"]
        if (o["metadata"].get("labels") or {}).get("lifeboat.io/exclude") != "true"
    ]
    target = existing[0]["metadata"]["name"]
    kube_client.patch(cm, target, {"data": {"changed": uuid.uuid4().hex}}, namespace=shop)
    third = svc.run(_job(kubeconfig_path, app_ns.namespaces)).record
    # The changed object, its namespace tree and the root tree; nothing else.
    assert third.counts["blobs_new"] == 3, third.counts


def test_redelivered_job_does_not_create_a_second_backup(services, kubeconfig_path, app_ns):
    svc = services.backup_service()
    job = _job(kubeconfig_path, app_ns.namespaces, job_id="same-job")
    first = svc.run(job)
    again = svc.run(job)
    assert first.created and not again.created
    assert again.record.backup_id == first.record.backup_id
    page, _ = services.catalog().list("test-cluster")
    assert [r.backup_id for r in page] == [first.record.backup_id]


def test_namespace_scope_auto_brings_referenced_cluster_objects_only(services, kubeconfig_path, app_ns):
    shop = app_ns.namespaces[0]
    record = services.backup_service().run(_job(kubeconfig_path, [shop], cluster_scoped="auto")).record
    assert record.state == "Completed", record.failure or record.errors
    entries = _walk(services, record)
    cluster_objects = {(e.kind, e.name) for scope, e in entries if scope == ""}
    assert ("Namespace", shop) in cluster_objects
    assert all(scope in ("", shop) for scope, _ in entries)
    assert any(kind == "ClusterRole" for kind, _ in cluster_objects), "ClusterRole bound in the namespace"
    assert not any(kind == "Namespace" and name != shop for kind, name in cluster_objects)


def test_namespace_scope_auto_lists_only_the_cluster_types_something_names(services, kubeconfig_path, app_ns):
    from chalicelib.backup import BackupService

    listed: list[str] = []

    class Client:
        def __init__(self, inner: Any) -> None:
            self._inner = inner

        def list_pages(self, path: str, **kwargs: Any) -> Any:
            listed.append(path)
            return self._inner.list_pages(path, **kwargs)

        def __getattr__(self, name: str) -> Any:
            return getattr(self._inner, name)

    shop = app_ns.namespaces[0]
    svc = BackupService(
        services.catalog(), lambda: services.repository(create=True), lambda ref: Client(services.connect(ref))
    )
    record = svc.run(_job(kubeconfig_path, [shop], cluster_scoped="auto")).record
    assert record.state == "Completed", record.failure or record.errors
    assert "/apis/rbac.authorization.k8s.io/v1/clusterrolebindings" in listed, "a referring type is always read"
    assert "/apis/rbac.authorization.k8s.io/v1/clusterroles" in listed, "a RoleBinding of the namespace names one"
    assert "/apis/scheduling.k8s.io/v1/priorityclasses" not in listed, "nothing kept names a PriorityClass"
    kinds = {e.kind for scope, e in _walk(services, record) if scope == ""}
    assert "ClusterRole" in kinds and "PriorityClass" not in kinds


@pytest.mark.fakeonly
def test_forbidden_type_is_recorded_and_the_rest_is_backed_up(services, kubeconfig_path, app_ns, fake_kube):
    fake_kube.forbid("secrets")
    try:
        record = services.backup_service().run(_job(kubeconfig_path, app_ns.namespaces)).record
    finally:
        fake_kube.forbid(None)
    assert record.state == "PartiallyFailed"
    assert [e["resource"] for e in record.errors] == ["secrets"]
    assert "forbidden" in record.errors[0]["error"].lower()
    kinds = {e.kind for _, e in _walk(services, record)}
    assert "Secret" not in kinds and "ConfigMap" in kinds


@pytest.mark.fakeonly
def test_transient_errors_and_expired_continue_mid_list_lose_nothing(services, kubeconfig_path, app_ns, fake_kube):
    baseline = services.backup_service().run(_job(kubeconfig_path, app_ns.namespaces)).record
    fake_kube.faults.inject(500, method="GET", path=r"/configmaps$", nth=1)
    fake_kube.faults.inject(429, method="GET", path=r"/secrets$", nth=1, retry_after=0)
    svc = services.backup_service(page_size=2)
    real_list_pages = None

    # Expire continue tokens once the second page of some list has been asked for.
    from chalicelib.kube import KubeClient

    real_list_pages = KubeClient.list_pages
    calls = {"n": 0}

    def list_pages(self, path, **kw):
        for page in real_list_pages(self, path, **kw):
            calls["n"] += 1
            if calls["n"] == 3:
                fake_kube.expire_continue_tokens()
            yield page

    KubeClient.list_pages = list_pages
    try:
        record = svc.run(_job(kubeconfig_path, app_ns.namespaces)).record
    finally:
        KubeClient.list_pages = real_list_pages
    assert record.state == "Completed", record.errors
    assert record.counts["objects"] == baseline.counts["objects"]
    assert record.counts["blobs_new"] == 0, "same objects, same blobs: nothing lost, nothing duplicated"


def test_unreachable_cluster_fails_clearly_and_commits_nothing(services, tmp_path):
    kubeconfig = tmp_path / "kubeconfig"
    kubeconfig.write_text(
        "apiVersion: v1\nkind: Config\ncurrent-context: c\n"
        "clusters: [{name: c, cluster: {server: 'https://127.0.0.1:9'}}]\n"
        "users: [{name: u, user: {token: t}}]\ncontexts: [{name: c, context: {cluster: c, user: u}}]\n"
    )
    record = services.backup_service().run(_job(kubeconfig, [])).record
    assert record.state == "Failed"
    assert "127.0.0.1:9" in record.failure
    assert record.manifest_key is None
    s3 = services.client("s3")
    keys = [o["Key"] for o in s3.list_objects_v2(Bucket=TEST_BUCKET).get("Contents", [])]
    assert not any(k.endswith("manifest.json") for k in keys)


@pytest.mark.fakeonly
def test_wrong_token_fails_with_unauthorized(services, kube_server, tmp_path):
    import yaml

    config = kube_server.kubeconfig()
    config["users"][0]["user"]["token"] = "wrong"
    path = tmp_path / "kubeconfig"
    path.write_text(yaml.safe_dump(config))
    record = services.backup_service().run(_job(path, [])).record
    assert record.state == "Failed"
    assert "Unauthorized" in record.failure or "401" in record.failure


def test_missing_bucket_fails_without_a_manifest(aws, table, kubeconfig_path, app_ns):
    services = Services(Settings(table=TEST_TABLE, bucket="no-such-bucket", region=TEST_REGION))
    record = services.backup_service().run(_job(kubeconfig_path, app_ns.namespaces)).record
    assert record.state == "Failed"
    assert "no-such-bucket" in record.failure


def test_the_warm_heap_is_left_out_of_garbage_collection_only_while_a_backup_runs(services, kubeconfig_path, app_ns):
    import gc

    from chalicelib.backup import BackupService

    frozen_while_running: list[int] = []

    def connect(ref: Any) -> Any:
        frozen_while_running.append(gc.get_freeze_count())
        return services.connect(ref)

    assert gc.get_freeze_count() == 0
    svc = BackupService(services.catalog(), lambda: services.repository(create=True), connect)
    record = svc.run(_job(kubeconfig_path, app_ns.namespaces)).record
    assert record.state == "Completed", record.failure or record.errors
    assert frozen_while_running and frozen_while_running[0] > 0
    assert gc.get_freeze_count() == 0, "what the backup found alive is collected again afterwards"


def test_namespaced_types_are_listed_while_the_repository_is_still_being_read(services, kubeconfig_path, app_ns):
    import threading

    from chalicelib.backup import BackupService

    listing = threading.Event()

    class Client:
        def __init__(self, inner: Any) -> None:
            self._inner = inner

        def list_pages(self, path: str, **kwargs: Any) -> Any:
            if path != "/api/v1/namespaces":
                listing.set()
            return self._inner.list_pages(path, **kwargs)

        def __getattr__(self, name: str) -> Any:
            return getattr(self._inner, name)

    seen_while_opening: list[bool] = []

    def open_repository() -> Any:
        # The repository's side is read in the background; the first pages need not wait for it.
        seen_while_opening.append(listing.wait(timeout=10))
        return services.repository(create=True)

    svc = BackupService(services.catalog(), open_repository, lambda ref: Client(services.connect(ref)))
    record = svc.run(_job(kubeconfig_path, app_ns.namespaces)).record
    assert record.state == "Completed", record.failure or record.errors
    assert seen_while_opening == [True]
    assert record.counts["objects"] > len(app_ns.namespaces)


def test_the_repository_is_read_while_the_job_is_claimed_and_a_duplicate_leaves_no_reader_behind(
    services, kubeconfig_path, app_ns
):
    import threading

    from chalicelib.backup import BackupService

    catalog = services.catalog()
    claimed = threading.Event()
    opened_before_claim: list[bool] = []

    class Catalog:
        def claim_job(self, *args: Any, **kwargs: Any) -> Any:
            try:
                return catalog.claim_job(*args, **kwargs)
            finally:
                claimed.set()

        def __getattr__(self, name: str) -> Any:
            return getattr(catalog, name)

    def open_repository() -> Any:
        opened_before_claim.append(not claimed.is_set())
        return services.repository(create=True)

    def readers() -> list[threading.Thread]:
        return [t for t in threading.enumerate() if t.name.startswith("lifeboat-open-repository")]

    svc = BackupService(Catalog(), open_repository, services.connect)
    job = _job(kubeconfig_path, app_ns.namespaces, job_id="claimed-while-reading")
    first = svc.run(job)
    assert first.created and first.record.state == "Completed", first.record.failure or first.record.errors
    assert opened_before_claim == [True]

    # A duplicate delivery of a finished job: its background read is told there is nothing to read, and ends.
    claimed.clear()
    again = svc.run(job)
    assert not again.created and again.record.backup_id == first.record.backup_id
    deadline = time.monotonic() + 10
    while readers() and time.monotonic() < deadline:
        time.sleep(0.01)
    assert readers() == []
