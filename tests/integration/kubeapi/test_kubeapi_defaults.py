"""The Kubernetes API test server's status subresource, defaults, ServiceAccount admission and namespace lifecycle."""

from __future__ import annotations

import base64
import time
from typing import Any

import pytest

from sandbox.kubeapi import KubeAPIServer
from tests.support.kubeapi import Client, assert_status, cm, deployment

pytestmark = pytest.mark.fakeonly


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
