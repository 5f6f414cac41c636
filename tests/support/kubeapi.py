"""A plain HTTPS client of the Kubernetes API test server, and the objects and Status checks its tests use."""

from __future__ import annotations

import json
import ssl
from pathlib import Path
from typing import Any

import urllib3

from sandbox.kubeapi import KubeAPIServer

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
        accept: str | None = None,
    ) -> tuple[int, Any, urllib3.HTTPHeaderDict]:
        headers = {"Accept": accept} if accept else {}
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
