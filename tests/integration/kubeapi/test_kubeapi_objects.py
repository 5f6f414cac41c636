"""The Kubernetes API test server's create, read, update, patch and delete, with kube-apiserver's error codes."""

from __future__ import annotations

import uuid

import pytest

from tests.support.kubeapi import JSON, Client, assert_status, cm, deployment

pytestmark = pytest.mark.fakeonly


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
