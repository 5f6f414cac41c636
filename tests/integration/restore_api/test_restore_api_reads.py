"""The read routes (GET /v1/restores/{id}, GET /v1/backups) and the restore queue handler, against moto."""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from chalice.test import Client

from chalicelib import services as services_module
from tests.support.restore_api import CLUSTER, T0, body_for, get, messages, post, read_headers, signed


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
