"""The sample application (manifests, renaming, seeding, mutating) and the synthetic benchmark generator."""

from __future__ import annotations

import base64
import json
import re
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from typing import Any

import pytest

from sandbox.sample_app import (
    NAMESPACE_NAME_LABEL,
    SAMPLE_APP_DIR,
    SHARED_KINDS,
    load_manifests,
    mutate_sample_app,
    remove_sample_app,
    seed_sample_app,
    suffix_manifests,
)
from sandbox.synthetic import CONFIG_KEY, SECRET_KEY, mutate_fraction, synthetic_objects

REQUIRED_KINDS = {
    "Namespace",
    "Deployment",
    "StatefulSet",
    "Service",
    "Ingress",
    "ConfigMap",
    "Secret",
    "PersistentVolumeClaim",
    "StorageClass",
    "PersistentVolume",
    "ServiceAccount",
    "Role",
    "RoleBinding",
    "ClusterRole",
    "ClusterRoleBinding",
    "CronJob",
    "HorizontalPodAutoscaler",
    "NetworkPolicy",
    "PodDisruptionBudget",
    "CustomResourceDefinition",
    "Widget",
    "VolumeSnapshotClass",
    "VolumeSnapshot",
}
CONTROLLER_KINDS = {"ReplicaSet", "Pod", "EndpointSlice", "ControllerRevision"}


def _by(manifests: list[dict[str, Any]], kind: str, name: str | None = None) -> list[dict[str, Any]]:
    return [m for m in manifests if m["kind"] == kind and (name is None or m["metadata"]["name"] == name)]


def _walk(value: Any, path: str = "") -> Iterator[tuple[str, Any]]:
    """Every (path, value) in a JSON-like value, containers included."""
    yield path, value
    if isinstance(value, dict):
        for key, item in value.items():
            yield from _walk(item, f"{path}.{key}")
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield from _walk(item, f"{path}[{index}]")


# --- manifests ------------------------------------------------------------------------------------------------------


def test_manifest_files_are_numbered_for_apply_order() -> None:
    files = sorted(p.name for p in SAMPLE_APP_DIR.glob("*.yaml"))
    assert len(files) >= 5
    assert all(re.fullmatch(r"\d\d-[a-z-]+\.yaml", name) for name in files), files
    assert files[0] == "00-namespaces.yaml"


def test_every_document_is_a_complete_object() -> None:
    manifests = load_manifests()
    assert len(manifests) >= 30
    for doc in manifests:
        assert isinstance(doc, dict)
        assert doc.get("apiVersion") and doc.get("kind"), doc
        assert doc["metadata"].get("name"), doc
    identities = [
        (d["apiVersion"], d["kind"], d["metadata"].get("namespace"), d["metadata"]["name"]) for d in manifests
    ]
    assert len(identities) == len(set(identities)), "an object is defined twice"
    # JSON-able: what the client sends
    json.dumps(manifests)


def test_inventory_has_every_kind_a_backup_must_handle() -> None:
    manifests = load_manifests()
    kinds = Counter(m["kind"] for m in manifests)
    assert set(kinds) >= REQUIRED_KINDS, REQUIRED_KINDS - set(kinds)
    assert kinds["Widget"] == 2
    assert {m["metadata"]["name"] for m in _by(manifests, "Namespace")} == {"shop", "shop-data"}
    order = [m["kind"] for m in manifests]
    assert order.index("CustomResourceDefinition") < order.index("Widget")
    assert max(i for i, k in enumerate(order) if k == "Namespace") < min(
        i for i, m in enumerate(manifests) if m["metadata"].get("namespace")
    )


def test_services_cover_clusterip_headless_and_nodeport() -> None:
    services = _by(load_manifests(), "Service")
    types = {(s["spec"].get("type", "ClusterIP"), s["spec"].get("clusterIP")) for s in services}
    assert ("ClusterIP", None) in types
    assert ("ClusterIP", "None") in types
    assert "NodePort" in {t for t, _ in types}
    statefulset = _by(load_manifests(), "StatefulSet", "db")[0]
    headless = _by(services, "Service", statefulset["spec"]["serviceName"])[0]
    assert headless["spec"]["clusterIP"] == "None"
    assert statefulset["spec"]["volumeClaimTemplates"][0]["spec"]["storageClassName"] == "shop-standard"


def test_deployment_is_wired_to_its_config_and_policies() -> None:
    manifests = load_manifests()
    web = _by(manifests, "Deployment", "web")[0]
    assert web["spec"]["replicas"] == 3
    container = web["spec"]["template"]["spec"]["containers"][0]
    assert {"readinessProbe", "livenessProbe", "resources"} <= set(container)
    refs = {(k, v["name"]) for source in container["envFrom"] for k, v in source.items()}
    assert refs == {("configMapRef", "web-config"), ("secretRef", "web-secrets")}
    for kind, name in refs:
        assert _by(manifests, "ConfigMap" if kind == "configMapRef" else "Secret", name)
    hpa = _by(manifests, "HorizontalPodAutoscaler", "web")[0]
    assert hpa["apiVersion"] == "autoscaling/v2"
    assert hpa["spec"]["scaleTargetRef"] == {"apiVersion": "apps/v1", "kind": "Deployment", "name": "web"}
    assert _by(manifests, "PodDisruptionBudget")[0]["apiVersion"] == "policy/v1"


def test_tls_secret_holds_a_matching_certificate_and_key() -> None:
    from cryptography import x509
    from cryptography.hazmat.primitives import serialization

    manifests = load_manifests()
    secret = _by(manifests, "Secret", "shop-tls")[0]
    assert secret["type"] == "kubernetes.io/tls"
    cert = x509.load_pem_x509_certificate(base64.b64decode(secret["data"]["tls.crt"], validate=True))
    key = serialization.load_pem_private_key(base64.b64decode(secret["data"]["tls.key"], validate=True), None)
    assert cert.public_key().public_numbers() == key.public_key().public_numbers()
    ingress = _by(manifests, "Ingress", "web")[0]
    assert ingress["apiVersion"] == "networking.k8s.io/v1"
    assert ingress["spec"]["tls"][0]["secretName"] == "shop-tls"
    assert cert.subject.rfc4514_string() == f"CN={ingress['spec']['tls'][0]['hosts'][0]}"
    # the two Opaque styles: stringData and base64 data
    assert "stringData" in _by(manifests, "Secret", "web-secrets")[0]
    db = _by(manifests, "Secret", "db-credentials")[0]
    assert base64.b64decode(db["data"]["POSTGRES_USER"], validate=True) == b"shop"


def test_volumes_bind_and_snapshot_within_the_app() -> None:
    manifests = load_manifests()
    pv = _by(manifests, "PersistentVolume")[0]
    claim = pv["spec"]["claimRef"]
    bound = _by(manifests, "PersistentVolumeClaim", claim["name"])[0]
    assert bound["metadata"]["namespace"] == claim["namespace"]
    assert bound["spec"]["volumeName"] == pv["metadata"]["name"]
    snapshot = _by(manifests, "VolumeSnapshot")[0]
    assert snapshot["apiVersion"] == "snapshot.storage.k8s.io/v1"
    source = _by(manifests, "PersistentVolumeClaim", snapshot["spec"]["source"]["persistentVolumeClaimName"])[0]
    assert source["metadata"]["namespace"] == snapshot["metadata"]["namespace"]
    assert "volumeName" not in source["spec"]
    assert _by(manifests, "StorageClass", source["spec"]["storageClassName"])
    assert _by(manifests, "VolumeSnapshotClass", snapshot["spec"]["volumeSnapshotClassName"])


def test_crd_and_the_excluded_object() -> None:
    manifests = load_manifests()
    crd = _by(manifests, "CustomResourceDefinition")[0]
    assert crd["metadata"]["name"] == f"{crd['spec']['names']['plural']}.{crd['spec']['group']}"
    assert crd["spec"]["scope"] == "Namespaced"
    version = crd["spec"]["versions"][0]
    assert version["subresources"] == {"status": {}}
    assert version["schema"]["openAPIV3Schema"]["type"] == "object"
    assert all(w["apiVersion"] == f"{crd['spec']['group']}/{version['name']}" for w in _by(manifests, "Widget"))
    excluded = [m for m in manifests if m["metadata"].get("labels", {}).get("lifeboat.io/exclude") == "true"]
    assert [(m["kind"], m["metadata"]["name"]) for m in excluded] == [("ConfigMap", "scratch-cache")]


def test_suffix_renames_namespaces_cluster_objects_and_every_reference() -> None:
    suffix = "-t1a2b"
    plain = load_manifests()
    renamed = load_manifests(suffix)
    namespaces = {"shop" + suffix, "shop-data" + suffix}
    assert [m["kind"] for m in renamed] == [m["kind"] for m in plain]
    assert load_manifests() == plain, "renaming must not change the unsuffixed manifests"

    cluster_names = {}
    for before, after in zip(plain, renamed, strict=True):
        meta = after["metadata"]
        if "namespace" in meta:
            assert meta["namespace"] in namespaces
            assert meta["name"] == before["metadata"]["name"]  # namespaced names stay: the namespace isolates them
        elif after["kind"] in SHARED_KINDS:
            assert meta["name"] == before["metadata"]["name"]
        else:
            assert meta["name"] == before["metadata"]["name"] + suffix
            cluster_names.setdefault(after["kind"], set()).add(meta["name"])
    assert cluster_names["Namespace"] == namespaces

    for doc in renamed:
        for path, value in _walk(doc):
            if path.endswith(".namespace") and isinstance(value, str):
                assert value in namespaces, f"{doc['kind']} {path} = {value}"
            if isinstance(value, str):
                assert not re.search(r"\.shop(-data)?\.svc\b", value), f"{doc['kind']} {path} = {value!r}"
            if path.endswith(f".{NAMESPACE_NAME_LABEL}"):
                assert value in namespaces, f"{doc['kind']} {path} = {value}"
            for key, kind in (
                (".storageClassName", "StorageClass"),
                (".volumeSnapshotClassName", "VolumeSnapshotClass"),
                (".volumeName", "PersistentVolume"),
            ):
                if path.endswith(key):
                    assert value in cluster_names[kind], f"{doc['kind']} {path} = {value}"
    crb = _by(renamed, "ClusterRoleBinding")[0]
    assert crb["roleRef"]["name"] in cluster_names["ClusterRole"]
    # a namespaced Role keeps its name, so a RoleBinding's roleRef does too
    assert {rb["roleRef"]["name"] for rb in _by(renamed, "RoleBinding")} == {
        r["metadata"]["name"] for r in _by(renamed, "Role")
    }
    db_host = _by(renamed, "ConfigMap", "web-config")[0]["data"]["DB_HOST"]
    assert db_host == f"db-0.db.shop-data{suffix}.svc.cluster.local"


def test_suffix_leaves_references_to_objects_outside_the_app() -> None:
    docs = [
        {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "a"}},
        {
            "apiVersion": "v1",
            "kind": "PersistentVolumeClaim",
            "metadata": {"name": "c", "namespace": "a"},
            "spec": {"storageClassName": "gp3"},
        },
        {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "RoleBinding",
            "metadata": {"name": "b", "namespace": "a"},
            "roleRef": {"kind": "ClusterRole", "name": "view"},
            "subjects": [{"kind": "ServiceAccount", "name": "x", "namespace": "kube-system"}],
        },
    ]
    ns, pvc, binding = suffix_manifests(docs, "-z")
    assert ns["metadata"]["name"] == "a-z"
    assert pvc["metadata"]["namespace"] == "a-z"
    assert pvc["spec"]["storageClassName"] == "gp3"
    assert binding["roleRef"]["name"] == "view"
    assert binding["subjects"][0]["namespace"] == "kube-system"


@pytest.mark.parametrize("suffix", ["_x", "-UP", "a.b", "-x y"])
def test_suffix_must_keep_names_valid(suffix: str) -> None:
    with pytest.raises(ValueError):
        load_manifests(suffix)


# --- synthetic objects ----------------------------------------------------------------------------------------------


def _size(obj: dict[str, Any]) -> int:
    return len(json.dumps(obj, separators=(",", ":")))


def test_synthetic_counts_names_and_spread() -> None:
    objects = list(synthetic_objects(namespaces=7, configmaps=100, secrets=40, deployments=30))
    kinds = Counter(o["kind"] for o in objects)
    assert kinds == {"Namespace": 7, "ConfigMap": 100, "Secret": 40, "Deployment": 30}
    names = [o["metadata"]["name"] for o in objects if o["kind"] == "Namespace"]
    assert names == [f"bench-{i:03d}" for i in range(7)]
    per_namespace = Counter(o["metadata"]["namespace"] for o in objects if o["kind"] == "ConfigMap")
    assert set(per_namespace) == set(names)
    assert max(per_namespace.values()) - min(per_namespace.values()) <= 1
    identities = [(o["kind"], o["metadata"].get("namespace"), o["metadata"]["name"]) for o in objects]
    assert len(set(identities)) == len(identities)
    # creatable as they are: no server-set fields
    assert not any("uid" in o["metadata"] or "resourceVersion" in o["metadata"] for o in objects)
    for secret in (o for o in objects if o["kind"] == "Secret"):
        base64.b64decode(secret["data"][SECRET_KEY], validate=True)


@pytest.mark.parametrize("size_bytes", [512, 1024, 8192])
@pytest.mark.parametrize("server_fields", [False, True])
def test_synthetic_payload_sizes(size_bytes: int, server_fields: bool) -> None:
    objects = synthetic_objects(
        namespaces=3, configmaps=50, secrets=50, deployments=0, size_bytes=size_bytes, server_fields=server_fields
    )
    sizes = [_size(o) for o in objects if o["kind"] in ("ConfigMap", "Secret")]
    assert len(sizes) == 100
    assert all(0.8 * size_bytes <= s <= 1.2 * size_bytes for s in sizes), (min(sizes), max(sizes))


def test_synthetic_is_deterministic_and_seeded() -> None:
    first = list(synthetic_objects(namespaces=3, configmaps=20, secrets=20, deployments=5, seed=7))
    again = list(synthetic_objects(namespaces=3, configmaps=20, secrets=20, deployments=5, seed=7))
    other = list(synthetic_objects(namespaces=3, configmaps=20, secrets=20, deployments=5, seed=8))
    assert first == again
    assert first != other
    listed = list(synthetic_objects(namespaces=3, configmaps=20, secrets=20, deployments=5, seed=7, server_fields=True))
    uids = [o["metadata"]["uid"] for o in listed]
    assert len(set(uids)) == len(uids)
    assert len({o["metadata"]["resourceVersion"] for o in listed}) == len(listed)


def test_synthetic_generates_100k_objects_quickly() -> None:
    started = time.perf_counter()
    count = sum(1 for _ in synthetic_objects(namespaces=100, configmaps=60_000, secrets=30_000, deployments=9_900))
    elapsed = time.perf_counter() - started
    assert count == 100_000
    assert elapsed < 10, f"{elapsed:.1f}s"  # about 2 s on a busy 2-core machine


def test_mutate_fraction_changes_copies_of_that_fraction() -> None:
    objects = list(synthetic_objects(namespaces=4, configmaps=600, secrets=400, deployments=50, server_fields=True))
    snapshot = json.dumps(objects)
    changed = mutate_fraction(objects, 0.01, seed=3)
    assert len(changed) == 10
    assert json.dumps(objects) == snapshot, "the input objects must not be modified"
    originals = {(o["kind"], o["metadata"]["namespace"], o["metadata"]["name"]): o for o in objects if "data" in o}
    for obj in changed:
        original = originals[(obj["kind"], obj["metadata"]["namespace"], obj["metadata"]["name"])]
        assert obj["kind"] in ("ConfigMap", "Secret")
        assert obj["data"] != original["data"]
        key = CONFIG_KEY if obj["kind"] == "ConfigMap" else SECRET_KEY
        assert obj["data"][key] != original["data"][key]
        assert abs(_size(obj) - _size(original)) <= 0.05 * _size(original)
        assert int(obj["metadata"]["resourceVersion"]) > int(original["metadata"]["resourceVersion"])
    assert mutate_fraction(objects, 0.01, seed=3) == changed
    assert mutate_fraction(objects, 0.01, seed=4) != changed
    assert len(mutate_fraction(objects, 0.0)) == 0
    assert len(mutate_fraction(objects, 0.0001)) == 1
    assert len(mutate_fraction(objects, 1.0)) == 1000
    with pytest.raises(ValueError):
        mutate_fraction(objects, 1.5)


# --- seeding a cluster ----------------------------------------------------------------------------------------------


class Cluster:
    """Lookups by apiVersion/kind for assertions."""

    def __init__(self, client: Any) -> None:
        self.client = client
        self.types = {(r.api_version, r.kind): r for r in client.discover()}

    def get(self, api_version: str, kind: str, name: str, namespace: str | None = None) -> dict[str, Any] | None:
        resource = self.types[(api_version, kind)]
        return self.client.get_object(resource, name, namespace=namespace if resource.namespaced else None)

    def items(self, api_version: str, kind: str, namespace: str) -> list[dict[str, Any]]:
        resource = self.types[(api_version, kind)]
        return self.client.request("GET", resource.collection_path(namespace)).get("items") or []


@pytest.fixture
def suffix(kube_client: Any) -> Iterator[str]:
    """A unique suffix for one copy of the app, removed afterwards (the shared CRD stays)."""
    value = f"-{uuid.uuid4().hex[:6]}"
    try:
        yield value
    finally:
        remove_sample_app(kube_client, value)


def _owner_uids(obj: dict[str, Any]) -> list[str]:
    return [ref["uid"] for ref in obj["metadata"].get("ownerReferences") or () if ref.get("controller")]


@pytest.mark.realcluster
def test_seed_creates_the_application_and_its_controller_objects(
    kube_client: Any, kube_server: Any, suffix: str
) -> None:
    report = seed_sample_app(kube_client, suffix)
    web_ns, data_ns = "shop" + suffix, "shop-data" + suffix
    assert report.namespaces == [web_ns, data_ns]
    assert REQUIRED_KINDS - {"VolumeSnapshot", "VolumeSnapshotClass"} <= set(report.by_kind), report.skipped
    assert set(report.by_kind) >= CONTROLLER_KINDS
    assert report.by_kind["Pod"] == 3 + 2
    assert report.by_kind["EndpointSlice"] == 2
    assert report.objects == sum(report.by_kind.values())
    assert report.objects >= len(load_manifests()) - len(report.skipped)

    cluster = Cluster(kube_client)
    for api_version, kind, name, namespace in [
        ("v1", "Namespace", data_ns, None),
        ("apps/v1", "StatefulSet", "db", data_ns),
        ("networking.k8s.io/v1", "Ingress", "web", web_ns),
        ("shop.example.com/v1", "Widget", "blue-widget", web_ns),
        ("rbac.authorization.k8s.io/v1", "ClusterRoleBinding", "shop-widget-reader" + suffix, None),
        ("v1", "PersistentVolume", "shop-archive-pv" + suffix, None),
        ("storage.k8s.io/v1", "StorageClass", "shop-standard" + suffix, None),
        ("batch/v1", "CronJob", "db-dump", data_ns),
        ("autoscaling/v2", "HorizontalPodAutoscaler", "web", web_ns),
        ("v1", "ConfigMap", "scratch-cache", web_ns),
    ]:
        live = cluster.get(api_version, kind, name, namespace)
        assert live is not None, f"{kind} {name}"
        assert live["metadata"]["uid"]
    widget = cluster.get("shop.example.com/v1", "Widget", "red-widget", web_ns)
    assert widget is not None and widget["spec"]["color"] == "red"
    crb = cluster.get("rbac.authorization.k8s.io/v1", "ClusterRoleBinding", "shop-widget-reader" + suffix)
    assert crb is not None and crb["subjects"][0]["namespace"] == web_ns

    deployment = cluster.get("apps/v1", "Deployment", "web", web_ns)
    assert deployment is not None
    replica_sets = [
        rs
        for rs in cluster.items("apps/v1", "ReplicaSet", web_ns)
        if _owner_uids(rs) == [deployment["metadata"]["uid"]] and rs["metadata"]["name"].startswith("web-")
    ]
    assert replica_sets
    ours = [rs for rs in replica_sets if rs["metadata"]["labels"].get("pod-template-hash")]
    assert ours
    rs_uids = {rs["metadata"]["uid"] for rs in ours}
    owner_ref = ours[0]["metadata"]["ownerReferences"][0]
    assert owner_ref["kind"] == "Deployment" and owner_ref["blockOwnerDeletion"] is True
    web_pods = [p for p in cluster.items("v1", "Pod", web_ns) if set(_owner_uids(p)) & rs_uids]
    assert len(web_pods) >= 3
    if not report.controllers:
        # seeding placed the pods it made; a running controller-manager's pods wait for the scheduler
        assert all(p["spec"].get("nodeName") for p in web_pods)
    assert all(p["metadata"]["labels"].get("pod-template-hash") for p in web_pods)

    statefulset = cluster.get("apps/v1", "StatefulSet", "db", data_ns)
    assert statefulset is not None
    for index in range(2):
        pod = cluster.get("v1", "Pod", f"db-{index}", data_ns)
        assert pod is not None
        assert _owner_uids(pod) == [statefulset["metadata"]["uid"]]
        assert cluster.get("v1", "PersistentVolumeClaim", f"data-db-{index}", data_ns) is not None

    service = cluster.get("v1", "Service", "web", web_ns)
    assert service is not None
    slices = [
        s
        for s in cluster.items("discovery.k8s.io/v1", "EndpointSlice", web_ns)
        if s["metadata"].get("labels", {}).get("kubernetes.io/service-name") == "web"
    ]
    ours_slice = [s for s in slices if _owner_uids(s) == [service["metadata"]["uid"]]]
    assert ours_slice
    if kube_server is not None:
        # no kubelets on the test server: seeding reports the pods running, and the slice lists their IPs
        assert all(p["status"]["phase"] == "Running" and p["status"]["podIP"] for p in web_pods)
        addresses = {a for e in ours_slice[0]["endpoints"] for a in e["addresses"]}
        assert addresses == {p["status"]["podIP"] for p in web_pods}
        assert {e["targetRef"]["uid"] for e in ours_slice[0]["endpoints"]} == {p["metadata"]["uid"] for p in web_pods}
        assert ours_slice[0]["ports"] == [{"name": "http", "port": 8080, "protocol": "TCP"}]


@pytest.mark.realcluster
def test_seeding_twice_is_idempotent(kube_client: Any, suffix: str) -> None:
    first = seed_sample_app(kube_client, suffix)
    cluster = Cluster(kube_client)
    web_ns = "shop" + suffix
    deployment = cluster.get("apps/v1", "Deployment", "web", web_ns)
    pods_before = {p["metadata"]["name"]: p["metadata"]["uid"] for p in cluster.items("v1", "Pod", web_ns)}

    second = seed_sample_app(kube_client, suffix)

    assert second.by_kind == first.by_kind
    assert second.objects == first.objects
    again = cluster.get("apps/v1", "Deployment", "web", web_ns)
    assert again is not None and deployment is not None
    assert again["metadata"]["uid"] == deployment["metadata"]["uid"]
    pods_after = {p["metadata"]["name"]: p["metadata"]["uid"] for p in cluster.items("v1", "Pod", web_ns)}
    # our pods are still the same objects: nothing was deleted and recreated
    assert pods_before.items() <= pods_after.items()


@pytest.mark.realcluster
def test_mutate_changes_what_it_reports(kube_client: Any, suffix: str) -> None:
    seed_sample_app(kube_client, suffix)
    cluster = Cluster(kube_client)
    web_ns = "shop" + suffix
    assert cluster.get("v1", "ConfigMap", "promo-banner", web_ns) is not None

    changes = mutate_sample_app(kube_client, suffix)

    assert changes == [
        f"ConfigMap {web_ns}/web-config: data.LOG_LEVEL info -> debug",
        f"Deployment {web_ns}/web: spec.replicas 3 -> 4",
        f"Secret {web_ns}/promo-api-key: created",
        f"ConfigMap {web_ns}/promo-banner: deleted",
    ]
    config = cluster.get("v1", "ConfigMap", "web-config", web_ns)
    assert config is not None and config["data"]["LOG_LEVEL"] == "debug"
    assert config["data"]["CURRENCY"] == "EUR"  # a patch, not a replacement
    deployment = cluster.get("apps/v1", "Deployment", "web", web_ns)
    assert deployment is not None and deployment["spec"]["replicas"] == 4
    assert cluster.get("v1", "Secret", "promo-api-key", web_ns) is not None
    assert cluster.get("v1", "ConfigMap", "promo-banner", web_ns) is None


@pytest.mark.realcluster
def test_remove_deletes_namespaces_and_cluster_objects_but_keeps_the_crd(kube_client: Any) -> None:
    value = f"-{uuid.uuid4().hex[:6]}"
    seed_sample_app(kube_client, value)
    deleted = remove_sample_app(kube_client, value)
    assert f"Namespace shop{value}" in deleted
    assert f"StorageClass shop-standard{value}" in deleted
    cluster = Cluster(kube_client)
    assert cluster.get("storage.k8s.io/v1", "StorageClass", "shop-standard" + value) is None
    assert cluster.get("rbac.authorization.k8s.io/v1", "ClusterRole", "shop-widget-reader" + value) is None
    namespace = cluster.get("v1", "Namespace", "shop" + value)
    # a real cluster keeps a namespace Terminating until its contents are gone
    assert namespace is None or namespace["metadata"].get("deletionTimestamp")
    assert cluster.get("apiextensions.k8s.io/v1", "CustomResourceDefinition", "widgets.shop.example.com") is not None


# --- seeding with and without a controller-manager ---------------------------------------------------------------


@pytest.fixture
def bare_server() -> Iterator[Any]:
    """A test server of its own, like kube-apiserver alone (envtest): no controllers, no nodes."""
    from sandbox.kubeapi import KubeAPIServer

    with KubeAPIServer(namespace_delete_delay=0) as server:
        yield server


def _client_of(server: Any) -> Any:
    import yaml

    from chalicelib.kube import KubeClient

    return KubeClient.from_kubeconfig(yaml.safe_dump(server.kubeconfig()))


def _owner_ref(owner: dict[str, Any], kind: str) -> dict[str, Any]:
    meta = owner["metadata"]
    return {
        "apiVersion": "apps/v1" if kind != "Service" else "v1",
        "kind": kind,
        "name": meta["name"],
        "uid": meta["uid"],
        "controller": True,
        "blockOwnerDeletion": True,
    }


def _play_controller_manager(client: Any, suffix: str) -> dict[str, Any]:
    """What kube-controller-manager with no scheduler makes for the app: its lease, a ReplicaSet and three unbound
    pods for the Deployment, a revision, ``db-0`` and its claim for the StatefulSet (OrderedReady: ``db-1`` waits
    for ``db-0`` to be Ready, which never happens without a kubelet), and an empty EndpointSlice per Service."""
    from datetime import UTC, datetime

    from sandbox.seeder import Seeder

    seeder = Seeder(client)
    for manifest in load_manifests(suffix):
        seeder.ensure(manifest)
    cluster = Cluster(client)
    web_ns, data_ns = "shop" + suffix, "shop-data" + suffix
    lease = {
        "apiVersion": "coordination.k8s.io/v1",
        "kind": "Lease",
        "metadata": {"name": "kube-controller-manager", "namespace": "kube-system"},
        "spec": {
            "holderIdentity": "control-plane_1",
            "leaseDurationSeconds": 15,
            "renewTime": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
        },
    }
    client.create(cluster.types[("coordination.k8s.io/v1", "Lease")], lease, namespace="kube-system")
    for namespace in (web_ns, data_ns):
        sa = {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": "default"}}
        client.create(cluster.types[("v1", "ServiceAccount")], sa, namespace=namespace)
    deployment = cluster.get("apps/v1", "Deployment", "web", web_ns)
    assert deployment is not None
    template = deployment["spec"]["template"]
    labels = {**template["metadata"]["labels"], "pod-template-hash": "7c9d8f6b5d"}
    replica_set = client.create(
        cluster.types[("apps/v1", "ReplicaSet")],
        {
            "apiVersion": "apps/v1",
            "kind": "ReplicaSet",
            "metadata": {
                "name": "web-7c9d8f6b5d",
                "labels": labels,
                "annotations": {"deployment.kubernetes.io/revision": "1"},
                "ownerReferences": [_owner_ref(deployment, "Deployment")],
            },
            "spec": {
                "replicas": 3,
                "selector": {"matchLabels": {**deployment["spec"]["selector"]["matchLabels"], **labels}},
                "template": {**template, "metadata": {"labels": labels}},
            },
        },
        namespace=web_ns,
    )
    for _ in range(3):
        pod = {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {
                "generateName": "web-7c9d8f6b5d-",
                "labels": labels,
                "ownerReferences": [_owner_ref(replica_set, "ReplicaSet")],
            },
            "spec": template["spec"],
        }
        client.create(cluster.types[("v1", "Pod")], pod, namespace=web_ns)
    statefulset = cluster.get("apps/v1", "StatefulSet", "db", data_ns)
    assert statefulset is not None
    revision = client.create(
        cluster.types[("apps/v1", "ControllerRevision")],
        {
            "apiVersion": "apps/v1",
            "kind": "ControllerRevision",
            "metadata": {"name": "db-5f7b9c8d4", "ownerReferences": [_owner_ref(statefulset, "StatefulSet")]},
            "data": {"spec": {"template": statefulset["spec"]["template"]}},
            "revision": 1,
        },
        namespace=data_ns,
    )
    claim_template = statefulset["spec"]["volumeClaimTemplates"][0]
    claim = {"apiVersion": "v1", "kind": "PersistentVolumeClaim", "metadata": {"name": "data-db-0"}}
    client.create(cluster.types[("v1", "PersistentVolumeClaim")], {**claim, "spec": claim_template["spec"]}, data_ns)
    db_labels = {
        **statefulset["spec"]["template"]["metadata"]["labels"],
        "controller-revision-hash": revision["metadata"]["name"],
        "statefulset.kubernetes.io/pod-name": "db-0",
    }
    db_pod = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "db-0", "labels": db_labels, "ownerReferences": [_owner_ref(statefulset, "StatefulSet")]},
        "spec": statefulset["spec"]["template"]["spec"],
    }
    client.create(cluster.types[("v1", "Pod")], db_pod, namespace=data_ns)
    for name, namespace in (("web", web_ns), ("db", data_ns)):
        service = cluster.get("v1", "Service", name, namespace)
        assert service is not None
        endpoint_slice = {
            "apiVersion": "discovery.k8s.io/v1",
            "kind": "EndpointSlice",
            "metadata": {
                "generateName": f"{name}-",
                "labels": {
                    "kubernetes.io/service-name": name,
                    "endpointslice.kubernetes.io/managed-by": "endpointslice-controller.k8s.io",
                },
                "ownerReferences": [_owner_ref(service, "Service")],
            },
            "addressType": "IPv4",
            "endpoints": [],
            "ports": None,
        }
        client.create(cluster.types[("discovery.k8s.io/v1", "EndpointSlice")], endpoint_slice, namespace=namespace)
    return {"replica_set": replica_set, "revision": revision, "statefulset": statefulset}


def test_seeding_adopts_what_a_running_controller_manager_made(bare_server: Any) -> None:
    client = _client_of(bare_server)
    made = _play_controller_manager(client, "")
    cluster = Cluster(client)
    before = {
        (kind, p["metadata"]["name"]): p["metadata"]["uid"]
        for kind, api_version, ns in (("Pod", "v1", "shop"), ("EndpointSlice", "discovery.k8s.io/v1", "shop"))
        for p in cluster.items(api_version, kind, ns)
    }

    report = seed_sample_app(client, wait=0)

    assert report.controllers
    assert report.by_kind["Pod"] == 3 + 2 and report.by_kind["EndpointSlice"] == 2
    assert report.by_kind["ReplicaSet"] == 1 and report.by_kind["ControllerRevision"] == 1
    assert "ReplicaSet shop/web-7c9d8f6b5d" in report.adopted and "Pod shop-data/db-0" in report.adopted
    # nothing of the controllers' was replaced, and no second ReplicaSet or slice appeared beside theirs
    after = {
        (kind, p["metadata"]["name"]): p["metadata"]["uid"]
        for kind, api_version, ns in (("Pod", "v1", "shop"), ("EndpointSlice", "discovery.k8s.io/v1", "shop"))
        for p in cluster.items(api_version, kind, ns)
    }
    assert after == before
    assert [rs["metadata"]["name"] for rs in cluster.items("apps/v1", "ReplicaSet", "shop")] == ["web-7c9d8f6b5d"]
    assert len(cluster.items("discovery.k8s.io/v1", "EndpointSlice", "shop-data")) == 1
    assert [r["metadata"]["name"] for r in cluster.items("apps/v1", "ControllerRevision", "shop-data")] == [
        "db-5f7b9c8d4"
    ]
    # no kubelet was faked and no pod placed: that is the scheduler's and the kubelets' work
    web_pods = cluster.items("v1", "Pod", "shop")
    assert len(web_pods) == 3
    assert all(_owner_uids(p) == [made["replica_set"]["metadata"]["uid"]] for p in web_pods)
    db_pods = [cluster.get("v1", "Pod", f"db-{i}", "shop-data") for i in range(2)]
    for pod in [*web_pods, *db_pods]:
        assert pod is not None
        assert "nodeName" not in pod["spec"] and not pod["status"].get("podIP"), pod["metadata"]["name"]
    # db-1, which the OrderedReady controller holds back, is created as the controller would create it
    db_1 = db_pods[1]
    assert db_1 is not None and _owner_uids(db_1) == [made["statefulset"]["metadata"]["uid"]]
    assert db_1["metadata"]["labels"]["controller-revision-hash"] == "db-5f7b9c8d4"
    assert cluster.get("v1", "PersistentVolumeClaim", "data-db-1", "shop-data") is not None

    again = seed_sample_app(client, wait=0)
    assert again.by_kind == report.by_kind


def test_seeding_into_kube_apiserver_alone_creates_what_its_controllers_would(bare_server: Any) -> None:
    client = _client_of(bare_server)
    report = seed_sample_app(client)
    cluster = Cluster(client)

    assert not report.controllers and not report.adopted
    for namespace in ("shop", "shop-data"):
        assert cluster.get("v1", "ServiceAccount", "default", namespace) is not None
    db_0 = cluster.get("v1", "Pod", "db-0", "shop-data")
    assert db_0 is not None and db_0["spec"]["serviceAccountName"] == "default"
    statefulset = cluster.get("apps/v1", "StatefulSet", "db", "shop-data")
    assert statefulset is not None and _owner_uids(db_0) == [statefulset["metadata"]["uid"]]
    assert db_0["spec"]["nodeName"] and db_0["status"]["phase"] == "Running"
    assert report.by_kind["Pod"] == 5 and report.by_kind["ReplicaSet"] == 1


def test_seeding_next_to_the_test_servers_namespace_controllers() -> None:
    from sandbox.kubeapi import KubeAPIServer

    with KubeAPIServer(namespace_delete_delay=0, namespace_controllers=True) as server:
        client = _client_of(server)
        report = seed_sample_app(client)
        again = seed_sample_app(client)
    assert report.by_kind["Pod"] == 5 and not report.controllers
    assert again.by_kind == report.by_kind


def test_seeding_waits_for_a_running_controller_manager(bare_server: Any) -> None:
    """With a controller-manager's lease present, seeding gives it ``wait`` seconds and then creates what it did not."""
    import threading

    client = _client_of(bare_server)
    made = _play_controller_manager(client, "")
    cluster = Cluster(client)
    replica_sets = cluster.types[("apps/v1", "ReplicaSet")]
    # The controller is slow this time: its ReplicaSet is gone, and comes back after seeding has started.
    client.delete(replica_sets, "web-7c9d8f6b5d", namespace="shop")
    for pod in cluster.items("v1", "Pod", "shop"):
        client.delete(cluster.types[("v1", "Pod")], pod["metadata"]["name"], namespace="shop")
    late = {**made["replica_set"], "metadata": {**made["replica_set"]["metadata"]}}
    for key in ("uid", "resourceVersion", "creationTimestamp", "generation", "managedFields"):
        late["metadata"].pop(key, None)
    late.pop("status", None)
    timer = threading.Timer(0.5, lambda: client.create(replica_sets, late, namespace="shop"))
    timer.start()
    started = time.monotonic()
    try:
        report = seed_sample_app(client, wait=5)
    finally:
        timer.join()
    # it waited for the ReplicaSet (not its own after 0 s), then up to 5 s for pods that never came
    assert 0.5 <= time.monotonic() - started < 5 + 5
    assert [rs["metadata"]["name"] for rs in cluster.items("apps/v1", "ReplicaSet", "shop")] == ["web-7c9d8f6b5d"]
    # its ReplicaSet controller made no pods within the wait, so seeding did, unbound and Pending
    pods = cluster.items("v1", "Pod", "shop")
    assert report.by_kind["Pod"] == 5 and len(pods) == 3
    assert all("nodeName" not in p["spec"] for p in pods)


def test_a_stale_controller_manager_lease_means_no_controllers_run(bare_server: Any) -> None:
    from sandbox.controller_objects import controller_manager_running
    from sandbox.seeder import Seeder

    client = _client_of(bare_server)
    seeder = Seeder(client)
    assert not controller_manager_running(seeder)
    leases = Cluster(client).types[("coordination.k8s.io/v1", "Lease")]
    lease = {
        "apiVersion": "coordination.k8s.io/v1",
        "kind": "Lease",
        "metadata": {"name": "kube-controller-manager", "namespace": "kube-system"},
        "spec": {"holderIdentity": "control-plane_1", "renewTime": "2020-01-01T00:00:00.000000Z"},
    }
    client.create(leases, lease, namespace="kube-system")
    assert not controller_manager_running(seeder)
    fresh = time.strftime("%Y-%m-%dT%H:%M:%S.000000Z", time.gmtime())
    client.patch(leases, "kube-controller-manager", {"spec": {"renewTime": fresh}}, namespace="kube-system")
    assert controller_manager_running(seeder)
