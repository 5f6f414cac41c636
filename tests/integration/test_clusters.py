"""``lifeboat clusters add`` against the Kubernetes API test server: the version, or the exact auth error."""

from __future__ import annotations

import base64
import json
from typing import Any

import pytest
import yaml

from chalicelib.cli.main import main
from chalicelib.cli.output import EXIT_ERROR, EXIT_OK, EXIT_USAGE
from chalicelib.scheduling.clusters import check_auth
from chalicelib.scheduling.errors import InvalidClusterAuth
from chalicelib.services import Services
from chalicelib.settings import Settings
from tests.conftest import TEST_BUCKET, TEST_REGION, TEST_TABLE

CLI = ["--table", TEST_TABLE, "--bucket", TEST_BUCKET, "--region", TEST_REGION, "--output", "json"]
pytestmark = pytest.mark.fakeonly


@pytest.fixture
def secrets(aws: None, table: str) -> Any:
    import boto3

    return boto3.client("secretsmanager", region_name=TEST_REGION)


def add(capsys: Any, *args: str) -> tuple[int, dict[str, Any], str]:
    code = main(["clusters", "add", *args, *CLI])
    captured = capsys.readouterr()
    return code, json.loads(captured.out) if captured.out.strip() else {}, captured.err


def test_add_with_a_kubeconfig_secret_reports_the_version_and_registers(
    secrets: Any, fake_kube: Any, capsys: Any
) -> None:
    secrets.create_secret(Name="lifeboat/prod", SecretString=yaml.safe_dump(fake_kube.kubeconfig("prod-ctx")))
    code, out, _ = add(capsys, "prod", "--secret-id", "lifeboat/prod", "--context", "prod-ctx")
    assert code == EXIT_OK
    assert out["registered"] and out["kubernetes_version"] == "v1.31.0" and out["resource_types"] > 20
    assert out["auth"] == {"type": "kubeconfig_secret", "secret_id": "lifeboat/prod", "context": "prod-ctx"}
    services = Services(Settings(table=TEST_TABLE, bucket=TEST_BUCKET, region=TEST_REGION))
    record = services.cluster_catalog().get("prod")
    assert record.kubernetes_version == "v1.31.0" and record.auth == out["auth"]
    # The registration names the secret, never its content.
    assert fake_kube.token not in json.dumps(record.__dict__)
    assert main(["clusters", "list", *CLI]) == EXIT_OK
    (listed,) = json.loads(capsys.readouterr().out)
    assert listed["name"] == "prod" and listed["auth"]["type"] == "kubeconfig_secret"


def test_add_with_a_token_secret(secrets: Any, fake_kube: Any, capsys: Any) -> None:
    doc = {"server": fake_kube.url, "token": fake_kube.token, "ca": base64.b64encode(fake_kube.ca_pem).decode()}
    secrets.create_secret(Name="lifeboat/prod-sa", SecretString=json.dumps(doc))
    code, out, _ = add(capsys, "prod", "--secret-id", "lifeboat/prod-sa", "--token")
    assert code == EXIT_OK and out["kubernetes_version"] == "v1.31.0"


def test_a_rejected_token_is_reported_exactly_and_nothing_is_registered(
    secrets: Any, fake_kube: Any, capsys: Any
) -> None:
    doc = {"server": fake_kube.url, "token": "not-the-token", "ca": fake_kube.ca_pem.decode()}
    secrets.create_secret(Name="lifeboat/bad", SecretString=json.dumps(doc))
    code, out, _ = add(capsys, "prod", "--secret-id", "lifeboat/bad", "--token")
    assert code == EXIT_ERROR and out["registered"] is False
    assert "Unauthorized: GET /version: 401 Unauthorized" in out["error"]
    services = Services(Settings(table=TEST_TABLE, bucket=TEST_BUCKET, region=TEST_REGION))
    assert services.cluster_service().list() == []


def test_a_missing_secret_is_reported_exactly(secrets: Any, capsys: Any) -> None:
    code, out, _ = add(capsys, "prod", "--secret-id", "lifeboat/nope")
    assert code == EXIT_ERROR
    assert "CredentialsError: cannot read cluster credentials secret 'lifeboat/nope': ResourceNotFoundException" in (
        out["error"]
    )


def test_a_missing_eks_cluster_is_reported_exactly(secrets: Any, capsys: Any) -> None:
    code, out, _ = add(capsys, "prod", "--eks-cluster", "ghost", "--eks-region", TEST_REGION)
    assert code == EXIT_ERROR
    assert f"EKS cluster 'ghost' not found in {TEST_REGION}" in out["error"]


def test_an_unknown_context_is_reported_exactly(secrets: Any, fake_kube: Any, capsys: Any) -> None:
    secrets.create_secret(Name="lifeboat/prod", SecretString=yaml.safe_dump(fake_kube.kubeconfig("prod-ctx")))
    code, out, _ = add(capsys, "prod", "--secret-id", "lifeboat/prod", "--context", "staging")
    assert code == EXIT_ERROR and "staging" in out["error"]


def test_options_must_name_one_credential_source(secrets: Any, capsys: Any) -> None:
    assert main(["clusters", "add", "prod", *CLI]) == EXIT_USAGE
    assert "either an EKS cluster name" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("auth", "needle"),
    [
        ({"type": "kubeconfig", "kubeconfig": "..."}, "store it in Secrets Manager"),
        ({"type": "eks", "cluster_name": "prod"}, "eks auth needs region"),
        ({"type": "token_secret", "secret_id": "x", "context": "c"}, "does not take context"),
    ],
)
def test_registrations_never_store_credentials_or_half_an_auth_block(auth: dict[str, Any], needle: str) -> None:
    with pytest.raises(InvalidClusterAuth, match=needle):
        check_auth(auth)


def test_no_verify_registers_without_connecting(secrets: Any, capsys: Any) -> None:
    code, out, _ = add(capsys, "offline", "--secret-id", "lifeboat/later", "--no-verify")
    assert code == EXIT_OK and out["registered"] and out["kubernetes_version"] is None
