"""The Kubernetes API test server over real HTTPS: behaviour that must match kube-apiserver, and the test controls."""

from __future__ import annotations

import base64
import json
import os
import ssl
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import urllib3
import yaml

from sandbox.kubeapi import KubeAPIServer

pytestmark = pytest.mark.fakeonly

REPO = Path(__file__).resolve().parents[2]
JSON = "application/json"


class Client:
    """Plain urllib3 with the server's CA verified: no product code between the test and the wire."""

    def __init__(self, server: KubeAPIServer) -> None:
        self.server = server
        context = ssl.create_default_context(cadata=server.ca_pem.decode())
        self.http = urllib3.PoolManager(ssl_context=context, retries=False)

    def call(
        self,
        method: str,
        path: str,
        body: Any = None,
        *,
        content_type: str | None = JSON,
        token: str | None = "",
        raw: bytes | None = None,
    ) -> tuple[int, Any, urllib3.HTTPHeaderDict]:
        headers = {}
        if token is not None:
            headers["Authorization"] = f"Bearer {token or self.server.token}"
        if content_type and (body is not None or raw is not None):
            headers["Content-Type"] = content_type
        data = raw if raw is not None else (json.dumps(body).encode() if body is not None else None)
        resp = self.http.request(method, self.server.url + path, body=data, headers=headers)
        payload: Any = resp.data
        if resp.headers.get("Content-Type", "").startswith(JSON):
            payload = json.loads(resp.data)
        return resp.status, payload, resp.headers


@pytest.fixture(scope="module")
def server() -> Iterator[KubeAPIServer]:
    # A server of its own: these tests expire tokens and forbid resources, which would disturb shared tests.
    srv = KubeAPIServer(namespace_delete_delay=0.3, namespace_controllers=True).start()
    try:
        yield srv
    finally:
        srv.stop()


@pytest.fixture
def api(server: KubeAPIServer) -> Iterator[Client]:
    server.faults.clear()
    server.allow_all()
    yield Client(server)
    server.faults.clear()
    server.allow_all()


@pytest.fixture
def ns(api: Client) -> str:
    name = f"t-{uuid.uuid4().hex[:8]}"
    status, _, _ = api.call(
        "POST", "/api/v1/namespaces", {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}}
    )
    assert status == 201
    return name


def cm(name: str, labels: dict[str, str] | None = None, **data: str) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name, "labels": labels or {}}, "data": data}


def deployment(name: str, replicas: int | None = None) -> dict[str, Any]:
    spec: dict[str, Any] = {
        "selector": {"matchLabels": {"app": name}},
        "template": {
            "metadata": {"labels": {"app": name}},
            "spec": {"containers": [{"name": "c", "image": "nginx:1.27"}]},
        },
    }
    if replicas is not None:
        spec["replicas"] = replicas
    return {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": name}, "spec": spec}


def assert_status(body: dict[str, Any], code: int, reason: str, message: str | None = None) -> None:
    assert body["kind"] == "Status" and body["apiVersion"] == "v1" and body["status"] == "Failure"
    assert body["code"] == code and body["reason"] == reason
    if message is not None:
        assert body["message"] == message


# -- discovery ---------------------------------------------------------------------------------------------------


def test_version_and_core_discovery(api: Client) -> None:
    status, version, _ = api.call("GET", "/version")
    assert status == 200 and version["gitVersion"].startswith("v1.") and version["major"] == "1"
    assert api.call("GET", "/api")[1]["versions"] == ["v1"]
    resources = {r["name"]: r for r in api.call("GET", "/api/v1")[1]["resources"]}
    assert resources["configmaps"]["shortNames"] == ["cm"] and resources["configmaps"]["namespaced"] is True
    assert resources["configmaps"]["kind"] == "ConfigMap" and "list" in resources["configmaps"]["verbs"]
    assert resources["namespaces"]["namespaced"] is False
    assert resources["pods/status"]["verbs"] == ["get", "patch", "update"]
    assert resources["bindings"]["verbs"] == ["create"]
    for name in (
        "services",
        "endpoints",
        "secrets",
        "serviceaccounts",
        "persistentvolumeclaims",
        "persistentvolumes",
        "events",
        "limitranges",
        "resourcequotas",
        "nodes",
        "replicationcontrollers",
    ):
        assert name in resources


def test_group_discovery(api: Client) -> None:
    groups = {g["name"]: g for g in api.call("GET", "/apis")[1]["groups"]}
    assert groups["autoscaling"]["preferredVersion"]["version"] == "v2"
    assert [v["version"] for v in groups["autoscaling"]["versions"]] == ["v2", "v1"]
    for group in (
        "apps",
        "batch",
        "networking.k8s.io",
        "rbac.authorization.k8s.io",
        "policy",
        "storage.k8s.io",
        "snapshot.storage.k8s.io",
        "discovery.k8s.io",
        "coordination.k8s.io",
        "events.k8s.io",
        "apiextensions.k8s.io",
        "scheduling.k8s.io",
        "authorization.k8s.io",
    ):
        assert group in groups
    apps = {r["name"]: r for r in api.call("GET", "/apis/apps/v1")[1]["resources"]}
    assert apps["deployments/scale"]["group"] == "autoscaling" and apps["deployments/scale"]["kind"] == "Scale"
    assert "deployments/status" in apps and apps["deployments"]["shortNames"] == ["deploy"]
    authz = {r["name"]: r for r in api.call("GET", "/apis/authorization.k8s.io/v1")[1]["resources"]}
    assert authz["selfsubjectaccessreviews"]["verbs"] == ["create"]
    assert api.call("GET", "/apis/autoscaling/v1")[0] == 200
    status, body, _ = api.call("GET", "/apis/nothere.example.com/v1")
    assert status == 404 and body == b"404 page not found\n"


CRD = {
    "apiVersion": "apiextensions.k8s.io/v1",
    "kind": "CustomResourceDefinition",
    "metadata": {"name": "widgets.example.com"},
    "spec": {
        "group": "example.com",
        "names": {"plural": "widgets", "singular": "widget", "kind": "Widget", "shortNames": ["wg"]},
        "scope": "Namespaced",
        "versions": [
            {"name": "v1beta1", "served": True, "storage": False, "schema": {"openAPIV3Schema": {"type": "object"}}},
            {
                "name": "v1",
                "served": True,
                "storage": True,
                "subresources": {"status": {}},
                "schema": {"openAPIV3Schema": {"type": "object", "x-kubernetes-preserve-unknown-fields": True}},
            },
        ],
    },
}


def test_crd_registers_type_and_deletion_removes_it(api: Client, ns: str) -> None:
    assert api.call("GET", "/apis/example.com/v1")[0] == 404
    status, crd, _ = api.call("POST", "/apis/apiextensions.k8s.io/v1/customresourcedefinitions", CRD)
    assert status == 201
    conditions = {c["type"]: c["status"] for c in crd["status"]["conditions"]}
    assert conditions == {"Established": "True", "NamesAccepted": "True"}
    assert crd["status"]["acceptedNames"]["kind"] == "Widget" and crd["status"]["storedVersions"] == ["v1"]
    group = next(g for g in api.call("GET", "/apis")[1]["groups"] if g["name"] == "example.com")
    assert group["preferredVersion"]["version"] == "v1"
    assert [v["version"] for v in group["versions"]] == ["v1", "v1beta1"]
    resources = {r["name"]: r for r in api.call("GET", "/apis/example.com/v1")[1]["resources"]}
    assert resources["widgets"]["kind"] == "Widget" and resources["widgets"]["shortNames"] == ["wg"]
    assert "widgets/status" in resources

    widget = {
        "apiVersion": "example.com/v1",
        "kind": "Widget",
        "metadata": {"name": "w1"},
        "spec": {"size": 3},
        "status": {"ready": True},
    }
    status, created, _ = api.call("POST", f"/apis/example.com/v1/namespaces/{ns}/widgets", widget)
    assert status == 201 and created["metadata"]["generation"] == 1 and "status" not in created
    listed = api.call("GET", f"/apis/example.com/v1/namespaces/{ns}/widgets")[1]
    assert listed["kind"] == "WidgetList"
    # Custom resources keep kind/apiVersion in list items (built-ins do not; see test_list_items_of_builtins).
    assert listed["items"][0]["kind"] == "Widget" and listed["items"][0]["apiVersion"] == "example.com/v1"
    assert (
        api.call("GET", f"/apis/example.com/v1beta1/namespaces/{ns}/widgets/w1")[1]["apiVersion"]
        == "example.com/v1beta1"
    )

    status, _, _ = api.call("DELETE", "/apis/apiextensions.k8s.io/v1/customresourcedefinitions/widgets.example.com")
    assert status == 200
    assert api.call("GET", f"/apis/example.com/v1/namespaces/{ns}/widgets")[0] == 404
    assert all(g["name"] != "example.com" for g in api.call("GET", "/apis")[1]["groups"])


def test_crd_name_must_be_plural_dot_group(api: Client) -> None:
    bad = json.loads(json.dumps(CRD))
    bad["metadata"]["name"] = "gadgets.example.com"
    status, body, _ = api.call("POST", "/apis/apiextensions.k8s.io/v1/customresourcedefinitions", bad)
    assert status == 422
    assert_status(body, 422, "Invalid")
    assert body["details"]["causes"][0]["field"] == "metadata.name"


# -- create / read / update / delete -------------------------------------------------------------------------------


def test_create_get_and_error_codes(api: Client, ns: str) -> None:
    path = f"/api/v1/namespaces/{ns}/configmaps"
    status, created, _ = api.call("POST", path, cm("one", k="v"))
    assert status == 201
    meta = created["metadata"]
    assert uuid.UUID(meta["uid"]).version == 4 and meta["namespace"] == ns
    assert meta["creationTimestamp"].endswith("Z") and int(meta["resourceVersion"]) > 0
    assert "generation" not in meta  # ConfigMaps have no generation on a real server
    assert api.call("GET", f"{path}/one")[1] == created

    status, body, _ = api.call("POST", path, cm("one"))
    assert status == 409
    assert_status(body, 409, "AlreadyExists", 'configmaps "one" already exists')
    assert body["details"] == {"name": "one", "kind": "configmaps"}

    status, body, _ = api.call("GET", f"{path}/missing")
    assert_status(body, 404, "NotFound", 'configmaps "missing" not found')
    assert status == 404 and body["details"] == {"name": "missing", "kind": "configmaps"}

    status, body, _ = api.call("POST", "/api/v1/namespaces/nope-x/configmaps", cm("a"))
    assert status == 404
    assert_status(body, 404, "NotFound", 'namespaces "nope-x" not found')

    status, body, _ = api.call("POST", path, cm("Bad_Name"))
    assert status == 422
    assert_status(body, 422, "Invalid")
    assert body["message"].startswith('ConfigMap "Bad_Name" is invalid: metadata.name: Invalid value: "Bad_Name"')
    status, body, _ = api.call("POST", path, {"metadata": {}})
    assert status == 422 and "name or generateName is required" in body["message"]

    status, body, _ = api.call("POST", path, {"metadata": {"name": "x", "namespace": "other"}})
    assert status == 400 and body["reason"] == "BadRequest"
    status, body, _ = api.call("POST", path, {"metadata": {"name": "x", "resourceVersion": "5"}})
    assert status == 400 and body["message"] == "resourceVersion should not be set on objects to be created"
    status, body, _ = api.call("POST", path, raw=b"{not json")
    assert status == 400 and body["reason"] == "BadRequest"
    status, body, _ = api.call("POST", path, cm("x"), content_type="text/plain")
    assert status == 415 and body["reason"] == "UnsupportedMediaType"
    # Without Content-Type the body is read as JSON, as the real server does (the Python client sends none).
    assert api.call("POST", path, cm("untyped"), content_type=None)[0] == 201

    status, generated, _ = api.call("POST", path, {"metadata": {"generateName": "gen-"}})
    assert (
        status == 201 and generated["metadata"]["name"].startswith("gen-") and len(generated["metadata"]["name"]) == 9
    )


def test_apps_errors_name_the_group(api: Client, ns: str) -> None:
    status, body, _ = api.call("GET", f"/apis/apps/v1/namespaces/{ns}/deployments/nope")
    assert status == 404 and body["message"] == 'deployments.apps "nope" not found'
    assert body["details"] == {"name": "nope", "group": "apps", "kind": "deployments"}
    broken = deployment("broken")
    broken["spec"]["template"]["metadata"]["labels"] = {"app": "other"}
    status, body, _ = api.call("POST", f"/apis/apps/v1/namespaces/{ns}/deployments", broken)
    assert status == 422 and "`selector` does not match template `labels`" in body["message"]


def test_update_conflict_and_resource_versions(api: Client, ns: str) -> None:
    path = f"/api/v1/namespaces/{ns}/configmaps"
    first = api.call("POST", path, cm("c", k="1"))[1]
    rv1 = int(first["metadata"]["resourceVersion"])
    first["data"]["k"] = "2"
    status, second, _ = api.call("PUT", f"{path}/c", first)
    assert status == 200 and int(second["metadata"]["resourceVersion"]) > rv1
    assert second["metadata"]["uid"] == first["metadata"]["uid"]

    status, body, _ = api.call("PUT", f"{path}/c", first)  # still carries rv1
    assert status == 409
    assert_status(
        body,
        409,
        "Conflict",
        'Operation cannot be fulfilled on configmaps "c": the object has been modified; please apply your changes '
        "to the latest version and try again",
    )
    unconditional = cm("c", k="3")
    status, third, _ = api.call("PUT", f"{path}/c", unconditional)
    assert status == 200 and third["data"] == {"k": "3"}
    # A write that changes nothing writes nothing: the resourceVersion stays.
    assert (
        api.call("PUT", f"{path}/c", unconditional)[1]["metadata"]["resourceVersion"]
        == third["metadata"]["resourceVersion"]
    )
    stale = [{"op": "replace", "path": "/metadata/resourceVersion", "value": str(rv1)}]
    status, _, _ = api.call("PATCH", f"{path}/c", stale, content_type="application/json-patch+json")
    assert status == 409
    assert api.call("PUT", f"{path}/absent", cm("absent"))[0] == 404
    status, body, _ = api.call("PUT", f"{path}/c", cm("other"))
    assert status == 400 and "does not match the name on the URL" in body["message"]


def test_patch_types(api: Client, ns: str) -> None:
    path = f"/api/v1/namespaces/{ns}/configmaps/p"
    api.call("POST", f"/api/v1/namespaces/{ns}/configmaps", cm("p", {"a": "1"}, x="1", y="2"))
    status, merged, _ = api.call(
        "PATCH", path, {"data": {"x": None, "z": "3"}}, content_type="application/merge-patch+json"
    )
    assert status == 200 and merged["data"] == {"y": "2", "z": "3"}
    status, strategic, _ = api.call(
        "PATCH", path, {"metadata": {"labels": {"b": "2"}}}, content_type="application/strategic-merge-patch+json"
    )
    assert status == 200 and strategic["metadata"]["labels"] == {"a": "1", "b": "2"}
    ops = [{"op": "add", "path": "/data/w", "value": "4"}, {"op": "remove", "path": "/data/y"}]
    status, patched, _ = api.call("PATCH", path, ops, content_type="application/json-patch+json")
    assert status == 200 and patched["data"] == {"z": "3", "w": "4"}
    status, body, _ = api.call(
        "PATCH", path, [{"op": "test", "path": "/data/w", "value": "no"}], content_type="application/json-patch+json"
    )
    assert status == 422
    for content_type in (JSON, None):
        status, body, _ = api.call("PATCH", path, {"data": {}}, content_type=content_type)
        assert status == 415 and body["reason"] == "UnsupportedMediaType"
    assert api.call("PATCH", f"{path}-none", {"data": {}}, content_type="application/merge-patch+json")[0] == 404


def test_delete(api: Client, ns: str) -> None:
    path = f"/api/v1/namespaces/{ns}/configmaps"
    uid = api.call("POST", path, cm("d"))[1]["metadata"]["uid"]
    status, body, _ = api.call("DELETE", f"{path}/d")
    assert status == 200
    assert body == {
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Success",
        "details": {"name": "d", "kind": "configmaps", "uid": uid},
    }
    status, body, _ = api.call("DELETE", f"{path}/d")
    assert status == 404 and body["message"] == 'configmaps "d" not found'
    # An object with finalizers stays, marked for deletion, until the last finalizer is removed.
    held = api.call("POST", path, {"metadata": {"name": "held", "finalizers": ["example.com/hold"]}})[1]
    status, marked, _ = api.call("DELETE", f"{path}/held")
    assert status == 200 and marked["metadata"]["deletionTimestamp"]
    assert api.call("GET", f"{path}/held")[0] == 200
    release = {"metadata": {"finalizers": None}}
    api.call("PATCH", f"{path}/held", release, content_type="application/merge-patch+json")
    assert api.call("GET", f"{path}/held")[0] == 404 and held["metadata"]["uid"]


def test_dry_run_stores_nothing(api: Client, ns: str) -> None:
    path = f"/api/v1/namespaces/{ns}/configmaps"
    status, body, _ = api.call("POST", f"{path}?dryRun=All", cm("dry", k="v"))
    assert status == 201 and body["data"] == {"k": "v"} and body["metadata"]["uid"]
    assert api.call("GET", f"{path}/dry")[0] == 404
    api.call("POST", path, cm("real", k="v"))
    assert api.call("DELETE", f"{path}/real?dryRun=All")[0] == 200
    status, body, _ = api.call("PUT", f"{path}/real?dryRun=All", cm("real", k="changed"))
    assert status == 200 and body["data"] == {"k": "changed"}
    assert api.call("GET", f"{path}/real")[1]["data"] == {"k": "v"}
    assert api.call("POST", f"{path}?dryRun=Some", cm("x"))[0] == 422


# -- lists ---------------------------------------------------------------------------------------------------------


def test_paging_across_1234_objects(api: Client, server: KubeAPIServer, ns: str) -> None:
    names = [f"obj-{i:05d}" for i in range(1234)]
    server.load([{**cm(n), "metadata": {"name": n, "namespace": ns}} for n in reversed(names)])
    path = f"/api/v1/namespaces/{ns}/configmaps?limit=100"
    seen: list[str] = []
    token, pages, remaining = "", 0, []
    while True:
        status, page, _ = api.call("GET", path + (f"&continue={token}" if token else ""))
        assert status == 200 and page["kind"] == "ConfigMapList"
        seen.extend(item["metadata"]["name"] for item in page["items"])
        pages += 1
        token = page["metadata"].get("continue", "")
        if not token:
            assert "remainingItemCount" not in page["metadata"]
            break
        remaining.append(page["metadata"]["remainingItemCount"])
    expected = sorted([*names, "kube-root-ca.crt"])
    assert seen == expected  # no duplicates, no gaps, etcd key order
    assert pages == 13 and remaining[0] == 1235 - 100 and remaining[-1] == 1235 - 1200


def test_expired_and_malformed_continue(api: Client, server: KubeAPIServer, ns: str) -> None:
    server.load([{**cm(f"e{i}"), "metadata": {"name": f"e{i}", "namespace": ns}} for i in range(5)])
    path = f"/api/v1/namespaces/{ns}/configmaps?limit=2"
    token = api.call("GET", path)[1]["metadata"]["continue"]
    server.expire_continue_tokens()
    status, body, _ = api.call("GET", f"{path}&continue={token}")
    assert status == 410
    assert_status(body, 410, "Expired")
    assert body["message"].startswith("The provided continue parameter is too old to display a consistent list result.")
    # Like etcd, the 410 carries a token that goes on without the consistency promise.
    status, rest, _ = api.call("GET", f"{path}&continue={body['metadata']['continue']}")
    assert status == 200 and [i["metadata"]["name"] for i in rest["items"]] == ["e2", "e3"]
    fresh = api.call("GET", path)[1]["metadata"]["continue"]
    assert api.call("GET", f"{path}&continue={fresh}")[0] == 200
    status, body, _ = api.call("GET", f"{path}&continue=not-a-token")
    assert status == 400 and body["reason"] == "BadRequest"


def test_list_items_of_builtins_and_cluster_wide_order(api: Client, server: KubeAPIServer) -> None:
    a, b = f"ord-{uuid.uuid4().hex[:6]}", None
    b = a + "-b"  # "<a>-b/..." sorts before "<a>/..." in etcd's byte order
    for name in (a, b):
        api.call("POST", "/api/v1/namespaces", {"metadata": {"name": name}})
        api.call("POST", f"/api/v1/namespaces/{name}/configmaps", cm("x"))
    listed = api.call("GET", "/api/v1/configmaps")[1]
    keys = [f"{i['metadata']['namespace']}/{i['metadata']['name']}" for i in listed["items"]]
    assert keys == sorted(keys) and keys.index(f"{b}/x") < keys.index(f"{a}/x")
    assert all("kind" not in i and "apiVersion" not in i for i in listed["items"])
    assert listed["apiVersion"] == "v1" and int(listed["metadata"]["resourceVersion"]) > 0


def test_label_and_field_selectors(api: Client, ns: str) -> None:
    path = f"/api/v1/namespaces/{ns}/configmaps"
    for name, labels in (("a", {"tier": "web", "env": "prod"}), ("b", {"tier": "db"}), ("c", {})):
        api.call("POST", path, cm(name, labels))

    def names(query: str) -> list[str]:
        status, body, _ = api.call("GET", f"{path}?{query}")
        assert status == 200, body
        return [i["metadata"]["name"] for i in body["items"] if i["metadata"]["name"] != "kube-root-ca.crt"]

    assert names("labelSelector=tier%3Dweb") == ["a"]
    assert names("labelSelector=tier%3D%3Dweb") == ["a"]
    assert names("labelSelector=tier!%3Dweb") == ["b", "c"]
    assert names("labelSelector=tier+in+(web,db)") == ["a", "b"]
    assert names("labelSelector=tier+notin+(web)") == ["b", "c"]
    assert names("labelSelector=env") == ["a"]
    assert names("labelSelector=!env") == ["b", "c"]
    assert names("labelSelector=tier,env%3Dprod") == ["a"]
    assert names("fieldSelector=metadata.name%3Db") == ["b"]
    assert names("fieldSelector=metadata.name!%3Db") == ["a", "c"]
    assert names(f"fieldSelector=metadata.namespace%3D%3D{ns}") == ["a", "b", "c"]
    status, body, _ = api.call("GET", f"{path}?labelSelector=tier+in+web")
    assert status == 400 and body["reason"] == "BadRequest"
    status, body, _ = api.call("GET", f"{path}?fieldSelector=spec.foo%3Dx")
    assert status == 400 and body["message"] == "field label not supported: spec.foo"
    status, page, _ = api.call("GET", f"{path}?labelSelector=tier&limit=1")
    assert "remainingItemCount" not in page["metadata"] and page["metadata"]["continue"]


# -- subresources, generation, defaults ----------------------------------------------------------------------------


def test_status_subresource_and_generation(api: Client, ns: str) -> None:
    path = f"/apis/apps/v1/namespaces/{ns}/deployments"
    created = api.call("POST", path, {**deployment("web"), "status": {"replicas": 9}})[1]
    assert created["status"] == {} and created["metadata"]["generation"] == 1
    current = api.call("GET", f"{path}/web")[1]
    current["status"] = {"replicas": 1, "readyReplicas": 1}
    current["metadata"]["labels"] = {"ignored": "yes"}
    status, updated, _ = api.call("PUT", f"{path}/web/status", current)
    assert status == 200 and updated["status"] == {"replicas": 1, "readyReplicas": 1}
    assert "labels" not in updated["metadata"] and updated["metadata"]["generation"] == 1
    # On the main resource status changes are ignored, spec changes bump generation.
    updated["status"] = {"replicas": 5}
    updated["spec"]["replicas"] = 3
    status, main, _ = api.call("PUT", f"{path}/web", updated)
    assert status == 200 and main["status"] == {"replicas": 1, "readyReplicas": 1}
    assert main["metadata"]["generation"] == 2 and main["spec"]["replicas"] == 3
    patch = {"status": {"replicas": 3}}
    status, patched, _ = api.call("PATCH", f"{path}/web/status", patch, content_type="application/merge-patch+json")
    assert status == 200 and patched["status"]["replicas"] == 3 and patched["metadata"]["generation"] == 2
    labelled = api.call(
        "PATCH", f"{path}/web", {"metadata": {"labels": {"x": "y"}}}, content_type="application/merge-patch+json"
    )[1]
    assert labelled["metadata"]["generation"] == 2
    status, scale, _ = api.call(
        "PATCH", f"{path}/web/scale", {"spec": {"replicas": 5}}, content_type="application/merge-patch+json"
    )
    assert status == 200 and scale["kind"] == "Scale" and scale["spec"]["replicas"] == 5
    assert scale["status"]["selector"] == "app=web"
    assert api.call("GET", f"{path}/web")[1]["spec"]["replicas"] == 5
    assert api.call("GET", f"/api/v1/namespaces/{ns}/configmaps/x/status")[0] == 404


def test_service_and_deployment_defaults(api: Client, ns: str) -> None:
    svc = {
        "metadata": {"name": "web"},
        "spec": {"type": "NodePort", "selector": {"app": "web"}, "ports": [{"name": "http", "port": 80}]},
    }
    status, created, _ = api.call("POST", f"/api/v1/namespaces/{ns}/services", svc)
    assert status == 201
    spec = created["spec"]
    assert spec["clusterIP"].startswith("10.") and spec["clusterIPs"] == [spec["clusterIP"]]
    assert spec["sessionAffinity"] == "None" and spec["ipFamilies"] == ["IPv4"]
    assert spec["ipFamilyPolicy"] == "SingleStack" and spec["internalTrafficPolicy"] == "Cluster"
    port = spec["ports"][0]
    assert port["protocol"] == "TCP" and port["targetPort"] == 80 and 30000 <= port["nodePort"] <= 32767
    headless = {"metadata": {"name": "db"}, "spec": {"clusterIP": "None", "ports": [{"port": 5432}]}}
    spec = api.call("POST", f"/api/v1/namespaces/{ns}/services", headless)[1]["spec"]
    assert spec["type"] == "ClusterIP" and spec["clusterIP"] == "None" and spec["clusterIPs"] == ["None"]
    # An update without clusterIP keeps the allocated one, as the real server does.
    created["spec"].pop("clusterIP")
    created["spec"].pop("clusterIPs")
    updated = api.call("PUT", f"/api/v1/namespaces/{ns}/services/web", created)[1]
    assert updated["spec"]["clusterIP"] == spec_ip(api, ns, "web")

    dep = api.call("POST", f"/apis/apps/v1/namespaces/{ns}/deployments", deployment("app"))[1]["spec"]
    assert dep["replicas"] == 1 and dep["revisionHistoryLimit"] == 10 and dep["progressDeadlineSeconds"] == 600
    assert dep["strategy"] == {"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": "25%", "maxSurge": "25%"}}
    pod = dep["template"]["spec"]
    assert pod["restartPolicy"] == "Always" and pod["dnsPolicy"] == "ClusterFirst"
    assert pod["schedulerName"] == "default-scheduler" and pod["terminationGracePeriodSeconds"] == 30
    assert pod["securityContext"] == {}
    container = pod["containers"][0]
    assert container["imagePullPolicy"] == "IfNotPresent" and container["terminationMessagePolicy"] == "File"
    assert container["terminationMessagePath"] == "/dev/termination-log"


def spec_ip(api: Client, ns: str, name: str) -> str:
    return str(api.call("GET", f"/api/v1/namespaces/{ns}/services/{name}")[1]["spec"]["clusterIP"])


def test_namespace_secret_and_pvc_defaults(api: Client, ns: str) -> None:
    namespace = api.call("GET", f"/api/v1/namespaces/{ns}")[1]
    assert namespace["spec"] == {"finalizers": ["kubernetes"]} and namespace["status"] == {"phase": "Active"}
    assert namespace["metadata"]["labels"] == {"kubernetes.io/metadata.name": ns}
    secret = {"metadata": {"name": "s"}, "stringData": {"password": "hunter2"}}
    created = api.call("POST", f"/api/v1/namespaces/{ns}/secrets", secret)[1]
    assert created["type"] == "Opaque" and "stringData" not in created
    assert base64.b64decode(created["data"]["password"]) == b"hunter2"
    pvc = {
        "metadata": {"name": "data"},
        "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "1Gi"}}},
    }
    created = api.call("POST", f"/api/v1/namespaces/{ns}/persistentvolumeclaims", pvc)[1]
    assert created["spec"]["volumeMode"] == "Filesystem" and created["status"] == {"phase": "Pending"}
    # What the namespace controllers add to every namespace, as on a real cluster.
    assert api.call("GET", f"/api/v1/namespaces/{ns}/serviceaccounts/default")[0] == 200
    assert api.call("GET", f"/api/v1/namespaces/{ns}/configmaps/kube-root-ca.crt")[0] == 200


def pod(name: str = "", *, generate_name: str = "", service_account: str | None = None) -> dict[str, Any]:
    meta = {"name": name} if name else {"generateName": generate_name}
    spec: dict[str, Any] = {"containers": [{"name": "c", "image": "registry.k8s.io/pause:3.9"}]}
    if service_account is not None:
        spec["serviceAccountName"] = service_account
    return {"apiVersion": "v1", "kind": "Pod", "metadata": meta, "spec": spec}


def test_pods_need_their_service_account(api: Client, ns: str) -> None:
    created = api.call("POST", f"/api/v1/namespaces/{ns}/pods", pod("p"))
    assert created[0] == 201 and created[1]["spec"]["serviceAccountName"] == "default"
    status, body, _ = api.call("POST", f"/api/v1/namespaces/{ns}/pods", pod("q", service_account="builder"))
    message = f'pods "q" is forbidden: error looking up service account {ns}/builder: serviceaccount "builder" '
    message += "not found"
    assert_status(body, 403, "Forbidden", message)
    assert body["details"] == {"name": "q", "kind": "pods"}
    # Admission runs before the server generates a name, so the message names the prefix.
    status, body, _ = api.call("POST", f"/api/v1/namespaces/{ns}/pods", pod(generate_name="q-", service_account="b"))
    assert status == 403 and body["message"].startswith('pods "q-" is forbidden: error looking up service account')
    assert api.call("POST", f"/api/v1/namespaces/{ns}/pods?dryRun=All", pod("q", service_account="builder"))[0] == 403
    api.call("POST", f"/api/v1/namespaces/{ns}/serviceaccounts", {"metadata": {"name": "builder"}})
    assert api.call("POST", f"/api/v1/namespaces/{ns}/pods", pod("q", service_account="builder"))[0] == 201


def test_without_controllers_no_default_service_account_so_pods_naming_none_are_refused() -> None:
    with KubeAPIServer(namespace_delete_delay=0) as srv:
        api = Client(srv)
        assert api.call("POST", "/api/v1/namespaces", {"metadata": {"name": "bare"}})[0] == 201
        assert api.call("GET", "/api/v1/namespaces/bare/serviceaccounts/default")[0] == 404
        status, body, _ = api.call("POST", "/api/v1/namespaces/bare/pods", pod("p"))
        message = 'pods "p" is forbidden: error looking up service account bare/default: serviceaccount "default" '
        message += "not found"
        assert_status(body, 403, "Forbidden", message)
        assert api.call("GET", "/api/v1/namespaces/bare/pods/p")[0] == 404
        # What kube-controller-manager's serviceaccount controller would have done.
        api.call("POST", "/api/v1/namespaces/bare/serviceaccounts", {"metadata": {"name": "default"}})
        assert api.call("POST", "/api/v1/namespaces/bare/pods", pod("p"))[0] == 201


def test_default_namespaces_exist(api: Client) -> None:
    names = {i["metadata"]["name"] for i in api.call("GET", "/api/v1/namespaces")[1]["items"]}
    assert {"default", "kube-system", "kube-public", "kube-node-lease"} <= names


def test_namespace_deletion_cascades(api: Client, ns: str) -> None:
    api.call("POST", f"/api/v1/namespaces/{ns}/configmaps", cm("doomed"))
    api.call("POST", f"/apis/apps/v1/namespaces/{ns}/deployments", deployment("doomed"))
    status, body, _ = api.call("DELETE", f"/api/v1/namespaces/{ns}")
    assert status == 200 and body["status"]["phase"] == "Terminating" and body["metadata"]["deletionTimestamp"]
    status, body, _ = api.call("POST", f"/api/v1/namespaces/{ns}/configmaps", cm("late"))
    assert status == 403
    message = f'configmaps "late" is forbidden: unable to create new content in namespace {ns} because it is being '
    assert_status(body, 403, "Forbidden", message + "terminated")
    assert api.call("DELETE", f"/api/v1/namespaces/{ns}")[0] == 409
    deadline = time.monotonic() + 5
    while api.call("GET", f"/api/v1/namespaces/{ns}")[0] != 404:
        assert time.monotonic() < deadline, "namespace was not removed"
        time.sleep(0.02)
    assert api.call("GET", f"/api/v1/namespaces/{ns}/configmaps")[1]["items"] == []
    assert api.call("GET", f"/apis/apps/v1/namespaces/{ns}/deployments/doomed")[0] == 404


# -- authentication, authorization, faults -------------------------------------------------------------------------


def test_requests_need_the_bearer_token(api: Client) -> None:
    for token in (None, "wrong"):
        status, body, _ = api.call("GET", "/api/v1/namespaces", token=token)
        assert status == 401
        assert_status(body, 401, "Unauthorized", "Unauthorized")


def test_forbid(api: Client, server: KubeAPIServer, ns: str) -> None:
    server.forbid("secrets")
    status, body, _ = api.call("GET", "/api/v1/secrets")
    assert status == 403
    assert_status(
        body,
        403,
        "Forbidden",
        'secrets is forbidden: User "kubernetes-admin" cannot list resource '
        '"secrets" in API group "" at the cluster scope',
    )
    status, body, _ = api.call("GET", f"/api/v1/namespaces/{ns}/secrets")
    assert status == 403 and body["message"].endswith(f'in the namespace "{ns}"')
    assert api.call("GET", f"/api/v1/namespaces/{ns}/configmaps")[0] == 200
    server.forbid("deployments.apps", verbs=("get", "list"))
    status, body, _ = api.call("GET", f"/apis/apps/v1/namespaces/{ns}/deployments/x")
    assert status == 403 and body["message"].startswith('deployments.apps "x" is forbidden')
    review = {
        "apiVersion": "authorization.k8s.io/v1",
        "kind": "SelfSubjectAccessReview",
        "spec": {"resourceAttributes": {"verb": "list", "resource": "secrets", "namespace": ns}},
    }
    status, body, _ = api.call("POST", "/apis/authorization.k8s.io/v1/selfsubjectaccessreviews", review)
    assert status == 201 and body["status"]["allowed"] is False
    assert api.call("GET", "/apis/authorization.k8s.io/v1/selfsubjectaccessreviews")[0] == 405


def test_fault_injection(api: Client, server: KubeAPIServer, ns: str) -> None:
    path = f"/api/v1/namespaces/{ns}/configmaps"
    server.faults.inject(500, method="GET", path=r"/configmaps$", nth=2, count=2)
    codes = [api.call("GET", path)[0] for _ in range(5)]
    assert codes == [200, 500, 500, 200, 200]
    server.faults.inject(429, path="/configmaps", retry_after=3)
    status, body, headers = api.call("GET", path)
    assert status == 429 and headers["Retry-After"] == "3"
    assert_status(body, 429, "TooManyRequests")
    assert body["details"]["retryAfterSeconds"] == 3
    assert api.call("GET", path)[0] == 200
    server.faults.inject(503, method="POST")
    assert api.call("GET", path)[0] == 200  # the method does not match
    status, body, _ = api.call("POST", path, cm("unlucky"))
    assert status == 503 and body["reason"] == "ServiceUnavailable"
    assert api.call("GET", f"{path}/unlucky")[0] == 404  # the failed write did not happen
    server.faults.inject(500, method="POST", after=True)
    assert api.call("POST", path, cm("lost-reply"))[0] == 500
    assert api.call("GET", f"{path}/lost-reply")[0] == 200  # the write happened, only its answer was lost
    server.faults.inject(410, path="/configmaps")
    status, body, _ = api.call("GET", path)
    assert status == 410 and body["reason"] == "Expired"


def test_request_log(api: Client, server: KubeAPIServer, ns: str) -> None:
    server.clear_requests()
    api.call("POST", f"/api/v1/namespaces/{ns}/configmaps", cm("logged"))
    api.call("GET", f"/api/v1/namespaces/{ns}/configmaps?limit=5")
    method, path, query, status = server.requests[-1]
    assert (method, path, query, status) == ("GET", f"/api/v1/namespaces/{ns}/configmaps", {"limit": "5"}, 200)
    writes = server.write_requests()
    assert [(r.method, r.status) for r in writes] == [("POST", 201)]


# -- seeding and process mode --------------------------------------------------------------------------------------


def test_load_keeps_status_and_applies_defaults(api: Client, server: KubeAPIServer) -> None:
    name = f"load-{uuid.uuid4().hex[:6]}"
    dep = {**deployment("seeded"), "status": {"replicas": 1, "readyReplicas": 1}}
    dep["metadata"] = {"name": "seeded", "namespace": name}
    assert server.load([dep, {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}}]) == 2
    got = api.call("GET", f"/apis/apps/v1/namespaces/{name}/deployments/seeded")[1]
    assert got["status"] == {"replicas": 1, "readyReplicas": 1} and got["spec"]["revisionHistoryLimit"] == 10
    with pytest.raises(Exception, match="Invalid|invalid"):
        server.load([{"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "Bad", "namespace": name}}])


def test_bulk_endpoint(api: Client) -> None:
    name = f"bulk-{uuid.uuid4().hex[:6]}"
    objects = [{"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}}]
    objects += [{**cm(f"b{i}"), "metadata": {"name": f"b{i}", "namespace": name}} for i in range(50)]
    assert api.call("POST", "/_lifeboat/bulk", objects, token=None)[0] == 401
    status, body, _ = api.call("POST", "/_lifeboat/bulk", objects)
    assert status == 200 and body == {"loaded": 51}
    assert len(api.call("GET", f"/api/v1/namespaces/{name}/configmaps")[1]["items"]) == 51  # + kube-root-ca.crt


def test_list_page_is_fast(api: Client, server: KubeAPIServer) -> None:
    name = f"perf-{uuid.uuid4().hex[:6]}"
    payload = "x" * 700
    objects = [{"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}}]
    objects += [
        {**cm(f"p{i:04d}", payload=payload), "metadata": {"name": f"p{i:04d}", "namespace": name}} for i in range(1000)
    ]
    server.load(objects)
    path = f"/api/v1/namespaces/{name}/configmaps?limit=500"
    api.call("GET", path)
    start = time.perf_counter()
    for _ in range(10):
        status, body, _ = api.call("GET", path)
        assert status == 200 and len(body["items"]) == 500
    # A few ms per page on a laptop; the bound is loose so a busy CI machine does not flake.
    assert (time.perf_counter() - start) / 10 < 0.25


def test_process_mode(tmp_path: Path) -> None:
    kubeconfig = tmp_path / "kubeconfig"
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    proc = subprocess.Popen(
        [sys.executable, "-m", "sandbox.kubeapi", "--kubeconfig-out", str(kubeconfig)],
        cwd=REPO,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline().strip()
        assert line.startswith("READY https://127.0.0.1:")
        url = line.split(" ", 1)[1]
        config = yaml.safe_load(kubeconfig.read_text())
        cluster = config["clusters"][0]["cluster"]
        assert cluster["server"] == url and config["current-context"] == "lifeboat-sandbox"
        context = ssl.create_default_context(cadata=base64.b64decode(cluster["certificate-authority-data"]).decode())
        http = urllib3.PoolManager(ssl_context=context, retries=False)
        token = config["users"][0]["user"]["token"]
        resp = http.request("GET", url + "/version", headers={"Authorization": f"Bearer {token}"})
        assert resp.status == 200 and json.loads(resp.data)["gitVersion"].startswith("v1.")
    finally:
        proc.terminate()
        code = proc.wait(timeout=10)
    assert code == 0
    assert (kubeconfig.stat().st_mode & 0o077) == 0  # the token is not readable by others


def test_plain_http_without_namespace_controllers() -> None:
    with KubeAPIServer(tls=False, token="fixed-token") as srv:
        assert srv.url.startswith("http://") and srv.ca_pem == b""
        assert "certificate-authority-data" not in srv.kubeconfig()["clusters"][0]["cluster"]
        http = urllib3.PoolManager(retries=False)
        headers = {"Authorization": "Bearer fixed-token", "Content-Type": JSON}
        body = json.dumps({"metadata": {"name": "empty"}}).encode()
        assert http.request("POST", srv.url + "/api/v1/namespaces", body=body, headers=headers).status == 201
        listed = json.loads(http.request("GET", srv.url + "/api/v1/namespaces/empty/configmaps", headers=headers).data)
        assert listed["items"] == []  # by default a new namespace holds only what the test puts there
