"""Registering a self-managed cluster's etcd (checked by a status call), EKS's refusal, and what policies then do."""

from __future__ import annotations

from typing import Any

import pytest

from chalicelib.core.errors import InvalidPolicy
from chalicelib.core.etcd import MANAGED_CONTROL_PLANE, EtcdTarget
from chalicelib.scheduling.clusters import ClusterService
from chalicelib.scheduling.errors import ClusterCheckFailed, SchedulingError
from chalicelib.services import Services
from tests.integration.test_dispatcher import Env
from tests.integration.test_etcd_backup import SECRET
from tests.integration.test_etcd_backup import services as services  # noqa: F401 (fixture)
from tests.support import etcd as etcd_helpers
from tests.support.clocks import Clock, utc
from tests.support.etcd import EtcdProcess, free_port

pytestmark = pytest.mark.etcd
etcd_certs = etcd_helpers.etcd_certs
etcd_member = etcd_helpers.etcd_member
SELF_MANAGED = {"type": "kubeconfig_secret", "secret_id": "lifeboat/kubeconfig"}
EKS = {"type": "eks", "cluster_name": "prod-eks", "region": "eu-central-1"}
POLICY = {"schedule": "0 * * * *", "scope": {"include_namespaces": ["*"]}}


class _Kube:
    def version(self) -> dict[str, str]:
        return {"gitVersion": "v1.31.0"}

    def discover(self) -> list[Any]:
        return []


def cluster_service(services: Services) -> ClusterService:
    # The Kubernetes side of the check is covered elsewhere; the etcd side is the real status call.
    return ClusterService(
        services.cluster_catalog(), lambda ref: _Kube(), etcd_status=lambda t: services.etcd_client(t).status()
    )


def test_a_self_managed_cluster_registers_its_etcd_after_a_status_call(
    services: Services, etcd_member: EtcdProcess
) -> None:
    target = EtcdTarget((etcd_member.client_url,), SECRET)
    record, _ = cluster_service(services).add("onprem", SELF_MANAGED, etcd=target)
    assert record.etcd is not None and record.etcd["endpoints"] == [etcd_member.client_url]
    assert record.etcd["version"].startswith("3.") and record.etcd["member"]
    assert services.cluster_catalog().get("onprem").etcd == record.etcd


def test_an_unreachable_etcd_is_not_registered(services: Services) -> None:
    target = EtcdTarget((f"https://127.0.0.1:{free_port()}",), SECRET)
    with pytest.raises(ClusterCheckFailed, match="etcd: EtcdUnavailable"):
        cluster_service(services).add("onprem", SELF_MANAGED, etcd=target)
    with pytest.raises(ClusterCheckFailed, match="etcd: EtcdCredentialsError"):
        cluster_service(services).add("onprem", SELF_MANAGED, etcd=EtcdTarget(target.endpoints, "no-such-secret"))


def test_eks_records_a_managed_control_plane_and_refuses_etcd_options(services: Services) -> None:
    service = cluster_service(services)
    record, _ = service.add("eks", EKS)
    assert record.etcd == {"unavailable": MANAGED_CONTROL_PLANE}
    with pytest.raises(SchedulingError, match=MANAGED_CONTROL_PLANE):
        service.add("eks", EKS, etcd=EtcdTarget(("https://10.0.0.1:2379",), SECRET))


def test_policies_with_etcd_are_refused_where_etcd_is_not_reachable_and_dispatched_with_it_elsewhere(
    dynamodb: Any, table: str, etcd_member: EtcdProcess
) -> None:
    import boto3

    env = Env(dynamodb, table, boto3.client("sqs", region_name="us-east-1"), Clock(utc(2026, 1, 10, 0, 30)))
    with pytest.raises(InvalidPolicy, match=f"etcd: {MANAGED_CONTROL_PLANE}"):
        env.service.apply_document(
            {"policies": [{"name": "cp", "cluster": "prod", "etcd": {"enabled": True}, **POLICY}]}
        )
    env.clusters.register("plain", SELF_MANAGED, kubernetes_version=None, now=env.clock())
    with pytest.raises(InvalidPolicy, match="no etcd registered"):
        env.service.apply_document({"policies": [{"name": "cp", "cluster": "plain", "etcd": True, **POLICY}]})

    etcd = {"endpoints": [etcd_member.client_url], "secret_id": SECRET, "version": "3.5.1"}
    env.clusters.register("onprem", SELF_MANAGED, kubernetes_version=None, now=env.clock(), etcd=etcd)
    env.service.apply_document(
        {
            "policies": [
                {"name": "cp", "cluster": "onprem", "etcd": True, **POLICY},
                {"name": "objects", "cluster": "onprem", **POLICY},
            ]
        }
    )
    env.clock.advance(hours=1)
    env.dispatcher().dispatch_due()
    jobs = {m["policy"]: m for m in env.messages()}
    assert jobs["cp"]["cluster"]["etcd"] == {"endpoints": [etcd_member.client_url], "secret_id": SECRET}
    assert "etcd" not in jobs["objects"]["cluster"]


def test_clusters_add_etcd_flags(services: Services, capsys: Any) -> None:
    from chalicelib.cli.output import EXIT_OK, EXIT_USAGE
    from tests.integration.test_cli import AWS, run

    base = ["clusters", "add", "onprem", "--secret-id", "lifeboat/kubeconfig", "--no-verify", "--output", "json"]
    code, out = run(
        capsys,
        *base,
        "--etcd-endpoints",
        "https://10.0.0.1:2379,https://10.0.0.2:2379",
        "--etcd-secret-id",
        SECRET,
        *AWS,
    )
    assert code == EXIT_OK, out
    assert out["etcd"] == {"endpoints": ["https://10.0.0.1:2379", "https://10.0.0.2:2379"], "secret_id": SECRET}
    assert run(capsys, *base, "--etcd-endpoints", "https://10.0.0.1:2379", *AWS)[0] == EXIT_USAGE
    assert (
        run(capsys, *base, "--etcd-endpoints", "http://10.0.0.1:2379", "--etcd-secret-id", "s", *AWS)[0] == EXIT_USAGE
    )
