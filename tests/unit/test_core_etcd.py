"""etcd values: targets in job messages, and a policy's etcd block."""

from __future__ import annotations

import pytest

from chalicelib.core.errors import InvalidPolicy
from chalicelib.core.etcd import EtcdPolicy, EtcdTarget, InvalidEtcdTarget
from chalicelib.core.jobs import BackupJob, ClusterRef, InvalidJob
from chalicelib.core.policies import Policy
from chalicelib.core.schedule import Schedule

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
        ({"enabled": True, "every": "* * * * *"}, "unknown fields every"),
        ({"enabled": True, "with_every_backup": False}, "with_every_backup: false needs a separate etcd schedule"),
        ({"enabled": True, "schedule": "0 * * * *", "with_every_backup": True}, "contradicts schedule"),
        ({"enabled": True, "schedule": "61 * * * *"}, r"etcd\.schedule\.cron"),
        ({"enabled": True, "schedule": {"cron": "0 * * * *", "timezone": "Mars/Olympus"}}, r"etcd\.schedule\.timezone"),
        ({"enabled": True, "rpo_target_minutes": 0}, r"etcd\.rpo_target_minutes"),
        (["enabled"], "etcd: must be a mapping"),
    ],
)
def test_bad_policy_etcd_blocks(block: object, problem: str) -> None:
    with pytest.raises(InvalidPolicy, match=problem):
        Policy.from_dict({**POLICY, "etcd": block})


def test_policy_etcd_block_with_its_own_schedule_round_trips() -> None:
    block = {"enabled": True, "schedule": {"cron": "0 * * * *", "timezone": "Europe/Berlin"}, "rpo_target_minutes": 90}
    policy = Policy.from_dict({**POLICY, "etcd": block})
    assert policy.etcd.separate and not policy.etcd.with_every_backup
    assert policy.etcd.schedule == Schedule("0 * * * *", "Europe/Berlin")
    assert policy.etcd.rpo_target_minutes == 90
    assert Policy.from_dict(policy.to_dict()) == policy
    every = Policy.from_dict({**POLICY, "etcd": {"enabled": True, "schedule": "with-every-backup"}})
    assert every.etcd == EtcdPolicy(enabled=True) and not every.etcd.separate
    assert every.to_dict()["etcd"]["schedule"] == "with-every-backup"
    # A policy stored before the schedule field existed reads as it did.
    legacy = Policy.from_dict({**POLICY, "etcd": {"enabled": True, "with_every_backup": True}})
    assert legacy.etcd == every.etcd


def test_etcd_only_jobs_round_trip_and_need_the_clusters_etcd() -> None:
    target = EtcdTarget(("https://10.0.0.1:2379",), "s")
    job = BackupJob("etcd:cp:20260101T000000Z", ClusterRef("prod", {"type": "kubeconfig"}, etcd=target), etcd_only=True)
    assert job.to_dict()["kind"] == "etcd"
    parsed = BackupJob.from_dict(job.to_dict())
    assert parsed.etcd_only and parsed.cluster == job.cluster and parsed.job_id == job.job_id
    assert "kind" not in BackupJob("j", ClusterRef("prod", {"type": "kubeconfig"})).to_dict()
    with pytest.raises(InvalidJob, match="needs the cluster's etcd"):
        BackupJob.from_dict({**job.to_dict(), "cluster": {"name": "prod", "auth": {"type": "kubeconfig"}}})
    with pytest.raises(InvalidJob, match="kind must be"):
        BackupJob.from_dict({**job.to_dict(), "kind": "volumes"})
