"""What the restore API's tests share: the test client's identity and grant, and requests signed as it."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

from chalice.test import Client

from tests.conftest import TEST_TABLE
from tests.support.api import signed_headers

CLIENT_ID = "ci"
OLD_SECRET = "old-api-key"
SECRET = "current-api-key"
CLUSTER = "prod"
T0 = datetime(2026, 11, 22, 10, 0, tzinfo=UTC)
TARGET = "dr"
# What the tests' client may do: read and restore from prod (and staging, which has no backups), restore into dr.
GRANT = {"read": ["prod"], "restore_from": ["prod", "staging"], "restore_into": ["dr"]}


def body_for(backup_id: str, **extra: Any) -> bytes:
    return json.dumps({"backup_id": backup_id, "target_cluster": TARGET, **extra}).encode()


def signed(
    body: bytes, secret: str = SECRET, t: float | None = None, client_id: str = CLIENT_ID, **headers: str
) -> dict[str, str]:
    base = {"Content-Type": "application/json", **headers}
    if "Lifeboat-Signature" in headers:
        return base
    return signed_headers(client_id, secret, "POST", "/v1/restores", body, t=t, **base)


def messages(env: dict[str, Any]) -> list[dict[str, Any]]:
    response = env["sqs"].receive_message(QueueUrl=env["queue_url"], MaxNumberOfMessages=10, WaitTimeSeconds=0)
    return [json.loads(m["Body"]) for m in response.get("Messages", [])]


def restore_items(env: dict[str, Any]) -> list[dict[str, Any]]:
    items = env["dynamodb"].scan(TableName=TEST_TABLE)["Items"]
    return [i for i in items if i["pk"]["S"].startswith(("RESTORE#", "IDEMPOTENCY#"))]


def post(client: Client, body: bytes, headers: dict[str, str]) -> Any:
    return client.http.post("/v1/restores", headers=headers, body=body)


def read_headers(path: str, secret: str = SECRET, t: float | None = None, client_id: str = CLIENT_ID) -> dict[str, str]:
    """Headers signing a GET of ``path`` (with its query string)."""
    from urllib.parse import parse_qsl, urlsplit

    parts = urlsplit(path)
    query = dict(parse_qsl(parts.query, keep_blank_values=True))
    return signed_headers(client_id, secret, "GET", parts.path, query=query, t=t)


def get(client: Client, path: str, **kwargs: Any) -> Any:
    return client.http.get(path, headers=read_headers(path, **kwargs))


def restore_records(env: dict[str, Any]) -> list[dict[str, Any]]:
    return [i for i in restore_items(env) if i["sk"]["S"] == "RESTORE"]
