"""Which credentials a cluster reference names: an inline kubeconfig, a Secrets Manager secret, or EKS."""

from __future__ import annotations

from typing import Any, Protocol

from chalicelib.core.jobs import ClusterRef, InvalidJob
from chalicelib.kube.credentials import ClusterCredentials


class AwsClients(Protocol):
    """Hands out boto3 clients (the composition root); ``region`` None means the deployment's region."""

    def client(self, service: str, region: str | None = None) -> Any: ...


def credentials_for(ref: ClusterRef, clients: AwsClients) -> ClusterCredentials:
    """Credentials for ``ref``, as its auth block says (``docs/architecture.md`` lists the types)."""
    from chalicelib.kube.auth import credentials_from_secret, eks_credentials, load_kubeconfig

    auth = ref.auth
    kind = auth.get("type")
    if kind == "kubeconfig":
        return load_kubeconfig(auth["kubeconfig"], context=auth.get("context"))
    if kind in ("kubeconfig_secret", "token_secret"):
        return credentials_from_secret(clients.client("secretsmanager"), auth["secret_id"], context=auth.get("context"))
    if kind == "eks":
        region = auth.get("region") or None
        return eks_credentials(clients.client("eks", region), clients.client("sts", region), auth["cluster_name"])
    raise InvalidJob(f"cluster {ref.name!r}: unsupported auth type {kind!r}")
