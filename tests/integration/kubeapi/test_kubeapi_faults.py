"""The Kubernetes API test server's controls: bearer tokens, forbidden resources, injected faults, the request log."""

from __future__ import annotations

import pytest

from sandbox.kubeapi import KubeAPIServer
from tests.support.kubeapi import Client, assert_status, cm

pytestmark = pytest.mark.fakeonly


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
