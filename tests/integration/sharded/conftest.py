"""Fixtures of the sharded backup tests: two repositories side by side, the sample app, one big namespace."""

from __future__ import annotations

from typing import Any

import pytest

from chalicelib.services import Services
from tests.support.sharded import CM, make_services


@pytest.fixture
def repos(bucket: str, table: str) -> tuple[Services, Services]:
    """Two repositories in one bucket: the one-shot backup's and the sharded backup's (each writes every blob)."""
    return make_services("oneshot/lifeboat/v1/"), make_services("sharded/lifeboat/v1/")


@pytest.fixture
def big_namespace(kube_client: Any, test_namespace: str) -> str:
    for i in range(300):
        body = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": f"cfg-{i:04d}"}, "data": {"i": str(i)}}
        kube_client.create(CM, body, namespace=test_namespace)
    return test_namespace
