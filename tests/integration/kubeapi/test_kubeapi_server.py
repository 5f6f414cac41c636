"""The Kubernetes API test server as a whole: loading objects, the bulk endpoint, process mode, plain HTTP."""

from __future__ import annotations

import base64
import json
import os
import ssl
import subprocess
import sys
import uuid
from pathlib import Path

import pytest
import urllib3
import yaml

from sandbox.kubeapi import KubeAPIServer
from tests.support.kubeapi import JSON, REPO, Client, cm, deployment

pytestmark = pytest.mark.fakeonly


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
