"""The Chalice handlers for backups, through chalice.test.Client, against moto and the Kubernetes API."""

from __future__ import annotations

import json
import uuid
from typing import Any

import pytest
from chalice.test import Client

from chalicelib import services as services_module
from chalicelib.services import Services
from chalicelib.settings import Settings
from tests.conftest import TEST_BUCKET, TEST_REGION, TEST_TABLE


@pytest.fixture
def app_client(bucket: str, table: str) -> Any:
    import app as app_module

    services_module.set_services(Services(Settings(table=TEST_TABLE, bucket=TEST_BUCKET, region=TEST_REGION)))
    try:
        with Client(app_module.app) as client:
            yield client
    finally:
        services_module.set_services(None)


@pytest.fixture
def namespace_with_config(kube_client: Any, test_namespace: str) -> str:
    from chalicelib.core.resources import Resource

    cm = Resource("", "v1", "ConfigMap", "configmaps", True, frozenset({"create"}))
    for i in range(3):
        kube_client.create(cm, {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": f"cfg-{i}"},
                                "data": {"i": str(i)}}, namespace=test_namespace)
    return test_namespace


def _job(kubeconfig_path: Any, namespace: str, job_id: str | None = None) -> dict[str, Any]:
    return {
        "job_id": job_id or f"job-{uuid.uuid4()}",
        "cluster": {"name": "handler-test", "auth": {"type": "kubeconfig", "kubeconfig": kubeconfig_path.read_text()}},
        "scope": {"include_namespaces": [namespace]},
    }


def test_run_backup_function(app_client, kubeconfig_path, namespace_with_config):
    result = app_client.lambda_.invoke("run_backup", _job(kubeconfig_path, namespace_with_config)).payload
    assert result["status"] == "Completed", result
    assert result["counts"]["objects"] >= 4  # the namespace and its three ConfigMaps


def test_sqs_worker_is_idempotent_per_job(app_client, kubeconfig_path, namespace_with_config):
    body = json.dumps(_job(kubeconfig_path, namespace_with_config, job_id="sqs-job-1"))
    event = app_client.events.generate_sqs_event(message_bodies=[body], queue_name="lifeboat-backup-jobs")
    app_client.lambda_.invoke("backup_worker", event)
    app_client.lambda_.invoke("backup_worker", event)  # redelivery
    records, _ = services_module.get_services().catalog().list("handler-test")
    assert len(records) == 1 and records[0].state == "Completed"


def test_malformed_job_is_rejected_not_retried(app_client):
    result = app_client.lambda_.invoke("run_backup", {"job_id": "x", "cluster": {"name": "c"}}).payload
    assert result["status"] == "rejected"
    assert "auth.type" in result["error"]
