"""etcd values: targets in job messages, and a policy's etcd block."""

from __future__ import annotations

import pytest

from chalicelib.core.errors import InvalidPolicy
from chalicelib.core.etcd import EtcdPolicy, EtcdTarget, InvalidEtcdTarget
from chalicelib.core.jobs import ClusterRef, InvalidJob
from chalicelib.core.policies import Policy

POLICY = {"name": "cp", "cluster": "prod", "schedule": "*/15 * * * *", "scope": {"include_namespaces": ["*"]}}


def test_targets_round_trip_and_travel_in_cluster_refs() -> None:
    target = EtcdTarget.from_dict({"endpoints": "https://10.0.0.1:2379,https://10.0.0.2:2379", "secret_id": "s"})
    assert target.endpoints == ("https://10.0.0.1:2379", "https://10.0.0.2:2379")
    ref = ClusterRef("prod", {"type": "eks", "cluster_name": "prod"}, etcd=target)
    assert ClusterRef.from_dict(ref.to_dict()) == ref
    assert "etcd" not in ClusterRef("prod", {"type": "eks"}).to_dict()  # messages without etcd stay as they were


@pytest.mark.parametrize(
    "data",
    [
        {"endpoints": [], "secret_id": "s"},
        {"endpoints": ["http://10.0.0.1:2379"], "secret_id": "s"},
        {"endpoints": ["https://10.0.0.1"], "secret_id": "s"},
        {"endpoints": ["https://10.0.0.1:2379"], "secret_id": ""},
        "https://10.0.0.1:2379",
    ],
)
def test_bad_targets_are_refused(data: object) -> None:
    with pytest.raises(InvalidEtcdTarget):
        EtcdTarget.from_dict(data)
    with pytest.raises(InvalidJob):
        ClusterRef.from_dict({"name": "prod", "auth": {"type": "eks"}, "etcd": data})


def test_policy_etcd_block() -> None:
    assert Policy.from_dict(POLICY).etcd == EtcdPolicy()
    assert "etcd" not in Policy.from_dict(POLICY).to_dict()
    with_etcd = Policy.from_dict({**POLICY, "etcd": {"enabled": True}})
    assert with_etcd.etcd == EtcdPolicy(enabled=True, with_every_backup=True)
    assert Policy.from_dict(with_etcd.to_dict()) == with_etcd
    assert Policy.from_dict({**POLICY, "etcd": True}).etcd.enabled


@pytest.mark.parametrize(
    ("block", "problem"),
    [
        ({"enabled": "yes"}, "etcd.enabled: must be true or false"),
        ({"enabled": True, "schedule": "* * * * *"}, "unknown fields schedule"),
        ({"enabled": True, "with_every_backup": False}, "not supported yet"),
        (["enabled"], "etcd: must be a mapping"),
    ],
)
def test_bad_policy_etcd_blocks(block: object, problem: str) -> None:
    with pytest.raises(InvalidPolicy, match=problem):
        Policy.from_dict({**POLICY, "etcd": block})
