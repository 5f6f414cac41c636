"""Provisioning for API tests: registered clusters, API clients with fixed keys, signed request headers."""

from __future__ import annotations

import time
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

from chalicelib.api.client_secrets import secret_id_for
from chalicelib.api.signature import SignedRequest, sign
from chalicelib.catalog.api_clients import ApiClientCatalog, ApiClientRecord
from chalicelib.catalog.clusters import ClusterCatalog
from chalicelib.catalog.dynamo import iso

EVERYTHING = {"read": ["*"], "restore_from": ["*"], "restore_into": ["*"], "policies": ["*"]}


def register_clusters(dynamodb: Any, table: str, *names: str) -> None:
    clusters = ClusterCatalog(dynamodb, table)
    for name in names:
        auth = {"type": "kubeconfig_secret", "secret_id": f"lifeboat/clusters/{name}"}
        clusters.register(name, auth, kubernetes_version=None, now=datetime.now(UTC))


def add_client(
    dynamodb: Any, secretsmanager: Any, table: str, client_id: str, grant: Mapping[str, list[str]], *keys: str
) -> None:
    """A client whose keys are ``keys`` (oldest first): more than one means it was rotated a minute ago."""
    secret_id = secret_id_for(client_id)
    secretsmanager.create_secret(Name=secret_id, SecretString=keys[0])
    for key in keys[1:]:
        secretsmanager.put_secret_value(SecretId=secret_id, SecretString=key)
    now = datetime.now(UTC)
    rotated = len(keys) > 1
    ApiClientCatalog(dynamodb, table).create(
        ApiClientRecord(
            client_id=client_id,
            secret_id=secret_id,
            grant=dict(grant),
            created_at=iso(now - timedelta(days=1)),
            rotated_at=iso(now - timedelta(minutes=1)) if rotated else None,
            previous_valid_until=iso(now + timedelta(minutes=59)) if rotated else None,
        )
    )


def signed_headers(
    client_id: str,
    key: str,
    method: str,
    path: str,
    body: bytes = b"",
    query: Mapping[str, str] | None = None,
    t: float | None = None,
    **headers: str,
) -> dict[str, str]:
    """``headers`` plus the signature over method, path, query, Idempotency-Key and body."""
    request = SignedRequest.of(method, path, query, headers, body)
    ts = time.time() if t is None else t
    return {**headers, "Lifeboat-Signature": sign(client_id, key, request, ts)}


def register_test_cluster(services: Any, kubeconfig_text: str, prefix: str) -> str:
    """A uniquely named cluster registered with its kubeconfig in Secrets Manager (``lifeboat/<name>``), the way
    ``lifeboat clusters add --secret-id`` leaves it: workers reach it by its registered name only."""
    import uuid

    name = f"{prefix}-{uuid.uuid4().hex[:6]}"
    services.client("secretsmanager").create_secret(Name=f"lifeboat/{name}", SecretString=kubeconfig_text)
    auth = {"type": "kubeconfig_secret", "secret_id": f"lifeboat/{name}"}
    ClusterCatalog(services.client("dynamodb"), services.settings.table).register(
        name, auth, kubernetes_version=None, now=datetime.now(UTC)
    )
    return name
