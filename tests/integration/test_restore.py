"""Restores over real HTTP into the Kubernetes API test server (or a real cluster), from in-memory repositories."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from chalicelib.core.restore_options import RestoreOptions
from chalicelib.core.restore_plan import diff_paths
from chalicelib.kube import KubeClient
from chalicelib.restore import BackupUnreadable, Outcome, RestoreService, RestoreState
from tests.support.builders import make_backup
from tests.support.objects import gadget_crd
from tests.support.resources import resource_of

RESTORE_LABEL = "lifeboat.io/restore-id"


@pytest.fixture
def new_namespace(kube_client: KubeClient) -> Iterator[Callable[[], str]]:
    """Unique namespace names, each removed afterwards whether or not a test created it."""
    names: list[str] = []

    def make() -> str:
        names.append(f"lbr-{uuid.uuid4().hex[:8]}")
        return names[-1]

    yield make
    for name in names:
        kube_client.delete_namespace(name)


def ns(name: str, **labels: str) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name, "labels": labels}}


def cm(name: str, namespace: str, **data: str) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": name, "namespace": namespace, "labels": {"app": "shop"}},
        "data": data or {"k": name},
    }


def app(namespace: str) -> list[dict[str, Any]]:
    """A small application as a backup holds it: sanitized, but with the source cluster's allocations."""
    meta = {"namespace": namespace, "labels": {"app": "web"}}
    return [
        ns(namespace, team="shop"),
        cm("settings", namespace, mode="production"),
        {
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": {"name": "db", **meta},
            "type": "Opaque",
            "data": {"password": "c2VjcmV0"},
        },
        {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": "web", **meta}},
        {
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": {"name": "web", **meta},
            "spec": {
                "type": "ClusterIP",
                "clusterIP": "10.96.213.77",
                "clusterIPs": ["10.96.213.77"],
                "selector": {"app": "web"},
                "ports": [{"name": "http", "port": 80, "targetPort": 8080, "protocol": "TCP"}],
            },
        },
        {
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": {"name": "web", **meta},
            "spec": {
                "replicas": 1,
                "selector": {"matchLabels": {"app": "web"}},
                "template": {
                    "metadata": {"labels": {"app": "web"}},
                    "spec": {
                        "serviceAccountName": "web",
                        "containers": [{"name": "web", "image": "registry.k8s.io/pause:3.9"}],
                    },
                },
            },
        },
        {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "Role",
            "metadata": {"name": "reader", **meta},
            "rules": [{"apiGroups": [""], "resources": ["configmaps"], "verbs": ["get", "list"]}],
        },
        {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "RoleBinding",
            "metadata": {"name": "web-reader", **meta},
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "reader"},
            "subjects": [{"kind": "ServiceAccount", "name": "web", "namespace": namespace}],
        },
    ]


def live(client: KubeClient, obj: dict[str, Any], namespace: str | None = None) -> dict[str, Any] | None:
    resource = resource_of(obj)
    meta = obj["metadata"]
    return client.get_object(
        resource, meta["name"], (namespace or meta.get("namespace")) if resource.namespaced else None
    )


def writes(kube_server: Any) -> list[Any]:
    return list(kube_server.write_requests()) if kube_server is not None else []


# -- restores ------------------------------------------------------------------------------------------------------


def test_restore_into_an_empty_namespace(kube_client: KubeClient, new_namespace: Callable[[], str]) -> None:
    name = new_namespace()
    objects = app(name)
    backup = make_backup(objects)
    seen: list[Any] = []
    progress: list[tuple[int, int]] = []
    result = RestoreService(backup.reader(), kube_client).run(
        backup.manifest,
        RestoreOptions(restore_id="r-empty"),
        on_result=seen.append,
        progress=lambda done, total: progress.append((done, total)),
    )
    assert result.state == RestoreState.COMPLETED, result.failures
    assert result.counts()["created"] == len(objects)
    assert seen == list(result.results)
    assert progress[-1] == (len(objects), len(objects))
    for obj in objects:
        restored = live(kube_client, obj)
        assert restored is not None, obj["metadata"]["name"]
        assert restored["metadata"]["labels"][RESTORE_LABEL] == "r-empty"
        assert restored["metadata"]["annotations"]["lifeboat.io/backup-id"] == backup.manifest.backup_id
        expected = dict(obj)
        if obj["kind"] == "Service":  # the source cluster's address is not ours to reuse
            expected["spec"] = {k: v for k, v in obj["spec"].items() if k not in ("clusterIP", "clusterIPs")}
            assert restored["spec"]["clusterIP"] != "10.96.213.77"
        assert diff_paths(expected, restored) == [], obj["kind"]


def test_namespace_mapping_restores_into_a_new_namespace(
    kube_client: KubeClient, new_namespace: Callable[[], str]
) -> None:
    source, target = new_namespace(), new_namespace()
    backup = make_backup(app(source))
    options = RestoreOptions(namespace_mapping={source: target}, restore_id="r-map")
    result = RestoreService(backup.reader(), kube_client).run(backup.manifest, options)
    assert result.state == RestoreState.COMPLETED, result.failures
    assert {r.namespace for r in result.results if r.kind != "Namespace"} == {target}
    assert kube_client.get_object(resource_of(ns(source)), source) is None
    namespace = kube_client.get_object(resource_of(ns(target)), target)
    assert namespace is not None
    assert namespace["metadata"]["labels"]["kubernetes.io/metadata.name"] == target
    assert namespace["metadata"]["labels"]["team"] == "shop"
    binding = live(kube_client, app(source)[-1], target)
    assert binding is not None and binding["subjects"][0]["namespace"] == target


def test_dry_run_only_reads(kube_client: KubeClient, kube_server: Any, new_namespace: Callable[[], str]) -> None:
    name = new_namespace()
    backup = make_backup(app(name))
    if kube_server is not None:
        kube_server.clear_requests()
    result = RestoreService(backup.reader(), kube_client).run(backup.manifest, RestoreOptions(dry_run=True))
    assert result.dry_run and result.plan is not None and result.results == ()
    assert result.plan["counts"] == {"create": len(app(name)), "update": 0, "skip": 0}
    assert writes(kube_server) == []
    assert kube_client.get_object(resource_of(ns(name)), name) is None


def test_a_plan_with_nothing_on_the_cluster_is_built_once(
    kube_client: KubeClient, new_namespace: Callable[[], str], monkeypatch: pytest.MonkeyPatch
) -> None:
    from chalicelib.core import restore_plan
    from chalicelib.restore import service as service_module

    name = new_namespace()
    backup = make_backup(app(name))
    built: list[bool] = []

    def counting(*args: Any, **kwargs: Any) -> Any:
        built.append(kwargs.get("existing") is not None)
        return restore_plan.build_plan(*args, **kwargs)

    monkeypatch.setattr(service_module, "build_plan", counting)
    service = RestoreService(backup.reader(), kube_client)
    plan = service.plan(backup.manifest, RestoreOptions())
    assert built == [False], "nothing to look up on the cluster: the draft is the plan"
    assert {i.action for i in plan.items} == {"create"} and len(plan.items) == len(app(name))

    assert service.run(backup.manifest, RestoreOptions()).state == RestoreState.COMPLETED
    built.clear()
    again = service.plan(backup.manifest, RestoreOptions())
    assert built == [False, True], "what is on the cluster now is planned against"
    assert {i.action for i in again.items} == {"skip"}


def test_existing_objects_skip_or_update(kube_client: KubeClient, new_namespace: Callable[[], str]) -> None:
    name = new_namespace()
    objects = [ns(name), cm("settings", name, mode="production"), cm("flags", name, beta="off")]
    backup = make_backup(objects)
    service = RestoreService(backup.reader(), kube_client)
    assert service.run(backup.manifest, RestoreOptions()).state == RestoreState.COMPLETED
    settings = resource_of(objects[1])
    kube_client.patch(settings, "settings", {"data": {"mode": "debug"}}, name)

    plan = service.plan(backup.manifest, RestoreOptions(existing_policy="update"))
    by_name = {i.name: i for i in plan.items}
    assert (by_name["settings"].action, by_name["settings"].diff) == ("update", ("data",))
    assert (by_name["flags"].action, by_name["flags"].reason) == ("skip", "unchanged")

    skipped = service.run(backup.manifest, RestoreOptions())
    assert {r.outcome for r in skipped.results} == {Outcome.SKIPPED}
    assert {r.reason for r in skipped.results} == {"exists"}
    assert kube_client.get_object(settings, "settings", name)["data"] == {"mode": "debug"}  # type: ignore[index]

    updated = service.run(backup.manifest, RestoreOptions(existing_policy="update", restore_id="r-upd"))
    assert updated.state == RestoreState.COMPLETED
    outcomes = {r.name: (r.outcome, r.reason, r.diff) for r in updated.results}
    assert outcomes["settings"] == (Outcome.UPDATED, "changed", ("data",))
    assert outcomes["flags"][:2] == (Outcome.SKIPPED, "unchanged")
    restored = kube_client.get_object(settings, "settings", name)
    assert restored is not None and restored["data"] == {"mode": "production"}
    assert restored["metadata"]["labels"][RESTORE_LABEL] == "r-upd"


def test_corrupt_blob_is_refused_before_any_write(
    kube_client: KubeClient, kube_server: Any, new_namespace: Callable[[], str]
) -> None:
    name = new_namespace()
    backup = make_backup(app(name))
    backup.corrupt(f"{name}/Secret/db")
    if kube_server is not None:
        kube_server.clear_requests()
    with pytest.raises(BackupUnreadable, match="nothing was restored") as caught:
        RestoreService(backup.reader(), kube_client).run(backup.manifest, RestoreOptions())
    assert backup.blobs[f"{name}/Secret/db"] in str(caught.value)
    assert writes(kube_server) == []
    assert kube_client.get_object(resource_of(ns(name)), name) is None


def test_the_refusal_names_the_backup_and_the_damaged_blob(
    kube_client: KubeClient, kube_server: Any, new_namespace: Callable[[], str]
) -> None:
    name = new_namespace()
    backup = make_backup(app(name))
    backup.corrupt(f"{name}/Secret/db")
    with pytest.raises(BackupUnreadable) as caught:
        RestoreService(backup.reader(), kube_client).run(backup.manifest, RestoreOptions())
    message = str(caught.value)
    assert f"backup {backup.manifest.cluster}/{backup.manifest.backup_id}" in message
    assert backup.blobs[f"{name}/Secret/db"] in message and "nothing was restored" in message


@pytest.mark.fakeonly
def test_partial_failure_names_the_failed_object(
    kube_client: KubeClient, fake_kube: Any, new_namespace: Callable[[], str]
) -> None:
    name = new_namespace()
    objects = [ns(name)] + [cm(f"cm-{i}", name) for i in range(4)]
    backup = make_backup(objects)
    fake_kube.faults.inject(422, method="POST", path="configmaps")
    result = RestoreService(backup.reader(), kube_client).run(backup.manifest, RestoreOptions())
    assert result.state == RestoreState.PARTIALLY_FAILED
    [failure] = result.failures
    assert failure.kind == "ConfigMap" and failure.namespace == name and failure.reason == "invalid"
    assert "422" in failure.message
    assert result.to_dict()["failures"][0]["name"] == failure.name
    resource = resource_of(objects[1])
    for obj in objects[1:]:
        present = kube_client.get_object(resource, obj["metadata"]["name"], name) is not None
        assert present == (obj["metadata"]["name"] != failure.name)


def test_controller_owned_objects_are_skipped(
    kube_client: KubeClient, kube_server: Any, new_namespace: Callable[[], str]
) -> None:
    name = new_namespace()
    objects = app(name)
    owner = {"apiVersion": "apps/v1", "kind": "Deployment", "name": "web", "uid": "old-uid", "controller": True}
    replicaset = {
        "apiVersion": "apps/v1",
        "kind": "ReplicaSet",
        "metadata": {"name": "web-5d4f8c", "namespace": name, "ownerReferences": [owner]},
        "spec": {"selector": {"matchLabels": {"app": "web"}}, "template": objects[5]["spec"]["template"]},
    }
    pod = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": "web-5d4f8c-x2k9p",
            "namespace": name,
            "ownerReferences": [{"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "web-5d4f8c", "uid": "u"}],
        },
        "spec": {"nodeName": "ip-10-0-0-1", "containers": [{"name": "web", "image": "registry.k8s.io/pause:3.9"}]},
    }
    endpoints = {"apiVersion": "v1", "kind": "Endpoints", "metadata": {"name": "web", "namespace": name}}
    backup = make_backup([*objects, replicaset, pod, endpoints])
    if kube_server is not None:
        kube_server.clear_requests()
    result = RestoreService(backup.reader(), kube_client).run(backup.manifest, RestoreOptions())
    assert result.state == RestoreState.COMPLETED, result.failures
    skipped = {(r.kind, r.reason) for r in result.results if r.outcome == Outcome.SKIPPED}
    assert skipped == {
        ("ReplicaSet", "controller-owned"),
        ("Pod", "controller-owned"),
        ("Endpoints", "controller-managed"),
    }
    written = {(w.method, w.path) for w in writes(kube_server)}
    assert not any("/replicasets" in path or "/pods" in path or "/endpoints" in path for _, path in written)


def test_resume_skips_completed_keys(kube_client: KubeClient, new_namespace: Callable[[], str]) -> None:
    name = new_namespace()
    objects = [ns(name), cm("a", name), cm("b", name)]
    backup = make_backup(objects)
    service = RestoreService(backup.reader(), kube_client)
    first = service.run(backup.manifest, RestoreOptions(include_resources=("namespaces",)))
    done = {r.key for r in first.results if r.done}
    assert done == {f"namespaces/{name}"}
    second = service.run(backup.manifest, RestoreOptions(), completed=done | {f"configmaps/{name}/a"})
    outcomes = {r.key: (r.outcome, r.reason) for r in second.results}
    assert outcomes[f"namespaces/{name}"] == (Outcome.SKIPPED, "completed")
    assert outcomes[f"configmaps/{name}/a"] == (Outcome.SKIPPED, "completed")
    assert outcomes[f"configmaps/{name}/b"] == (Outcome.CREATED, "new")
    assert kube_client.get_object(resource_of(objects[1]), "a", name) is None  # really skipped, not re-created


def test_stop_interrupts_between_objects(kube_client: KubeClient, new_namespace: Callable[[], str]) -> None:
    name = new_namespace()
    backup = make_backup([ns(name), cm("a", name)])
    calls = iter([False, True])
    result = RestoreService(backup.reader(), kube_client).run(
        backup.manifest, RestoreOptions(), stop=lambda: next(calls, True)
    )
    assert result.state == RestoreState.INTERRUPTED
    assert f"configmaps/{name}/a" not in {r.key for r in result.results}


def test_custom_resources_wait_for_their_definition(kube_client: KubeClient, new_namespace: Callable[[], str]) -> None:
    name = new_namespace()
    group = f"g{uuid.uuid4().hex[:8]}.lifeboat.test"
    crd = gadget_crd(group)
    gadget = {
        "apiVersion": f"{group}/v1",
        "kind": "Gadget",
        "metadata": {"name": "g1", "namespace": name},
        "spec": {"size": 3},
    }
    gadgets = resource_of(gadget, "gadgets", True)
    backup = make_backup([crd, ns(name), (gadgets, gadget)])
    crds = resource_of(crd)
    try:
        result = RestoreService(backup.reader(), kube_client).run(backup.manifest, RestoreOptions())
        assert result.state == RestoreState.COMPLETED, (result.failures, result.warnings)
        restored = kube_client.get_object(gadgets, "g1", name)
        assert restored is not None and restored["spec"] == {"size": 3}
    finally:
        kube_client.delete(crds, f"gadgets.{group}")


def test_unreachable_cluster_fails_the_restore() -> None:
    backup = make_backup([ns("x"), cm("a", "x")])
    client = KubeClient.from_kubeconfig(
        {
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": [{"name": "c", "cluster": {"server": "https://127.0.0.1:9", "insecure-skip-tls-verify": True}}],
            "users": [{"name": "u", "user": {"token": "t"}}],
            "contexts": [{"name": "c", "context": {"cluster": "c", "user": "u"}}],
            "current-context": "c",
        },
        max_retries=0,
        timeout=2,
    )
    with client:
        result = RestoreService(backup.reader(), client).run(backup.manifest, RestoreOptions())
    assert result.state == RestoreState.FAILED
    assert "discovery" in result.message and result.results == ()


def test_sample_app_backup_restores_into_new_namespaces(
    bucket: str, table: str, kube_client: KubeClient, kubeconfig_path: Any, new_namespace: Callable[[], str]
) -> None:
    """The whole path: the backup service writes the sample app, the restore service brings it back elsewhere."""
    from chalicelib.core.jobs import BackupJob, ClusterRef
    from chalicelib.core.scope import BackupScope
    from chalicelib.repository import RepositoryReader
    from chalicelib.services import Services
    from chalicelib.settings import Settings
    from sandbox.sample_app import remove_sample_app, seed_sample_app
    from tests.conftest import TEST_REGION

    suffix = f"-{uuid.uuid4().hex[:6]}"
    report = seed_sample_app(kube_client, suffix=suffix)
    try:
        services = Services(Settings(table=table, bucket=bucket, region=TEST_REGION))
        auth = {"type": "kubeconfig", "kubeconfig": kubeconfig_path.read_text()}
        scope = BackupScope(include_namespaces=tuple(report.namespaces))
        job = BackupJob(job_id=f"t-{uuid.uuid4()}", cluster=ClusterRef("test-cluster", auth), scope=scope)
        record = services.backup_service().run(job).record
        assert record.state == "Completed", record.failure or record.errors
        reader = RepositoryReader(services.repository())
        manifest = reader.load_manifest(record.cluster, record.backup_id)
        mapping = {source: new_namespace() for source in report.namespaces}

        options = RestoreOptions(namespace_mapping=mapping, restore_id="r-app")
        result = RestoreService(reader, kube_client).run(manifest, options)

        assert result.state == RestoreState.COMPLETED, result.failures
        created = [r for r in result.results if r.outcome == Outcome.CREATED and r.namespace]
        assert {r.namespace for r in created} == set(mapping.values())
        assert {"Deployment", "StatefulSet", "ConfigMap", "Secret", "PersistentVolumeClaim"} <= {
            r.kind for r in created
        }
        assert not any(r.kind in ("Pod", "ReplicaSet") for r in created)
        served = {(r.api_version, r.kind): r for r in kube_client.discover()}
        reverse = {target: source for source, target in mapping.items()}
        for item in created:
            if item.kind not in ("ConfigMap", "Secret", "Deployment", "StatefulSet"):
                continue
            resource = served[(item.api_version, item.kind)]
            original = kube_client.get_object(resource, item.name, reverse[item.namespace or ""])
            restored = kube_client.get_object(resource, item.name, item.namespace)
            assert original is not None and restored is not None
            assert {k: original.get(k) for k in ("data", "spec")} == {k: restored.get(k) for k in ("data", "spec")}
    finally:
        remove_sample_app(kube_client, suffix=suffix)


@pytest.mark.fakeonly
def test_update_retries_once_on_a_write_conflict(
    kube_client: KubeClient, fake_kube: Any, new_namespace: Callable[[], str]
) -> None:
    name = new_namespace()
    objects = [ns(name), cm("settings", name, mode="production")]
    backup = make_backup(objects)
    service = RestoreService(backup.reader(), kube_client)
    service.run(backup.manifest, RestoreOptions())
    settings = resource_of(objects[1])
    kube_client.patch(settings, "settings", {"data": {"mode": "debug"}}, name)
    fake_kube.faults.inject(409, method="PUT", path="/configmaps/settings$")
    result = service.run(backup.manifest, RestoreOptions(existing_policy="update"))
    assert result.state == RestoreState.COMPLETED, result.failures
    assert [r.outcome for r in result.results if r.name == "settings"] == [Outcome.UPDATED]
    puts = [w for w in fake_kube.write_requests() if w.method == "PUT"]
    assert [w.status for w in puts] == [409, 200]

    kube_client.patch(settings, "settings", {"data": {"mode": "debug"}}, name)
    fake_kube.faults.inject(409, method="PUT", path="/configmaps/settings$", count=2)
    twice = service.run(backup.manifest, RestoreOptions(existing_policy="update"))
    assert twice.state == RestoreState.PARTIALLY_FAILED
    assert [(f.name, f.reason) for f in twice.failures] == [("settings", "conflict")]
