"""``/v1/policies`` and the scheduled handlers through chalice.test.Client, against moto."""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from chalice.test import Client

from chalicelib import services as services_module
from chalicelib.services import Services
from chalicelib.settings import Settings
from tests.conftest import TEST_BUCKET, TEST_REGION, TEST_TABLE
from tests.support.api import add_client, signed_headers
from tests.support.clocks import utc

CLIENT_ID = "policy-admin"
SECRET = "policy-secret"
EKS = {"type": "eks", "cluster_name": "prod", "region": "eu-central-1"}
YAML = b"""policies:
  - name: shop-nightly
    cluster: prod
    schedule: {cron: "0 2 * * *", timezone: Europe/Berlin, starting_deadline_seconds: 3600}
    scope: {include_namespaces: ["shop*"]}
    retention: {keep_last: 3, keep_daily: 7}
    rpo_target_minutes: 1500
"""


@pytest.fixture
def services(aws: None, bucket: str, table: str) -> Iterator[Services]:
    import boto3

    sm = boto3.client("secretsmanager", region_name=TEST_REGION)
    dynamodb = boto3.client("dynamodb", region_name=TEST_REGION)
    add_client(dynamodb, sm, table, CLIENT_ID, {"policies": ["prod", "staging"]}, SECRET)
    add_client(dynamodb, sm, table, "staging-only", {"policies": ["staging"]}, "staging-key")
    queue = boto3.client("sqs", region_name=TEST_REGION).create_queue(QueueName="lifeboat-backup-jobs")["QueueUrl"]
    settings = Settings(table=TEST_TABLE, bucket=TEST_BUCKET, region=TEST_REGION, backup_queue_url=queue)
    services = Services(settings)
    services.cluster_catalog().register("prod", EKS, kubernetes_version="v1.31.0", now=utc(2026, 1, 1))
    services_module.set_services(services)
    try:
        yield services
    finally:
        services_module.set_services(None)


@pytest.fixture
def client(services: Services) -> Iterator[Client]:
    import app as app_module

    with Client(app_module.app) as c:
        yield c


def signed(
    body: bytes,
    content_type: str = "application/json",
    method: str = "PUT",
    path: str = "/v1/policies",
    *,
    secret: str = SECRET,
    client_id: str = CLIENT_ID,
    t: float | None = None,
) -> dict[str, str]:
    # A distinct (signed) Idempotency-Key per request: the same request signed twice in one second would be a replay.
    headers = {"Content-Type": content_type, "Idempotency-Key": uuid.uuid4().hex}
    return signed_headers(client_id, secret, method, path, body, t=t, **headers)


def put(client: Client, body: bytes = YAML, **kwargs: Any) -> Any:
    return client.http.put("/v1/policies", headers=signed(body, "application/x-yaml", **kwargs), body=body)


def get(client: Client, path: str, **kwargs: Any) -> Any:
    return client.http.get(path, headers=signed(b"", method="GET", path=path, **kwargs))


def delete(client: Client, name: str, body: bytes, **kwargs: Any) -> Any:
    path = f"/v1/policies/{name}"
    return client.http.delete(path, headers=signed(body, method="DELETE", path=path, **kwargs), body=body)


def test_apply_list_get_delete(client: Client) -> None:
    response = put(client)
    assert response.status_code == 200, response.body
    assert response.json_body["applied"][0] == {
        "name": "shop-nightly",
        "cluster": "prod",
        "change": "created",
        "next_run_at": response.json_body["applied"][0]["next_run_at"],
    }
    listed = get(client, "/v1/policies").json_body["policies"]
    assert [p["name"] for p in listed] == ["shop-nightly"] and listed[0]["retention"]["keep_daily"] == 7
    one = get(client, "/v1/policies/shop-nightly")
    assert one.status_code == 200 and one.json_body["recent_runs"] == [] and one.json_body["next_run_at"]
    assert put(client).json_body["applied"][0]["change"] == "unchanged"
    body = json.dumps({"name": "shop-nightly"}).encode()
    deleted = delete(client, "shop-nightly", body)
    assert deleted.status_code == 200 and deleted.json_body == {"deleted": "shop-nightly", "cluster": "prod"}
    assert get(client, "/v1/policies/shop-nightly").status_code == 404


def test_json_bodies_are_accepted_too(client: Client) -> None:
    import yaml

    body = json.dumps(yaml.safe_load(YAML)).encode()
    response = client.http.post("/v1/policies", headers=signed(body, method="POST"), body=body)
    assert response.status_code == 200 and response.json_body["applied"][0]["change"] == "created"


@pytest.mark.parametrize(
    "headers",
    [
        lambda: {"Content-Type": "application/x-yaml"},
        lambda: signed(YAML, "application/x-yaml", secret="wrong"),
        lambda: signed(b"other body", "application/x-yaml"),
        lambda: signed(YAML, "application/x-yaml", t=time.time() - 3600),
        lambda: signed(YAML, "application/x-yaml", method="POST"),
    ],
    ids=["unsigned", "wrong-secret", "other-body", "replayed", "other-method"],
)
def test_writes_need_a_valid_signature_over_the_body(client: Client, headers: Any) -> None:
    response = client.http.put("/v1/policies", headers=headers(), body=YAML)
    assert response.status_code == 401
    assert response.json_body == {"error": "Unauthorized", "message": "invalid or missing signature"}
    assert get(client, "/v1/policies").json_body["policies"] == []


def test_reads_need_a_signature_too(client: Client) -> None:
    assert client.http.get("/v1/policies").status_code == 401
    assert client.http.get("/v1/policies/shop-nightly").status_code == 401


def test_a_signed_delete_must_name_the_policy_it_deletes(client: Client) -> None:
    put(client)
    other = json.dumps({"name": "some-other-policy"}).encode()
    response = delete(client, "shop-nightly", other)
    assert response.status_code == 400 and "must name the policy" in response.json_body["message"]
    empty = delete(client, "shop-nightly", b"")
    assert empty.status_code == 400
    assert get(client, "/v1/policies/shop-nightly").status_code == 200


def test_an_invalid_file_lists_every_problem(client: Client) -> None:
    body = YAML.replace(b'cron: "0 2 * * *"', b'cron: "0 2 * *"').replace(b"Europe/Berlin", b"Europe/Berln")
    response = put(client, body)
    assert response.status_code == 422
    assert response.json_body["error"] == "InvalidPolicy"
    problems = response.json_body["problems"]
    assert len(problems) == 2 and "schedule.cron" in problems[0] and "unknown timezone" in problems[1]


def test_a_name_owned_by_another_cluster_is_a_conflict(client: Client, services: Services) -> None:
    services.cluster_catalog().register("staging", EKS, kubernetes_version=None, now=utc(2026, 1, 1))
    put(client)
    response = put(client, YAML.replace(b"cluster: prod", b"cluster: staging"))
    assert response.status_code == 409 and "already belongs to cluster 'prod'" in response.json_body["message"]


def test_scheduled_handlers(client: Client, services: Services, capsys: Any) -> None:
    put(client)
    dispatched = client.lambda_.invoke("dispatcher", client.events.generate_cw_event("", "", {}, []))
    assert dispatched.payload["counts"] == {} and dispatched.payload["deferred"] is None
    rpo = client.lambda_.invoke("rpo_monitor", client.events.generate_cw_event("", "", {}, []))
    # Created a moment ago: its RPO counts from its creation, far below the 1500-minute target.
    assert rpo.payload == {"policies": 1, "over_target": []}
    emf = [json.loads(line) for line in capsys.readouterr().out.splitlines() if '"_aws"' in line]
    per_policy = next(doc for doc in emf if doc.get("policy") == "shop-nightly")
    assert per_policy["cluster"] == "prod" and "PolicyRpoMinutes" in per_policy
    # One custom metric per policy ($0.30 a month each): the target and the flag ride along as log properties.
    [definition] = per_policy["_aws"]["CloudWatchMetrics"]
    assert [metric["Name"] for metric in definition["Metrics"]] == ["PolicyRpoMinutes"]
    assert per_policy["rpo_target_minutes"] == 1500 and per_policy["rpo_exceeded"] is False
    total = next(doc for doc in emf if "PoliciesOverRpoTarget" in doc)
    assert "policy" not in total, "the alarm's metric carries the service dimension only"
    assert total["PoliciesMonitored"] in (1, [1]) and total["PoliciesOverRpoTarget"] in (0, [0])
    maintenance = client.lambda_.invoke("maintenance", client.events.generate_cw_event("", "", {}, []))
    # No backup has created the repository yet: nothing to collect.
    assert maintenance.payload["status"] == "done" and maintenance.payload["message"] == "no repository yet"


# -- grants ---------------------------------------------------------------------------------------------------------


def test_policies_of_clusters_outside_the_grant_are_invisible_and_untouchable(
    client: Client, services: Services
) -> None:
    services.cluster_catalog().register("staging", EKS, kubernetes_version=None, now=utc(2026, 1, 1))
    assert put(client).status_code == 200  # shop-nightly on prod
    staging = YAML.replace(b"cluster: prod", b"cluster: staging").replace(b"shop-nightly", b"staging-nightly")
    assert put(client, staging, secret="staging-key", client_id="staging-only").status_code == 200
    mine = {"secret": "staging-key", "client_id": "staging-only"}
    assert [p["name"] for p in get(client, "/v1/policies", **mine).json_body["policies"]] == ["staging-nightly"]
    assert get(client, "/v1/policies/shop-nightly", **mine).status_code == 404
    body = json.dumps({"name": "shop-nightly"}).encode()
    assert delete(client, "shop-nightly", body, **mine).status_code == 404
    refused = put(client, YAML.replace(b"keep_last: 3", b"keep_last: 1"), **mine)
    assert refused.status_code == 403 and refused.json_body["error"] == "Forbidden"
    both = staging + YAML.split(b"policies:\n", 1)[1]
    assert put(client, both, **mine).status_code == 403  # one cluster outside the grant refuses the whole file
    assert get(client, "/v1/policies/shop-nightly").json_body["retention"]["keep_last"] == 3


def test_a_verification_into_another_cluster_needs_restore_into_there(client: Client, services: Services) -> None:
    services.cluster_catalog().register("staging", EKS, kubernetes_version=None, now=utc(2026, 1, 1))
    verified = YAML + b"""    verify: {schedule: "0 4 * * 0", target_cluster: staging}
"""
    refused = put(client, verified)  # the client manages prod's policies but may not write into staging
    assert refused.status_code == 403 and refused.json_body["error"] == "Forbidden"
    assert get(client, "/v1/policies/shop-nightly").status_code == 404  # nothing was applied
    import boto3

    sm = boto3.client("secretsmanager", region_name=TEST_REGION)
    dynamodb = boto3.client("dynamodb", region_name=TEST_REGION)
    add_client(dynamodb, sm, TEST_TABLE, "verifier", {"policies": ["prod"], "restore_into": ["staging"]}, "v-key")
    assert put(client, verified, secret="v-key", client_id="verifier").status_code == 200


def test_a_verification_target_must_be_registered(client: Client) -> None:
    import boto3

    sm = boto3.client("secretsmanager", region_name=TEST_REGION)
    dynamodb = boto3.client("dynamodb", region_name=TEST_REGION)
    add_client(dynamodb, sm, TEST_TABLE, "wide", {"policies": ["prod"], "restore_into": ["*"]}, "w-key")
    unregistered = YAML + b"""    verify: {schedule: "0 4 * * 0", target_cluster: nowhere}
"""
    answer = put(client, unregistered, secret="w-key", client_id="wide")

    assert answer.status_code == 422
    assert answer.json_body["problems"] == [
        "policies[0] (shop-nightly).verify.target_cluster: 'nowhere' is not registered; "
        "run `lifeboat clusters add nowhere ...` first"
    ]
