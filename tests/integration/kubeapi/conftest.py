"""Fixtures of the Kubernetes API test server tests: a server per module, a client, a fresh namespace."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest

from sandbox.kubeapi import KubeAPIServer
from tests.support.kubeapi import Client


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
