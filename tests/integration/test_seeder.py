"""Seeding with and without a controller-manager: what it adopts, what it creates, how long it waits."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import pytest

from sandbox.sample_app import load_manifests, seed_sample_app
from tests.support.sample_app import Cluster, _owner_uids


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
