"""The etcd verification function: the newest snapshot of each cluster verified once with real etcd binaries, and
recorded as unverified (never as verified) where the deployment ships none."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from chalicelib.core.policies import Policy
from chalicelib.services import Services
from tests.integration.test_etcd_backup import job
from tests.integration.test_etcd_backup import services as services  # noqa: F401 (fixture)
from tests.support import etcd as etcd_helpers
from tests.support.etcd import EtcdProcess, etcd_bin

pytestmark = pytest.mark.etcd
etcd_certs = etcd_helpers.etcd_certs
etcd_member = etcd_helpers.etcd_member


@pytest.fixture
def backed_up(services: Services, kubeconfig_path: Any, test_namespace: str, etcd_member: EtcdProcess) -> Any:
    policy = Policy.from_dict(
        {
            "name": "control-plane",
            "cluster": "selfmanaged",
            "schedule": "0 2 * * *",
            "scope": {"include_namespaces": [test_namespace]},
            "etcd": {"enabled": True},
        }
    )
    services.policy_catalog().create(policy, next_run_at=None, now=datetime.now(UTC))
    record = services.backup_service().run(job(kubeconfig_path, test_namespace, [etcd_member.client_url])).record
    assert record.state == "Completed", record.errors
    return record


def test_the_newest_snapshot_is_verified_once(services: Services, backed_up: Any) -> None:
    with_binaries = Services(dataclasses.replace(services.settings, etcd_bin_dir=str(Path(etcd_bin("etcd")).parent)))

    first = with_binaries.etcd_verification_sweep().run()
    again = with_binaries.etcd_verification_sweep().run()

    assert first.verified == [f"selfmanaged/{backed_up.backup_id}"] and first.failed == []
    assert again.verified == again.failed == again.unverified == []  # already verified: nothing to do
    recorded = services.etcd_verifications().get("selfmanaged", backed_up.backup_id)
    assert recorded is not None and recorded.ok and recorded.keys == 3000


def test_without_binaries_the_snapshot_is_recorded_unverified_once(
    services: Services, backed_up: Any, tmp_path: Any
) -> None:
    empty = tmp_path / "no-etcd-here"
    empty.mkdir()
    without = Services(dataclasses.replace(services.settings, etcd_bin_dir=str(empty)))

    first = without.etcd_verification_sweep().run()
    again = without.etcd_verification_sweep().run()

    assert first.unverified == [f"selfmanaged/{backed_up.backup_id}"] and first.verified == []
    assert again.unverified == []  # said once per snapshot, not every quarter hour
    recorded = services.etcd_verifications().get("selfmanaged", backed_up.backup_id)
    assert recorded is not None and recorded.unverified and not recorded.ok
    assert "etcd verification is not available in this deployment" in recorded.error
    assert services.etcd_verifications().latest("selfmanaged") is None  # it does not count as a verified snapshot
    # Once the binaries are there, the same snapshot is verified after all.
    with_binaries = Services(dataclasses.replace(services.settings, etcd_bin_dir=str(Path(etcd_bin("etcd")).parent)))
    assert with_binaries.etcd_verification_sweep().run().verified == [f"selfmanaged/{backed_up.backup_id}"]
