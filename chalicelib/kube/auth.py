"""Where credentials come from: a kubeconfig, a Secrets Manager secret (kubeconfig or service-account token), or EKS."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import orjson

from chalicelib.kube.credentials import ClusterCredentials, EksTokenProvider, StaticToken, decode_ca
from chalicelib.kube.errors import CredentialsError, InvalidKubeconfig
from chalicelib.kube.kubeconfig import parse_kubeconfig


def load_kubeconfig(
    text_or_dict: str | bytes | Mapping[str, Any], context: str | None = None, *, base_dir: str | Path | None = None
) -> ClusterCredentials:
    """Credentials for one context of a kubeconfig (YAML text or its parsed dict); ``context`` defaults to current."""
    return parse_kubeconfig(text_or_dict, context, base_dir=base_dir)


def credentials_from_secret(
    secretsmanager_client: Any, secret_id: str, context: str | None = None
) -> ClusterCredentials:
    """Credentials kept in Secrets Manager: a kubeconfig, or JSON ``{"server", "token", "ca"}`` (service account)."""
    from chalicelib.aws.errors import AwsError
    from chalicelib.aws.secrets import SecretReader

    try:
        text = SecretReader(secretsmanager_client).read(secret_id)
    except AwsError as exc:
        # Chained to what botocore raised (when it did): that is the cause an operator needs, and callers test it.
        raise CredentialsError(f"cannot read cluster credentials {exc}") from (exc.__cause__ or exc)
    if text.lstrip().startswith("{"):
        try:
            doc = orjson.loads(text)
        except orjson.JSONDecodeError as exc:
            # Never echo the text: it is a credential.
            raise CredentialsError(f"secret {secret_id!r} looks like JSON but does not parse") from exc
        if isinstance(doc, dict) and "server" in doc:
            return _service_account_credentials(doc, secret_id)
        text_or_dict: str | dict[str, Any] = doc
    else:
        text_or_dict = text
    try:
        return load_kubeconfig(text_or_dict, context)
    except InvalidKubeconfig as exc:
        raise InvalidKubeconfig(f"secret {secret_id!r}: {exc}") from exc


def _service_account_credentials(doc: dict[str, Any], secret_id: str) -> ClusterCredentials:
    where = f"secret {secret_id!r}"
    server, token, ca = doc.get("server"), doc.get("token"), doc.get("ca")
    if not isinstance(server, str) or not server:
        raise CredentialsError(f"{where}: 'server' must be a URL")
    if not isinstance(token, str) or not token:
        raise CredentialsError(f"{where}: 'token' is missing")
    if ca is not None and not isinstance(ca, str):
        raise CredentialsError(f"{where}: 'ca' must be a PEM or base64 PEM string")
    return ClusterCredentials(
        server=server.rstrip("/"),
        ca_data=decode_ca(ca, where) if ca else None,
        token_provider=StaticToken(token),
        insecure_skip_tls_verify=bool(doc.get("insecure_skip_tls_verify", False)),
        name=str(doc.get("name") or secret_id),
    )


def eks_credentials(eks_client: Any, sts_client: Any, cluster_name: str) -> ClusterCredentials:
    """Credentials for an EKS cluster: endpoint and CA from DescribeCluster, tokens signed with our own identity."""
    from botocore.exceptions import BotoCoreError, ClientError

    region = getattr(eks_client.meta, "region_name", None) or "?"
    try:
        cluster = eks_client.describe_cluster(name=cluster_name)["cluster"]
    except ClientError as exc:
        code = exc.response.get("Error", {}).get("Code", "Unknown")
        if code == "ResourceNotFoundException":
            raise CredentialsError(f"EKS cluster {cluster_name!r} not found in {region}") from exc
        raise CredentialsError(f"cannot describe EKS cluster {cluster_name!r} in {region}: {code}") from exc
    except BotoCoreError as exc:
        raise CredentialsError(f"cannot describe EKS cluster {cluster_name!r} in {region}: {exc}") from exc
    endpoint = cluster.get("endpoint")
    ca = (cluster.get("certificateAuthority") or {}).get("data")
    if not endpoint or not ca:
        status = cluster.get("status", "unknown")
        raise CredentialsError(f"EKS cluster {cluster_name!r} has no endpoint or CA yet (status {status})")
    return ClusterCredentials(
        server=endpoint.rstrip("/"),
        ca_data=decode_ca(ca, f"EKS cluster {cluster_name!r}"),
        token_provider=EksTokenProvider(sts_client, cluster_name),
        name=cluster_name,
    )
