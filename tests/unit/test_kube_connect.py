"""kube.connect chooses the credentials a cluster reference names."""

from __future__ import annotations

from typing import Any

import pytest
import yaml

from chalicelib.core.jobs import ClusterRef, InvalidJob
from chalicelib.kube.connect import credentials_for

KUBECONFIG = {
    "apiVersion": "v1",
    "kind": "Config",
    "clusters": [{"name": "c", "cluster": {"server": "https://k8s.example:6443", "insecure-skip-tls-verify": True}}],
    "users": [{"name": "u", "user": {"token": "t"}}],
    "contexts": [{"name": "c", "context": {"cluster": "c", "user": "u"}}],
    "current-context": "c",
}


class NoClients:
    def client(self, service: str, region: str | None = None) -> Any:
        raise AssertionError(f"an inline kubeconfig needs no {service} client")


class Clients:
    def __init__(self) -> None:
        self.asked: list[tuple[str, str | None]] = []

    def client(self, service: str, region: str | None = None) -> Any:
        self.asked.append((service, region))
        raise RuntimeError("stop here")


def test_an_inline_kubeconfig_needs_no_aws_client() -> None:
    ref = ClusterRef("dev", {"type": "kubeconfig", "kubeconfig": yaml.safe_dump(KUBECONFIG)})
    assert credentials_for(ref, NoClients()).server == "https://k8s.example:6443"


@pytest.mark.parametrize(
    ("auth", "first"),
    [
        ({"type": "token_secret", "secret_id": "s"}, ("secretsmanager", None)),
        ({"type": "kubeconfig_secret", "secret_id": "s"}, ("secretsmanager", None)),
        ({"type": "eks", "cluster_name": "prod", "region": "eu-west-1"}, ("eks", "eu-west-1")),
        ({"type": "eks", "cluster_name": "prod"}, ("eks", None)),
    ],
)
def test_secret_and_eks_auth_ask_for_their_clients(auth: dict[str, Any], first: tuple[str, str | None]) -> None:
    clients = Clients()
    with pytest.raises(RuntimeError, match="stop here"):
        credentials_for(ClusterRef("prod", auth), clients)
    assert clients.asked[0] == first


def test_an_unknown_auth_type_is_an_invalid_job() -> None:
    with pytest.raises(InvalidJob, match="unsupported auth type"):
        credentials_for(ClusterRef("prod", {"type": "carrier-pigeon"}), NoClients())
