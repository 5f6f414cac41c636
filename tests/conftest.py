"""Shared fixtures: the Kubernetes API (test server, or a real cluster) and emulated AWS."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

REAL_KUBECONFIG = os.environ.get("LIFEBOAT_TEST_KUBECONFIG")
TEST_REGION = "us-east-1"
TEST_BUCKET = "lifeboat-test-primary"
TEST_TABLE = "lifeboat-test"


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if not REAL_KUBECONFIG:
        return
    skip = pytest.mark.skip(reason="needs the Kubernetes API test server (fault injection), not a real cluster")
    for item in items:
        if "fakeonly" in item.keywords:
            item.add_marker(skip)


@pytest.fixture(scope="session")
def kube_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """The Kubernetes API test server, or None when a real cluster is configured."""
    if REAL_KUBECONFIG:
        yield None
        return
    from sandbox.kubeapi import KubeAPIServer

    server = KubeAPIServer()
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def fake_kube(kube_server: Any) -> Any:
    """The test server itself (fault injection, request log); skips the test against a real cluster."""
    if kube_server is None:
        pytest.skip("needs the Kubernetes API test server")
    kube_server.faults.clear()
    kube_server.clear_requests()
    return kube_server


@pytest.fixture(scope="session")
def kubeconfig_path(kube_server: Any, tmp_path_factory: pytest.TempPathFactory) -> Path:
    if kube_server is None:
        return Path(REAL_KUBECONFIG or "")
    path = tmp_path_factory.mktemp("kube") / "kubeconfig"
    kube_server.write_kubeconfig(path)
    return path


@pytest.fixture
def kube_client(kubeconfig_path: Path) -> Any:
    from chalicelib.kube import KubeClient

    return KubeClient.from_kubeconfig(kubeconfig_path.read_text())


@pytest.fixture
def test_namespace(kube_client: Any) -> Iterator[str]:
    """A fresh namespace, removed afterwards (a real cluster may keep it Terminating for a while)."""
    name = f"lbt-{uuid.uuid4().hex[:8]}"
    kube_client.create_namespace(name)
    try:
        yield name
    finally:
        kube_client.delete_namespace(name)


@pytest.fixture
def aws(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Emulated AWS in process (moto), with fake credentials so nothing can reach a real account."""
    for key, value in {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_SESSION_TOKEN": "testing",
        "AWS_DEFAULT_REGION": TEST_REGION,
    }.items():
        monkeypatch.setenv(key, value)
    from moto import mock_aws

    with mock_aws():
        yield


@pytest.fixture
def s3(aws: None) -> Any:
    import boto3

    return boto3.client("s3", region_name=TEST_REGION)


@pytest.fixture
def bucket(s3: Any) -> str:
    s3.create_bucket(Bucket=TEST_BUCKET)
    return TEST_BUCKET


@pytest.fixture
def dynamodb(aws: None) -> Any:
    import boto3

    return boto3.client("dynamodb", region_name=TEST_REGION)


@pytest.fixture
def table(dynamodb: Any) -> str:
    from chalicelib.catalog.schema import create_table

    create_table(dynamodb, TEST_TABLE)
    return TEST_TABLE
