"""Fixtures the integration tests share: services on the moto-backed table and bucket, the seeded sample app."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from chalicelib.services import Services
from chalicelib.settings import Settings
from tests.conftest import TEST_BUCKET, TEST_REGION, TEST_TABLE


@pytest.fixture
def services(bucket: str, table: str) -> Services:
    return Services(Settings(table=TEST_TABLE, bucket=TEST_BUCKET, region=TEST_REGION))


@pytest.fixture
def app_ns(kube_client: Any) -> Iterator[Any]:
    """The sample application under a unique suffix, removed afterwards."""
    from sandbox.sample_app import remove_sample_app, seed_sample_app

    suffix = f"-{uuid.uuid4().hex[:6]}"
    report = seed_sample_app(kube_client, suffix=suffix)
    yield report
    remove_sample_app(kube_client, suffix=suffix)
