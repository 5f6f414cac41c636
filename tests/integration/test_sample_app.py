"""The sample application: its manifests, renaming, and seeding, mutating and removing it."""

from __future__ import annotations

import base64
import json
import re
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
from tests.support.sample_app import Cluster, _owner_uids

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
    with pytest.raises(ValueError, match="must be lowercase letters"):
        load_manifests(suffix)


@pytest.fixture
def suffix(kube_client: Any) -> Iterator[str]:
    """A unique suffix for one copy of the app, removed afterwards (the shared CRD stays)."""
    value = f"-{uuid.uuid4().hex[:6]}"
    try:
        yield value
    finally:
        remove_sample_app(kube_client, value)


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
