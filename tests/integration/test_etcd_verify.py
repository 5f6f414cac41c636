"""Verifying an etcd snapshot by restoring it with etcdutl and reading it back from an etcd on the restored data."""

from __future__ import annotations

import dataclasses
import hashlib
import subprocess
from typing import Any

import pytest

from chalicelib.repository import RepositoryReader
from chalicelib.services import Services
from chalicelib.snapshots.etcd import artifact_key
from tests.integration.test_etcd_backup import job
from tests.integration.test_etcd_backup import services as services  # noqa: F401 (fixture)
from tests.support import etcd as etcd_helpers
from tests.support.etcd import EtcdProcess, etcd_bin

pytestmark = pytest.mark.etcd
etcd_certs = etcd_helpers.etcd_certs
etcd_member = etcd_helpers.etcd_member


@pytest.fixture
def backed_up(services: Services, kubeconfig_path: Any, test_namespace: str, etcd_member: EtcdProcess) -> Any:
    record = services.backup_service().run(job(kubeconfig_path, test_namespace, [etcd_member.client_url])).record
    assert record.state == "Completed", record.errors
    return RepositoryReader(services.repository()).load_manifest(record.cluster, record.backup_id)


def test_a_good_snapshot_restores_and_reads_back(services: Services, backed_up: Any) -> None:
    result = services.etcd_verifier().verify(backed_up)
    assert result.ok, result.error
    assert result.keys == 3000 and result.revision >= result.expected_revision > 0
    assert result.sha256 == backed_up.etcd_snapshot["sha256"]
    assert services.etcd_verifications().latest(backed_up.cluster) == result


def test_a_snapshot_changed_in_storage_fails_verification(services: Services, backed_up: Any) -> None:
    store = services.store()
    key = artifact_key(backed_up.cluster, backed_up.backup_id)
    data = bytearray(store.get(key))
    data[len(data) // 2] ^= 0xFF
    store.put(key, bytes(data), create_only=False)  # what bit rot or tampering would leave
    result = services.etcd_verifier().verify(backed_up)
    assert not result.ok and "SHA-256" in result.error
    assert services.etcd_verifications().latest(backed_up.cluster) is None  # no verified snapshot
    assert services.etcd_verifications().latest(backed_up.cluster, ok_only=False) == result


def test_damage_that_snapshot_status_misses_is_caught(services: Services, backed_up: Any, tmp_path: Any) -> None:
    """A changed value keeps the database well-formed: ``snapshot status`` passes it, a restore does not."""
    store = services.store()
    key = artifact_key(backed_up.cluster, backed_up.backup_id)
    data = bytearray(store.get(key))
    at = bytes(data).index(b"value-1500")
    data[at + 6] ^= 0x01  # "value-0500": still a valid page, a valid key, only the trailing checksum disagrees
    bad = bytes(data)
    (tmp_path / "bad.db").write_bytes(bad)
    status = subprocess.run([etcd_bin("etcdutl"), "snapshot", "status", str(tmp_path / "bad.db")], capture_output=True)
    assert status.returncode == 0, status.stderr
    restore = [etcd_bin("etcdutl"), "snapshot", "restore", str(tmp_path / "bad.db"), f"--data-dir={tmp_path / 'd'}"]
    assert subprocess.run(restore, capture_output=True).returncode != 0
    store.put(key, bad, create_only=False)
    # Even with a manifest that matches the damaged file, the verification refuses it.
    entry = {**backed_up.etcd_snapshot, "sha256": hashlib.sha256(bad).hexdigest()}
    result = services.etcd_verifier().verify(dataclasses.replace(backed_up, etcd_snapshot=entry))
    assert not result.ok and "trailing SHA-256" in result.error
