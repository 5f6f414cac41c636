"""The Kubernetes API test server's discovery, and CustomResourceDefinitions registering types."""

from __future__ import annotations

import json

import pytest

from tests.support.kubeapi import Client, assert_status

pytestmark = pytest.mark.fakeonly


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


AGGREGATED = "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList,application/json"


def test_aggregated_discovery(api: Client) -> None:
    status, core, headers = api.call("GET", "/api", accept=AGGREGATED)
    assert status == 200 and headers["Content-Type"].startswith("application/json;g=apidiscovery.k8s.io;v=v2")
    assert (core["kind"], core["apiVersion"]) == ("APIGroupDiscoveryList", "apidiscovery.k8s.io/v2")
    (item,) = core["items"]
    assert item["metadata"] == {} and [v["version"] for v in item["versions"]] == ["v1"]
    pods = next(r for r in item["versions"][0]["resources"] if r["resource"] == "pods")
    assert pods["responseKind"] == {"group": "", "version": "v1", "kind": "Pod"} and pods["scope"] == "Namespaced"
    assert {"log", "status", "exec"} <= {sub["subresource"] for sub in pods["subresources"]}
    groups = {g["metadata"]["name"]: g for g in api.call("GET", "/apis", accept=AGGREGATED)[1]["items"]}
    plain = api.call("GET", "/apis")[1]["groups"]
    assert list(groups) == [g["name"] for g in plain]  # the same groups, in the same order
    assert [v["version"] for v in groups["autoscaling"]["versions"]] == ["v2", "v1"]  # preferred first
    apps = {r["resource"]: r for r in groups["apps"]["versions"][0]["resources"]}
    assert apps["deployments"]["shortNames"] == ["deploy"] and apps["deployments"]["verbs"] == list(
        {r["name"]: r for r in api.call("GET", "/apis/apps/v1")[1]["resources"]}["deployments"]["verbs"]
    )
    scale = next(sub for sub in apps["deployments"]["subresources"] if sub["subresource"] == "scale")
    assert scale["responseKind"] == {"group": "autoscaling", "version": "v1", "kind": "Scale"}
    assert {g["versions"][0]["freshness"] for g in groups.values()} == {"Current"}
    nodes = next(r for r in item["versions"][0]["resources"] if r["resource"] == "nodes")
    assert nodes["scope"] == "Cluster"


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
