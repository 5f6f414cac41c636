"""Authorization between clusters on the restore and backup routes: grants, registrations, revoked and rotated keys."""

from __future__ import annotations

import json
from datetime import timedelta
from typing import Any

import pytest
from chalice.test import Client

from chalicelib import services as services_module
from tests.conftest import TEST_TABLE
from tests.support.api import add_client
from tests.support.restore_api import (
    CLIENT_ID,
    CLUSTER,
    OLD_SECRET,
    SECRET,
    TARGET,
    body_for,
    get,
    messages,
    post,
    restore_records,
    signed,
)

# -- authorization between clusters ----------------------------------------------------------------------------


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
