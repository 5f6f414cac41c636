"""Cluster credentials: kubeconfig parsing, Secrets Manager, EKS DescribeCluster and EKS bearer tokens (no network)."""

from __future__ import annotations

import base64
import json
import sys
import threading
from pathlib import Path
from typing import Any
from unittest import mock
from urllib.parse import parse_qs, urlsplit

import pytest
import yaml

from chalicelib.kube import (
    ClusterCredentials,
    CredentialsError,
    EksTokenProvider,
    FileToken,
    InvalidKubeconfig,
    StaticToken,
    credentials_from_secret,
    eks_credentials,
    load_kubeconfig,
)
from tests.support.certs import self_signed_pem

REGION = "us-east-1"
TOKEN = "sa-token-abc123"


@pytest.fixture(scope="module")
def pem() -> bytes:
    """A real self-signed certificate, so CA handling sees what a cluster would hand out."""
    return self_signed_pem("kubernetes")


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def kubeconfig(pem: bytes, **overrides: Any) -> dict[str, Any]:
    config: dict[str, Any] = {
        "apiVersion": "v1",
        "kind": "Config",
        "current-context": "dev",
        "clusters": [
            {
                "name": "dev-cluster",
                "cluster": {"server": "https://dev.example:6443/", "certificate-authority-data": b64(pem)},
            },
            {"name": "prod-cluster", "cluster": {"server": "https://prod.example", "insecure-skip-tls-verify": True}},
        ],
        "users": [
            {"name": "dev-user", "user": {"token": TOKEN}},
            {"name": "prod-user", "user": {"token": "prod-token"}},
        ],
        "contexts": [
            {"name": "dev", "context": {"cluster": "dev-cluster", "user": "dev-user"}},
            {"name": "prod", "context": {"cluster": "prod-cluster", "user": "prod-user"}},
        ],
    }
    config.update(overrides)
    return config


def with_user(pem: bytes, user: dict[str, Any]) -> dict[str, Any]:
    config = kubeconfig(pem)
    config["users"][0]["user"] = user
    return config


# -- kubeconfig --


def test_current_context_from_yaml_text(pem: bytes) -> None:
    creds = load_kubeconfig(yaml.safe_dump(kubeconfig(pem)))

    assert creds.name == "dev"
    assert creds.server == "https://dev.example:6443"  # trailing slash dropped: paths are appended
    assert creds.ca_data == pem
    assert creds.token_provider is not None and creds.token_provider.token() == TOKEN
    assert creds.insecure_skip_tls_verify is False
    assert creds.client_cert is None and creds.client_key is None


def test_explicit_context_selects_its_cluster_and_user(pem: bytes) -> None:
    creds = load_kubeconfig(kubeconfig(pem), context="prod")

    assert (creds.name, creds.server) == ("prod", "https://prod.example")
    assert creds.insecure_skip_tls_verify is True
    assert creds.ca_data is None
    assert creds.token_provider is not None and creds.token_provider.token() == "prod-token"


def test_unknown_context_names_it_and_the_available_ones(pem: bytes) -> None:
    with pytest.raises(InvalidKubeconfig) as err:
        load_kubeconfig(kubeconfig(pem), context="staging")
    assert '"staging"' in str(err.value)
    assert '"dev"' in str(err.value) and '"prod"' in str(err.value)


def test_no_current_context_and_none_given(pem: bytes) -> None:
    with pytest.raises(InvalidKubeconfig, match="no current-context"):
        load_kubeconfig(kubeconfig(pem, **{"current-context": ""}))


def test_context_pointing_at_missing_cluster(pem: bytes) -> None:
    config = kubeconfig(pem)
    config["contexts"][1]["context"]["cluster"] = "x"
    with pytest.raises(InvalidKubeconfig, match='kubeconfig context "prod": cluster "x" not found'):
        load_kubeconfig(config, context="prod")


def test_context_pointing_at_missing_user(pem: bytes) -> None:
    config = kubeconfig(pem)
    config["contexts"][0]["context"]["user"] = "ghost"
    with pytest.raises(InvalidKubeconfig, match='kubeconfig context "dev": user "ghost" not found'):
        load_kubeconfig(config)


def test_cluster_without_server(pem: bytes) -> None:
    config = kubeconfig(pem)
    del config["clusters"][0]["cluster"]["server"]
    with pytest.raises(InvalidKubeconfig, match='cluster "dev-cluster" has no server'):
        load_kubeconfig(config)


def test_malformed_yaml_reports_position_but_not_content() -> None:
    text = "clusters:\n- name: a\n  cluster: {server: https://x\ntoken: super-secret-value: [\n"
    with pytest.raises(InvalidKubeconfig, match="not valid YAML at line") as err:
        load_kubeconfig(text)
    assert "super-secret-value" not in str(err.value)


def test_a_kubeconfig_cannot_build_python_objects() -> None:
    # The fast (libyaml) loader is the safe one: a Python tag is refused, not instantiated.
    text = "clusters: !!python/object/apply:os.getpid []\n"
    with pytest.raises(InvalidKubeconfig, match="not valid YAML at line 1"):
        load_kubeconfig(text)


@pytest.mark.parametrize("text", ["- just\n- a list\n", "plain string"])
def test_kubeconfig_must_be_a_mapping(text: str) -> None:
    with pytest.raises(InvalidKubeconfig, match="must be a mapping"):
        load_kubeconfig(text)


def test_ca_data_that_is_not_base64(pem: bytes) -> None:
    config = kubeconfig(pem)
    config["clusters"][0]["cluster"]["certificate-authority-data"] = "not base64 !!"
    with pytest.raises(InvalidKubeconfig, match="certificate-authority-data is not valid base64"):
        load_kubeconfig(config)


def test_ca_data_that_is_not_a_certificate(pem: bytes) -> None:
    config = kubeconfig(pem)
    config["clusters"][0]["cluster"]["certificate-authority-data"] = b64(b"hello")
    with pytest.raises(InvalidKubeconfig, match="PEM"):
        load_kubeconfig(config)


def test_files_are_resolved_against_base_dir(pem: bytes, tmp_path: Path) -> None:
    (tmp_path / "ca.crt").write_bytes(pem)
    (tmp_path / "token").write_text("file-token\n")
    config = kubeconfig(pem)
    config["clusters"][0]["cluster"] = {"server": "https://dev.example", "certificate-authority": "ca.crt"}
    config["users"][0]["user"] = {"tokenFile": "token"}

    creds = load_kubeconfig(config, base_dir=tmp_path)

    assert creds.ca_data == pem
    assert isinstance(creds.token_provider, FileToken)
    assert creds.token_provider.token() == "file-token"


def test_missing_ca_file_is_named(pem: bytes, tmp_path: Path) -> None:
    config = kubeconfig(pem)
    config["clusters"][0]["cluster"] = {"server": "https://dev.example", "certificate-authority": "nope.crt"}
    with pytest.raises(InvalidKubeconfig, match="certificate-authority: cannot read .*nope.crt"):
        load_kubeconfig(config, base_dir=tmp_path)


def test_token_wins_over_token_file(pem: bytes, tmp_path: Path) -> None:
    creds = load_kubeconfig(with_user(pem, {"token": "inline", "tokenFile": str(tmp_path / "absent")}))
    assert isinstance(creds.token_provider, StaticToken)
    assert creds.token_provider.token() == "inline"


def test_token_file_is_reread_after_a_minute(tmp_path: Path) -> None:
    path = tmp_path / "token"
    path.write_text("first")
    now = [1000.0]
    provider = FileToken(path, clock=lambda: now[0])
    assert provider.token() == "first"
    path.write_text("rotated")
    now[0] += 59
    assert provider.token() == "first"
    now[0] += 2
    assert provider.token() == "rotated"


def test_client_certificate_data(pem: bytes) -> None:
    creds = load_kubeconfig(
        with_user(pem, {"client-certificate-data": b64(pem), "client-key-data": b64(b"-----BEGIN KEY-----")})
    )
    assert creds.client_cert == pem
    assert creds.client_key == b"-----BEGIN KEY-----"
    assert creds.token_provider is None


def test_client_certificate_files(pem: bytes, tmp_path: Path) -> None:
    (tmp_path / "c.crt").write_bytes(pem)
    (tmp_path / "c.key").write_bytes(b"key")
    creds = load_kubeconfig(with_user(pem, {"client-certificate": "c.crt", "client-key": "c.key"}), base_dir=tmp_path)
    assert (creds.client_cert, creds.client_key) == (pem, b"key")


def test_client_certificate_without_key(pem: bytes) -> None:
    with pytest.raises(InvalidKubeconfig, match="client certificate needs its key"):
        load_kubeconfig(with_user(pem, {"client-certificate-data": b64(pem)}))


def test_basic_auth_is_refused(pem: bytes) -> None:
    with pytest.raises(InvalidKubeconfig, match="basic authentication"):
        load_kubeconfig(with_user(pem, {"username": "admin", "password": "pw"}))


def test_secrets_stay_out_of_repr(pem: bytes) -> None:
    creds = load_kubeconfig(
        with_user(pem, {"token": TOKEN, "client-certificate-data": b64(pem), "client-key-data": b64(b"PRIVATE")})
    )
    assert TOKEN not in repr(creds)
    assert "PRIVATE" not in repr(creds)
    assert TOKEN not in repr(StaticToken(TOKEN))


def test_aws_eks_get_token_exec_is_computed_natively(pem: bytes, aws: None) -> None:
    exec_entry = {
        "apiVersion": "client.authentication.k8s.io/v1beta1",
        "command": "aws",
        "args": ["--region", "eu-west-1", "eks", "get-token", "--cluster-name", "prod-eks", "--output", "json"],
    }
    creds = load_kubeconfig(with_user(pem, {"exec": exec_entry}))

    assert isinstance(creds.token_provider, EksTokenProvider)
    assert creds.token_provider.cluster_name == "prod-eks"
    url = decode_eks_token(creds.token_provider.token())
    assert urlsplit(url).netloc == "sts.eu-west-1.amazonaws.com"


def test_aws_iam_authenticator_exec_is_computed_natively(pem: bytes, aws: None) -> None:
    exec_entry = {
        "apiVersion": "client.authentication.k8s.io/v1beta1",
        "command": "aws-iam-authenticator",
        "args": ["token", "-i", "c1"],
    }
    creds = load_kubeconfig(with_user(pem, {"exec": exec_entry}))
    assert isinstance(creds.token_provider, EksTokenProvider)
    assert creds.token_provider.cluster_name == "c1"


def test_other_exec_plugins_are_delegated_to_the_official_loader(pem: bytes) -> None:
    credential = {
        "apiVersion": "client.authentication.k8s.io/v1",
        "kind": "ExecCredential",
        "status": {"token": "from-plugin"},
    }
    exec_entry = {
        "apiVersion": "client.authentication.k8s.io/v1",
        "command": sys.executable,
        "args": ["-c", f"print({json.dumps(json.dumps(credential))})"],
        "interactiveMode": "Never",
    }
    creds = load_kubeconfig(with_user(pem, {"exec": exec_entry}))
    assert creds.token_provider is not None
    assert creds.token_provider.token() == "from-plugin"


def test_a_failing_exec_plugin_is_a_credentials_error(pem: bytes) -> None:
    exec_entry = {
        "apiVersion": "client.authentication.k8s.io/v1",
        "command": sys.executable,
        "args": ["-c", "import sys; sys.exit(3)"],
        "interactiveMode": "Never",
    }
    creds = load_kubeconfig(with_user(pem, {"exec": exec_entry}))
    assert creds.token_provider is not None
    with pytest.raises(CredentialsError, match="exec"):
        creds.token_provider.token()


def test_credentials_need_an_http_url() -> None:
    with pytest.raises(CredentialsError, match="not an http"):
        ClusterCredentials(server="dev.example:6443")


# -- Secrets Manager --


@pytest.fixture
def secrets(aws: None) -> Any:
    import boto3

    return boto3.client("secretsmanager", region_name=REGION)


@pytest.mark.parametrize("ca_form", ["pem", "base64"])
def test_service_account_secret(secrets: Any, pem: bytes, ca_form: str) -> None:
    ca = pem.decode() if ca_form == "pem" else b64(pem)
    secrets.create_secret(
        Name="clusters/prod", SecretString=json.dumps({"server": "https://k8s.example/", "token": TOKEN, "ca": ca})
    )

    creds = credentials_from_secret(secrets, "clusters/prod")

    assert creds.server == "https://k8s.example"
    assert creds.ca_data == pem
    assert creds.token_provider is not None and creds.token_provider.token() == TOKEN
    assert creds.name == "clusters/prod"


def test_service_account_secret_without_token(secrets: Any) -> None:
    secrets.create_secret(Name="clusters/bad", SecretString=json.dumps({"server": "https://k8s.example"}))
    with pytest.raises(CredentialsError, match="'clusters/bad'.*token"):
        credentials_from_secret(secrets, "clusters/bad")


def test_kubeconfig_secret_with_context(secrets: Any, pem: bytes) -> None:
    secrets.create_secret(Name="kc", SecretString=yaml.safe_dump(kubeconfig(pem)))

    assert credentials_from_secret(secrets, "kc").server == "https://dev.example:6443"
    assert credentials_from_secret(secrets, "kc", context="prod").server == "https://prod.example"


def test_invalid_kubeconfig_secret_names_the_secret(secrets: Any, pem: bytes) -> None:
    secrets.create_secret(Name="kc", SecretString=yaml.safe_dump(kubeconfig(pem)))
    with pytest.raises(InvalidKubeconfig, match="secret 'kc': kubeconfig context \"nope\" not found"):
        credentials_from_secret(secrets, "kc", context="nope")


def test_missing_secret_is_named(secrets: Any) -> None:
    with pytest.raises(CredentialsError, match="'clusters/missing'.*ResourceNotFoundException") as err:
        credentials_from_secret(secrets, "clusters/missing")
    from botocore.exceptions import ClientError

    assert isinstance(err.value.__cause__, ClientError)


def test_access_denied_is_wrapped(pem: bytes) -> None:
    import boto3
    from botocore.stub import Stubber

    client = boto3.client("secretsmanager", region_name=REGION, aws_access_key_id="x", aws_secret_access_key="y")
    with Stubber(client) as stub:
        stub.add_client_error("get_secret_value", service_error_code="AccessDeniedException", http_status_code=400)
        with pytest.raises(CredentialsError, match="'locked'.*AccessDeniedException"):
            credentials_from_secret(client, "locked")


# -- EKS --


def decode_eks_token(token: str) -> str:
    assert token.startswith("k8s-aws-v1.")
    body = token.removeprefix("k8s-aws-v1.")
    assert "=" not in body
    return base64.urlsafe_b64decode(body + "=" * (-len(body) % 4)).decode()


@pytest.fixture
def sts(aws: None) -> Any:
    import boto3

    return boto3.client("sts", region_name="eu-west-1")


def test_eks_token_is_a_presigned_get_caller_identity_url_naming_the_cluster(sts: Any) -> None:
    url = decode_eks_token(EksTokenProvider(sts, "prod-eks").token())

    parts = urlsplit(url)
    query = parse_qs(parts.query)
    assert f"{parts.scheme}://{parts.netloc}{parts.path}" == "https://sts.eu-west-1.amazonaws.com/"
    assert url.startswith("https://sts.eu-west-1.amazonaws.com/?Action=GetCallerIdentity&Version=2011-06-15&X-Amz-")
    assert query["X-Amz-Expires"] == ["60"]
    assert "x-k8s-aws-id" in query["X-Amz-SignedHeaders"][0].split(";")
    assert "host" in query["X-Amz-SignedHeaders"][0].split(";")
    assert query["X-Amz-Signature"][0]
    assert "x-k8s-aws-id" not in {key.lower() for key in query}  # a signed header, not a parameter


def test_eks_token_is_cached_then_refreshed(sts: Any) -> None:
    now = [1_000_000.0]
    provider = EksTokenProvider(sts, "c1", clock=lambda: now[0])
    with mock.patch.object(sts, "generate_presigned_url", wraps=sts.generate_presigned_url) as sign:
        first = provider.token()
        now[0] += 599
        assert provider.token() == first
        assert sign.call_count == 1
        now[0] += 2
        provider.token()
        assert sign.call_count == 2


def test_eks_token_is_signed_once_under_concurrency(sts: Any) -> None:
    provider = EksTokenProvider(sts, "c1")
    with mock.patch.object(sts, "generate_presigned_url", wraps=sts.generate_presigned_url) as sign:
        tokens: list[str] = []
        threads = [threading.Thread(target=lambda: tokens.append(provider.token())) for _ in range(8)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    assert sign.call_count == 1
    assert len(set(tokens)) == 1 and len(tokens) == 8


def test_two_providers_on_one_client_sign_one_header(sts: Any) -> None:
    EksTokenProvider(sts, "a")
    url = decode_eks_token(EksTokenProvider(sts, "b").token())
    assert parse_qs(urlsplit(url).query)["X-Amz-SignedHeaders"] == ["host;x-k8s-aws-id"]


def test_eks_token_without_aws_credentials_is_a_credentials_error(monkeypatch: pytest.MonkeyPatch) -> None:
    import boto3

    for key in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE"):
        monkeypatch.delenv(key, raising=False)
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", "/nonexistent")
    monkeypatch.setenv("AWS_CONFIG_FILE", "/nonexistent")
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    client = boto3.session.Session().client("sts", region_name=REGION)
    with pytest.raises(CredentialsError, match="'c1'"):
        EksTokenProvider(client, "c1").token()


def test_eks_credentials_from_describe_cluster(sts: Any, pem: bytes) -> None:
    import boto3
    from botocore.stub import Stubber

    eks = boto3.client("eks", region_name=REGION)
    cluster = {
        "name": "prod-eks",
        "endpoint": "https://ABC.gr7.us-east-1.eks.amazonaws.com",
        "certificateAuthority": {"data": b64(pem)},
        "status": "ACTIVE",
    }
    with Stubber(eks) as stub:
        stub.add_response("describe_cluster", {"cluster": cluster}, {"name": "prod-eks"})
        creds = eks_credentials(eks, sts, "prod-eks")

    assert creds.server == "https://ABC.gr7.us-east-1.eks.amazonaws.com"
    assert creds.ca_data == pem
    assert creds.name == "prod-eks"
    assert isinstance(creds.token_provider, EksTokenProvider)
    assert creds.token_provider.cluster_name == "prod-eks"


def test_eks_cluster_not_found(sts: Any) -> None:
    import boto3

    eks = boto3.client("eks", region_name=REGION)  # moto
    with pytest.raises(CredentialsError, match="EKS cluster 'ghost' not found in us-east-1"):
        eks_credentials(eks, sts, "ghost")


def test_eks_cluster_still_creating(sts: Any) -> None:
    import boto3
    from botocore.stub import Stubber

    eks = boto3.client("eks", region_name=REGION)
    with Stubber(eks) as stub:
        stub.add_response("describe_cluster", {"cluster": {"name": "new", "status": "CREATING"}}, {"name": "new"})
        with pytest.raises(CredentialsError, match="no endpoint or CA yet .status CREATING"):
            eks_credentials(eks, sts, "new")
