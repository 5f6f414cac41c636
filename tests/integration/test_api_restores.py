"""The restore and backup routes (api/restores.py, api/backups.py) through chalice.test.Client, against moto."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from chalice.test import Client

from chalicelib import services as services_module
from chalicelib.api.signature import MAX_BODY_BYTES
from chalicelib.catalog import BackupCatalog
from chalicelib.core.models import BackupState
from chalicelib.services import Services
from chalicelib.settings import Settings
from tests.conftest import TEST_BUCKET, TEST_REGION, TEST_TABLE
from tests.support.api import add_client, register_clusters, signed_headers

CLIENT_ID = "ci"
OLD_SECRET = "old-api-key"
SECRET = "current-api-key"
CLUSTER = "prod"
T0 = datetime(2026, 11, 22, 10, 0, tzinfo=UTC)
TARGET = "dr"
# What the tests' client may do: read and restore from prod (and staging, which has no backups), restore into dr.
GRANT = {"read": ["prod"], "restore_from": ["prod", "staging"], "restore_into": ["dr"]}


@pytest.fixture
def env(aws: None, table: str) -> Iterator[dict[str, Any]]:
    import boto3

    secrets = boto3.client("secretsmanager", region_name=TEST_REGION)
    sqs = boto3.client("sqs", region_name=TEST_REGION)
    queue_url = sqs.create_queue(QueueName="lifeboat-restore-jobs")["QueueUrl"]
    dynamodb = boto3.client("dynamodb", region_name=TEST_REGION)
    register_clusters(dynamodb, table, CLUSTER, TARGET, "other")
    # Rotated a minute ago: the old key is AWSPREVIOUS and still inside its grace period.
    add_client(dynamodb, secrets, table, CLIENT_ID, GRANT, OLD_SECRET, SECRET)
    catalog = BackupCatalog(dynamodb, table)
    backups = {}
    for i, state in enumerate([BackupState.COMPLETED, BackupState.COMPLETED, BackupState.FAILED, BackupState.RUNNING]):
        backup_id = f"20261122T10{i:02d}00Z-00000{i}"
        catalog.claim_job(f"job-{i}", CLUSTER, backup_id, policy="nightly", now=T0 + timedelta(minutes=i))
        if state != BackupState.PENDING:
            catalog.transition(CLUSTER, backup_id, BackupState.RUNNING, now=T0 + timedelta(minutes=i))
        if state in (BackupState.COMPLETED, BackupState.FAILED):
            catalog.transition(CLUSTER, backup_id, state, now=T0 + timedelta(minutes=i, seconds=30))
        backups[state.value + str(i)] = backup_id
    settings = Settings(
        table=TEST_TABLE,
        bucket=TEST_BUCKET,
        region=TEST_REGION,
        restore_queue_url=queue_url,
    )
    services_module.set_services(Services(settings))
    try:
        yield {
            "sqs": sqs,
            "queue_url": queue_url,
            "dynamodb": dynamodb,
            "secrets": secrets,
            "backups": backups,
            "catalog": catalog,
        }
    finally:
        services_module.set_services(None)


@pytest.fixture
def client(env: dict[str, Any]) -> Iterator[Client]:
    import app as app_module

    with Client(app_module.app) as c:
        yield c


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


# -- POST /v1/restores --------------------------------------------------------------------------------------------


def test_valid_request_records_a_pending_job_and_enqueues_it(client: Client, env: dict[str, Any]) -> None:
    backup_id = env["backups"]["Completed0"]
    body = body_for(backup_id, options={"namespace_mapping": ["shop:shop-dr"], "existing_policy": "update"})
    response = post(client, body, signed(body))
    assert response.status_code == 202, response.body
    reply = response.json_body
    restore_id = reply["restore_id"]
    assert reply == {"restore_id": restore_id, "status_url": f"/v1/restores/{restore_id}", "state": "Pending"}
    assert restore_id.startswith("r-") and response.headers["Location"] == reply["status_url"]
    assert messages(env) == [{"restore_id": restore_id}]
    record = services_module.get_services().restore_catalog().get(restore_id)
    assert record.state == "Pending" and record.backup_id == backup_id and record.backup_cluster == CLUSTER
    assert record.target_cluster == {"name": TARGET} and record.enqueued_at is not None
    assert record.options["namespace_mapping"] == {"shop": "shop-dr"}
    assert record.options["existing_policy"] == "update" and record.options["restore_id"] == restore_id


def test_previous_secret_is_accepted_during_rotation(client: Client, env: dict[str, Any]) -> None:
    body = body_for(env["backups"]["Completed0"])
    assert post(client, body, signed(body, secret=OLD_SECRET)).status_code == 202


@pytest.mark.parametrize(
    "headers",
    [
        pytest.param(lambda body: signed(body, secret="wrong"), id="wrong-secret"),
        pytest.param(lambda body: {"Content-Type": "application/json"}, id="missing-header"),
        pytest.param(lambda body: signed(body, **{"Lifeboat-Signature": "t=1,v1=zz"}), id="malformed"),
        pytest.param(lambda body: signed(body + b" "), id="signed-other-bytes"),
        pytest.param(lambda body: signed(body, t=time.time() - 301), id="replayed-old-timestamp"),
        pytest.param(lambda body: signed(body, t=time.time() + 600), id="future-timestamp"),
    ],
)
def test_unauthenticated_requests_start_nothing(client: Client, env: dict[str, Any], headers: Any) -> None:
    body = body_for(env["backups"]["Completed0"])
    response = post(client, body, headers(body))
    assert response.status_code == 401
    assert response.json_body["error"] == "Unauthorized"
    assert messages(env) == [] and restore_items(env) == []


def test_replaying_a_captured_request_after_the_window_is_refused(client: Client, env: dict[str, Any]) -> None:
    body = body_for(env["backups"]["Completed0"])
    captured = signed(body, t=time.time() - 400)  # what an eavesdropper recorded more than 5 minutes ago
    assert post(client, body, captured).status_code == 401
    assert messages(env) == []


def test_oversized_body_is_413(client: Client, env: dict[str, Any]) -> None:
    body = body_for(env["backups"]["Completed0"], padding="x" * MAX_BODY_BYTES)
    response = post(client, body, signed(body))
    assert response.status_code == 413
    assert messages(env) == [] and restore_items(env) == []


def test_malformed_json_is_400(client: Client, env: dict[str, Any]) -> None:
    body = b'{"backup_id": '
    response = post(client, body, signed(body))
    assert response.status_code == 400 and response.json_body["error"] == "BadRequest"
    assert messages(env) == []


def test_unknown_field_is_422_with_its_location(client: Client, env: dict[str, Any]) -> None:
    body = body_for(env["backups"]["Completed0"], options={"namespaces": ["a"]})
    response = post(client, body, signed(body))
    assert response.status_code == 422
    errors = response.json_body["errors"]
    assert {
        "loc": ["options", "namespaces"],
        "msg": "Extra inputs are not permitted",
        "type": "extra_forbidden",
    } in errors
    assert messages(env) == [] and restore_items(env) == []


@pytest.mark.parametrize(
    ("payload", "loc"),
    [
        ({"backup_id": "x"}, ["target_cluster"]),
        ({"backup_id": "x", "target_cluster": {"name": "dr", "auth": {"type": "password"}}}, ["target_cluster"]),
        ({"target_cluster": TARGET}, []),
        ({"backup_id": "x", "source": {"cluster": CLUSTER}, "target_cluster": TARGET}, []),
        ({"source": {"cluster": CLUSTER, "backup": "oldest"}, "target_cluster": TARGET}, ["source", "backup"]),
        ({"backup_id": "x", "target_cluster": TARGET, "dry_run": "yes"}, ["dry_run"]),
        (
            {"backup_id": "x", "target_cluster": TARGET, "options": {"existing_policy": "replace"}},
            ["options", "existing_policy"],
        ),
        ({"backup_id": "x", "target_cluster": TARGET, "options": {"namespace_mapping": ["a:b", "c:b"]}}, ["options"]),
    ],
)
def test_invalid_requests_are_422(client: Client, env: dict[str, Any], payload: dict[str, Any], loc: list[Any]) -> None:
    body = json.dumps(payload).encode()
    response = post(client, body, signed(body))
    assert response.status_code == 422, response.body
    assert loc in [e["loc"] for e in response.json_body["errors"]]
    assert messages(env) == [] and restore_items(env) == []


def test_inline_credentials_are_refused_and_never_echoed(client: Client, env: dict[str, Any]) -> None:
    auth = {"type": "kubeconfig", "kubeconfig": "users: [{user: {token: SENTINEL-TOKEN}}]"}
    body = json.dumps(
        {
            "backup_id": env["backups"]["Completed0"],
            "target_cluster": {"name": "dr", "auth": auth},
            "options": {"label_selector": 5},
        }
    ).encode()
    response = post(client, body, signed(body))
    assert response.status_code == 422
    assert [e["loc"] for e in response.json_body["errors"]] == [["target_cluster"], ["options", "label_selector"]]
    assert b"SENTINEL" not in response.body  # pydantic's input echo is off: bodies may carry secrets


def test_unknown_backup_id_is_404_naming_it(client: Client, env: dict[str, Any]) -> None:
    body = body_for("20200101T000000Z-abcdef")
    response = post(client, body, signed(body))
    assert response.status_code == 404
    assert "20200101T000000Z-abcdef" in response.json_body["message"]
    assert messages(env) == [] and restore_items(env) == []


def test_backup_of_another_cluster_is_404(client: Client, env: dict[str, Any]) -> None:
    body = body_for(env["backups"]["Completed0"], cluster="staging")
    assert post(client, body, signed(body)).status_code == 404


@pytest.mark.parametrize("which", ["Failed2", "Running3"])
def test_unfinished_or_failed_backup_is_409(client: Client, env: dict[str, Any], which: str) -> None:
    body = body_for(env["backups"][which])
    response = post(client, body, signed(body))
    assert response.status_code == 409 and response.json_body["backup_id"] == env["backups"][which]
    assert messages(env) == []


def test_latest_backup_of_a_cluster_is_resolved_from_the_catalog(client: Client, env: dict[str, Any]) -> None:
    body = json.dumps({"source": {"cluster": CLUSTER, "backup": "latest"}, "target_cluster": TARGET}).encode()
    response = post(client, body, signed(body))
    assert response.status_code == 202
    record = services_module.get_services().restore_catalog().get(response.json_body["restore_id"])
    assert record.backup_id == env["backups"]["Completed1"]  # newest Completed, not the newer Failed or Running


def test_latest_of_a_policy_without_backups_is_404(client: Client, env: dict[str, Any]) -> None:
    body = json.dumps({"source": {"cluster": CLUSTER, "policy": "hourly"}, "target_cluster": TARGET}).encode()
    response = post(client, body, signed(body))
    assert response.status_code == 404 and "hourly" in response.json_body["message"]


def test_duplicate_idempotency_key_returns_the_same_restore_once(client: Client, env: dict[str, Any]) -> None:
    body = body_for(env["backups"]["Completed0"])
    first = post(client, body, signed(body, **{"Idempotency-Key": "deploy-42"}))
    time.sleep(1.1)  # a later retry: a new timestamp, so a new signature
    again = post(client, body, signed(body, **{"Idempotency-Key": "deploy-42"}))
    assert first.status_code == again.status_code == 202
    assert first.json_body == again.json_body
    assert again.headers.get("Idempotent-Replayed") == "true"
    assert len(messages(env)) == 1
    assert len([i for i in restore_items(env) if i["sk"]["S"] == "RESTORE"]) == 1


def test_same_key_with_a_different_request_is_422(client: Client, env: dict[str, Any]) -> None:
    body = body_for(env["backups"]["Completed0"])
    assert post(client, body, signed(body, **{"Idempotency-Key": "k1"})).status_code == 202
    other = body_for(env["backups"]["Completed1"])
    response = post(client, other, signed(other, **{"Idempotency-Key": "k1"}))
    assert response.status_code == 422
    assert response.json_body["message"] == "idempotency key reused with a different request"
    assert len(messages(env)) == 1


def test_without_a_key_an_exact_resend_of_the_signed_request_is_refused_as_a_replay(
    client: Client, env: dict[str, Any]
) -> None:
    body = body_for(env["backups"]["Completed0"])
    headers = signed(body)
    first, again = post(client, body, headers), post(client, body, headers)
    assert first.status_code == 202 and again.status_code == 401
    assert len(messages(env)) == 1
    # Signed again (a new timestamp) it is a new request.
    time.sleep(1.1)
    third = post(client, body, signed(body))
    assert third.json_body["restore_id"] != first.json_body["restore_id"]


def test_an_exact_resend_with_its_idempotency_key_gets_the_original_answer(client: Client, env: dict[str, Any]) -> None:
    body = body_for(env["backups"]["Completed0"])
    headers = signed(body, **{"Idempotency-Key": "deploy-7"})
    first, again = post(client, body, headers), post(client, body, headers)
    assert first.status_code == again.status_code == 202
    assert first.json_body == again.json_body and again.headers.get("Idempotent-Replayed") == "true"
    assert len(messages(env)) == 1


def test_a_captured_request_with_new_idempotency_keys_starts_nothing(client: Client, env: dict[str, Any]) -> None:
    # Before: the signature covered t.body only, so one capture replayed with three new keys started three restores.
    body = body_for(env["backups"]["Completed0"])
    captured = signed(body, **{"Idempotency-Key": "k-0"})
    assert post(client, body, captured).status_code == 202
    for key in ("k-1", "k-2", "k-3"):
        assert post(client, body, {**captured, "Idempotency-Key": key}).status_code == 401
    assert len(messages(env)) == 1


def test_a_failed_enqueue_is_resent_by_the_retry(client: Client, env: dict[str, Any], monkeypatch: Any) -> None:
    service = services_module.get_services().restore_api()
    body = body_for(env["backups"]["Completed0"])
    queue = service._queue
    real_send = queue.send

    def broken(restore_id: str) -> str:
        from chalicelib.api.errors import ServiceUnavailable

        raise ServiceUnavailable("SQS is down")

    monkeypatch.setattr(queue, "send", broken)
    assert post(client, body, signed(body, **{"Idempotency-Key": "retry-me"})).status_code == 503
    monkeypatch.setattr(queue, "send", real_send)
    retry = post(client, body, signed(body, **{"Idempotency-Key": "retry-me"}))
    assert retry.status_code == 202
    assert messages(env) == [{"restore_id": retry.json_body["restore_id"]}]


def test_an_unconfigured_restore_queue_is_503_and_the_retry_enqueues(
    client: Client, env: dict[str, Any], monkeypatch: Any
) -> None:
    queue = services_module.get_services().restore_api()._queue
    body = body_for(env["backups"]["Completed0"])
    monkeypatch.setattr(queue, "_url", None)
    refused = post(client, body, signed(body, **{"Idempotency-Key": "no-queue"}))
    assert refused.status_code == 503
    assert refused.json_body == {
        "error": "ServiceUnavailable",
        "message": "no restore queue configured (LIFEBOAT_RESTORE_QUEUE_URL)",
    }
    monkeypatch.setattr(queue, "_url", env["queue_url"])
    retry = post(client, body, signed(body, **{"Idempotency-Key": "no-queue"}))
    assert retry.status_code == 202
    assert messages(env) == [{"restore_id": retry.json_body["restore_id"]}]


# -- GET /v1/restores/{id} ----------------------------------------------------------------------------------------


def read_headers(path: str, secret: str = SECRET, t: float | None = None, client_id: str = CLIENT_ID) -> dict[str, str]:
    """Headers signing a GET of ``path`` (with its query string)."""
    from urllib.parse import parse_qsl, urlsplit

    parts = urlsplit(path)
    query = dict(parse_qsl(parts.query, keep_blank_values=True))
    return signed_headers(client_id, secret, "GET", parts.path, query=query, t=t)


def get(client: Client, path: str, **kwargs: Any) -> Any:
    return client.http.get(path, headers=read_headers(path, **kwargs))


def test_status_of_a_new_restore(client: Client, env: dict[str, Any]) -> None:
    body = body_for(env["backups"]["Completed0"], dry_run=True)
    restore_id = post(client, body, signed(body)).json_body["restore_id"]
    response = get(client, f"/v1/restores/{restore_id}")
    assert response.status_code == 200
    status = response.json_body
    assert status["restore_id"] == restore_id and status["state"] == "Pending" and status["dry_run"] is True
    assert status["backup"] == {"cluster": CLUSTER, "backup_id": env["backups"]["Completed0"]}
    assert status["target_cluster"] == "dr" and "auth" not in json.dumps(status)
    assert status["progress"] == {"done": 0, "total": None}
    assert status["failures"] == [] and status["failures_total"] == 0
    assert status["timings"]["created_at"] and status["timings"]["finished_at"] is None


def test_status_shows_progress_failures_and_timings(client: Client, env: dict[str, Any]) -> None:
    body = body_for(env["backups"]["Completed0"])
    restore_id = post(client, body, signed(body)).json_body["restore_id"]
    catalog = services_module.get_services().restore_catalog()
    now = datetime.now(UTC)
    catalog.claim(restore_id, "w1", now, stale_after=timedelta(minutes=5))
    catalog.record_results(
        restore_id,
        "w1",
        seq=0,
        keys=["configmaps/shop/a", "secrets/shop/b"],
        outcomes={"created": 1, "failed": 1},
        failures=[{"key": "secrets/shop/b", "error": "Forbidden"}],
        stored_failures=0,
        now=now,
        total=2,
    )
    catalog.finish(restore_id, "w1", "PartiallyFailed", now + timedelta(seconds=2))
    status = get(client, f"/v1/restores/{restore_id}").json_body
    assert status["state"] == "PartiallyFailed"
    assert status["progress"] == {"done": 2, "total": 2}
    assert status["counts"] == {"created": 1, "failed": 1}
    assert status["failures"] == [{"key": "secrets/shop/b", "error": "Forbidden"}]
    assert status["timings"]["duration_ms"] == 2000


@pytest.mark.parametrize("path", ["/v1/restores/r-20261122T101500Z-0123abcd", "/v1/backups?cluster=prod"])
@pytest.mark.parametrize(
    "headers",
    [
        pytest.param(lambda path: {}, id="anonymous"),
        pytest.param(lambda path: read_headers(path, "wrong"), id="wrong-secret"),
        pytest.param(lambda path: read_headers(path, t=time.time() - 3600), id="stale"),
        pytest.param(lambda path: read_headers("/v1/policies"), id="signed-for-another-path"),
    ],
)
def test_reads_require_a_signature(client: Client, env: dict[str, Any], path: str, headers: Any) -> None:
    response = client.http.get(path, headers=headers(path))
    assert response.status_code == 401
    assert "backups" not in response.json_body and "state" not in response.json_body


def test_unknown_or_malformed_restore_id_is_404(client: Client, env: dict[str, Any]) -> None:
    for restore_id in ("r-20261122T101500Z-0123abcd", "RESTORE"):
        assert get(client, f"/v1/restores/{restore_id}").status_code == 404


# -- GET /v1/backups ----------------------------------------------------------------------------------------------


def test_backups_are_paginated_newest_first(client: Client, env: dict[str, Any]) -> None:
    seen: list[str] = []
    path = "/v1/backups?cluster=prod&limit=3"
    first = get(client, path).json_body
    assert first["cluster"] == CLUSTER and len(first["backups"]) == 3 and first["next_token"]
    seen += [b["backup_id"] for b in first["backups"]]
    second = get(client, f"{path}&next_token={first['next_token']}").json_body
    seen += [b["backup_id"] for b in second["backups"]]
    assert second["next_token"] is None
    assert seen == sorted(env["backups"].values(), reverse=True)
    assert {b["state"] for b in first["backups"] + second["backups"]} == {"Completed", "Failed", "Running"}


def test_backups_show_the_damaged_mark_of_the_daily_check(client: Client, env: dict[str, Any]) -> None:
    damaged_id, whole_id = env["backups"]["Completed0"], env["backups"]["Completed1"]
    found = T0 + timedelta(days=1)
    env["catalog"].mark_damaged(CLUSTER, damaged_id, blobs=["ab" * 32, "cd" * 32], count=7, now=found)
    env["catalog"].mark_damaged(CLUSTER, damaged_id, blobs=["ab" * 32], count=1, now=found + timedelta(days=1))

    page = get(client, "/v1/backups?cluster=prod&limit=10").json_body
    views = {b["backup_id"]: b for b in page["backups"]}
    assert views[damaged_id]["state"] == "Completed"
    assert views[damaged_id]["damaged"] == {
        "found_at": "2026-11-23T10:00:00.000Z",
        "checked_at": "2026-11-24T10:00:00.000Z",
        "count": 1,
        "blobs": ["ab" * 32],
    }
    assert views[whole_id]["damaged"] is None


@pytest.mark.parametrize("query", ["", "?cluster=prod&limit=0", "?cluster=prod&limit=x", "?cluster=prod&next_token=zz"])
def test_bad_backup_queries_are_400(client: Client, env: dict[str, Any], query: str) -> None:
    assert get(client, f"/v1/backups{query}").status_code == 400


# -- the SQS handler ----------------------------------------------------------------------------------------------


def test_queue_message_runs_the_worker_and_records_the_outcome(
    client: Client, env: dict[str, Any], bucket: str
) -> None:
    body = body_for(env["backups"]["Completed0"])
    restore_id = post(client, body, signed(body)).json_body["restore_id"]
    [message] = messages(env)
    event = client.events.generate_sqs_event(message_bodies=[json.dumps(message)], queue_name="lifeboat-restore-jobs")
    client.lambda_.invoke("restore_worker", event)
    # The bucket holds no repository: the job fails for good (no retry can create it), saying why.
    status = get(client, f"/v1/restores/{restore_id}").json_body
    assert status["state"] == "Failed" and "repository" in status["failure"].lower()
    assert status["timings"]["finished_at"]
    record = services_module.get_services().restore_catalog().get(restore_id)
    assert record.event_sent_at is not None  # announced on the default EventBridge bus
    client.lambda_.invoke("restore_worker", event)  # a redelivery changes nothing
    assert services_module.get_services().restore_catalog().get(restore_id).version == record.version


# -- authorization between clusters ----------------------------------------------------------------------------


def restore_records(env: dict[str, Any]) -> list[dict[str, Any]]:
    return [i for i in restore_items(env) if i["sk"]["S"] == "RESTORE"]


@pytest.mark.parametrize(
    "payload",
    [
        pytest.param({"target_cluster": "other"}, id="target-outside-restore_into"),
        pytest.param({"target_cluster": "prod"}, id="source-cluster-as-target"),
        pytest.param({"cluster": "dr", "target_cluster": "dr"}, id="source-outside-restore_from"),
    ],
)
def test_clusters_outside_the_grant_are_403_and_start_nothing(
    client: Client, env: dict[str, Any], payload: dict[str, Any], monkeypatch: Any
) -> None:
    logged: list[tuple[str, dict[str, Any]]] = []

    class Recorder:
        def warning(self, message: str, extra: dict[str, Any]) -> None:
            logged.append((message, extra))

    monkeypatch.setattr("chalicelib.api.auth.logger", Recorder)
    body = json.dumps({"backup_id": env["backups"]["Completed0"], **payload}).encode()
    response = post(client, body, signed(body))
    assert response.status_code == 403 and response.json_body["error"] == "Forbidden", response.body
    assert messages(env) == [] and restore_records(env) == []
    [(message, extra)] = logged
    assert message == "request denied by grant" and extra["client_id"] == CLIENT_ID
    assert SECRET not in json.dumps(logged) and OLD_SECRET not in json.dumps(logged)


def test_a_bare_backup_id_of_a_cluster_outside_the_grant_is_403(client: Client, env: dict[str, Any]) -> None:
    add_client(
        env["dynamodb"], env["secrets"], TEST_TABLE, "dr-only", {"restore_from": ["dr"], "restore_into": ["dr"]}, "k"
    )
    body = body_for(env["backups"]["Completed0"])  # a backup of prod, named by id alone
    response = post(client, body, signed(body, secret="k", client_id="dr-only"))
    assert response.status_code == 403 and messages(env) == [] and restore_records(env) == []
    source = json.dumps({"source": {"cluster": CLUSTER}, "target_cluster": TARGET}).encode()
    assert post(client, source, signed(source, secret="k", client_id="dr-only")).status_code == 403


def test_an_unregistered_target_is_422_and_starts_nothing(client: Client, env: dict[str, Any]) -> None:
    add_client(
        env["dynamodb"], env["secrets"], TEST_TABLE, "admin", {"restore_from": ["*"], "restore_into": ["*"]}, "k"
    )
    body = body_for(env["backups"]["Completed0"], target_cluster="nowhere")
    response = post(client, body, signed(body, secret="k", client_id="admin"))
    assert response.status_code == 422 and response.json_body["errors"][0]["loc"] == ["target_cluster"]
    assert "not registered" in response.json_body["errors"][0]["msg"]
    assert messages(env) == [] and restore_records(env) == []


@pytest.mark.parametrize(
    "target",
    [
        pytest.param({"name": "dr", "auth": {"type": "kubeconfig_secret", "secret_id": "lifeboat/api-clients/ci"}}),
        pytest.param({"name": "dr", "auth": {"type": "eks", "cluster_name": "prod-eks", "region": "us-east-1"}}),
        pytest.param({"name": "dr"}),
    ],
)
def test_a_request_carrying_credentials_is_422(client: Client, env: dict[str, Any], target: dict[str, Any]) -> None:
    body = body_for(env["backups"]["Completed0"], target_cluster=target)
    response = post(client, body, signed(body))
    assert response.status_code == 422 and response.json_body["errors"][0]["loc"] == ["target_cluster"]
    assert b"api-clients" not in response.body and messages(env) == [] and restore_records(env) == []


def test_the_job_names_the_target_by_registration_and_the_worker_resolves_it(
    client: Client, env: dict[str, Any], monkeypatch: Any
) -> None:
    services = services_module.get_services()
    body = body_for(env["backups"]["Completed0"])
    restore_id = post(client, body, signed(body)).json_body["restore_id"]
    assert services.restore_catalog().get(restore_id).target_cluster == {"name": "dr"}
    seen: list[Any] = []
    monkeypatch.setattr(services, "connect", lambda ref: seen.append(ref) or object())
    services.connect_registered("dr")
    assert seen[0].auth == {"type": "kubeconfig_secret", "secret_id": "lifeboat/clusters/dr"}
    from chalicelib.catalog.errors import RecordNotFound

    with pytest.raises(RecordNotFound):
        services.connect_registered("nowhere")


def test_backups_of_a_cluster_outside_the_grant_are_403(client: Client, env: dict[str, Any]) -> None:
    response = get(client, "/v1/backups?cluster=dr")
    assert response.status_code == 403 and "backups" not in response.json_body
    assert get(client, "/v1/backups?cluster=prod").status_code == 200


def test_restores_outside_the_grant_are_not_found(client: Client, env: dict[str, Any]) -> None:
    body = body_for(env["backups"]["Completed0"])
    restore_id = post(client, body, signed(body)).json_body["restore_id"]
    add_client(env["dynamodb"], env["secrets"], TEST_TABLE, "reader", {"read": ["prod"]}, "k")
    assert get(client, f"/v1/restores/{restore_id}", secret="k", client_id="reader").status_code == 404
    assert get(client, f"/v1/restores/{restore_id}").status_code == 200


def test_a_revoked_client_is_refused_at_once(client: Client, env: dict[str, Any]) -> None:
    services = services_module.get_services()
    assert get(client, "/v1/backups?cluster=prod").status_code == 200
    services.api_client_service().revoke(CLIENT_ID)
    assert get(client, "/v1/backups?cluster=prod").status_code == 401


def test_a_rotated_key_is_refused_after_the_grace_period(client: Client, env: dict[str, Any]) -> None:
    services = services_module.get_services()
    _, key = services.api_client_service().rotate(CLIENT_ID, grace=timedelta(0))
    # Each request has its own query: the same signed request twice in one second would be a replay.
    assert get(client, "/v1/backups?cluster=prod&limit=1").status_code == 401  # SECRET is now the previous key
    assert get(client, "/v1/backups?cluster=prod&limit=2", secret=key).status_code == 200
    _, newer = services.api_client_service().rotate(CLIENT_ID)  # default grace: an hour
    assert get(client, "/v1/backups?cluster=prod&limit=3", secret=key).status_code == 200
    assert get(client, "/v1/backups?cluster=prod&limit=4", secret=newer).status_code == 200
