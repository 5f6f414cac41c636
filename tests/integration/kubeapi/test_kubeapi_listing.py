"""The Kubernetes API test server's lists: paging, continue tokens, order, label and field selectors."""

from __future__ import annotations

import time
import uuid

import pytest

from sandbox.kubeapi import KubeAPIServer
from tests.support.kubeapi import Client, assert_status, cm

pytestmark = pytest.mark.fakeonly


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


PARTIAL = "application/json;as=PartialObjectMetadataList;g=meta.k8s.io;v=v1"


def test_lists_as_object_metadata_only(api: Client, server: KubeAPIServer, ns: str) -> None:
    labels = [{"tier": "a" if i % 2 else "b"} for i in range(7)]
    server.load(
        [
            {**cm(f"m{i}", big="x" * 2000), "metadata": {"name": f"m{i}", "namespace": ns, "labels": labels[i]}}
            for i in range(7)
        ]
    )
    patched = {"metadata": {"annotations": {"edited": "yes"}}}
    api.call("PATCH", f"/api/v1/namespaces/{ns}/configmaps/m1", patched, content_type="application/merge-patch+json")
    path = f"/api/v1/namespaces/{ns}/configmaps?limit=3"
    full: list[dict] = []
    token = ""
    while True:
        status, page, _ = api.call("GET", path + (f"&continue={token}" if token else ""))
        full.extend(page["items"])
        token = page["metadata"].get("continue", "")
        if not token:
            break
    # Pages as metadata, then the same list's next page whole: a continue token serves either form.
    status, first, _ = api.call("GET", path, accept=f"{PARTIAL},application/json")
    assert status == 200
    assert (first["kind"], first["apiVersion"]) == ("PartialObjectMetadataList", "meta.k8s.io/v1")
    assert first["metadata"]["remainingItemCount"] == len(full) - 3
    assert all(set(item) == {"kind", "apiVersion", "metadata"} for item in first["items"])
    assert {(i["kind"], i["apiVersion"]) for i in first["items"]} == {("PartialObjectMetadata", "meta.k8s.io/v1")}
    assert [i["metadata"] for i in first["items"]] == [i["metadata"] for i in full[:3]]
    status, second, _ = api.call("GET", f"{path}&continue={first['metadata']['continue']}")
    assert second["kind"] == "ConfigMapList" and second["items"] == full[3:6]
    # A selected list as metadata holds what the full one holds.
    selected = api.call("GET", f"/api/v1/namespaces/{ns}/configmaps?labelSelector=tier%3Da", accept=PARTIAL)[1]
    assert [i["metadata"]["name"] for i in selected["items"]] == ["m1", "m3", "m5"]
    # The edited object's metadata is its current version's.
    assert selected["items"][0]["metadata"] == next(i["metadata"] for i in full if i["metadata"]["name"] == "m1")
    assert selected["items"][0]["metadata"]["annotations"] == {"edited": "yes"}


def test_accept_ranges_as_the_api_server_reads_them(api: Client, ns: str) -> None:
    path = f"/api/v1/namespaces/{ns}/configmaps"
    assert api.call("GET", path, accept=f"application/json,{PARTIAL}")[1]["kind"] == "ConfigMapList"
    assert api.call("GET", path, accept=PARTIAL.replace(";", " ; "))[1]["kind"] == "PartialObjectMetadataList"
    unknown = "application/json;as=Table;g=meta.k8s.io;v=v1"
    assert api.call("GET", path, accept=f"{unknown},application/json")[1]["kind"] == "ConfigMapList"
    status, body, _ = api.call("GET", path, accept=unknown)
    assert status == 406
    assert_status(body, 406, "NotAcceptable")
