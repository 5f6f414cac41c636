"""Fixtures of the KubeClient tests: recorded sleeps, credentials from the kubeconfig, a client, the fake server."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from chalicelib.kube import ClusterCredentials, KubeClient, load_kubeconfig
from tests.support.kube import Sleeps


@pytest.fixture
def sleeps() -> Sleeps:
    return Sleeps()


@pytest.fixture
def credentials(kubeconfig_path: Path) -> ClusterCredentials:
    return load_kubeconfig(kubeconfig_path.read_text())


@pytest.fixture
def client(credentials: ClusterCredentials, sleeps: Sleeps) -> Iterator[KubeClient]:
    """A client whose backoff sleeps are recorded instead of slept."""
    with KubeClient(credentials, sleep=sleeps) as kube:
        yield kube


@pytest.fixture
def fake(fake_kube: Any) -> Iterator[Any]:
    """The test server, with faults and forbidden types cleared afterwards too, so nothing leaks into the next test."""
    yield fake_kube
    fake_kube.faults.clear()
    fake_kube.allow_all()
