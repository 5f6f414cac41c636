"""The etcd adapter against a real etcd serving TLS with client certificates."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from chalicelib.etcd import EtcdClient, EtcdError, EtcdTLS, EtcdUnavailable, parse_endpoints
from chalicelib.etcd.snapshot import TRAILER_SIZE, SnapshotReader
from tests.support import etcd as etcd_helpers
from tests.support.etcd import Certs, EtcdProcess, etcd_bin, free_port, make_certs

pytestmark = pytest.mark.etcd
etcd_certs = etcd_helpers.etcd_certs
etcd_member = etcd_helpers.etcd_member


def test_status_and_key_count(etcd_member: EtcdProcess) -> None:
    client = etcd_member.client()
    status = client.status()
    assert status.version.startswith("3.")
    assert status.db_size > 0 and status.header.member_id and status.leader == status.header.member_id
    counted = client.count_keys()
    assert counted.count == 3000 and counted.revision == status.header.revision


def test_snapshot_stream_is_what_etcdctl_saves(etcd_member: EtcdProcess, tmp_path: Path) -> None:
    reader = SnapshotReader(etcd_member.client().snapshot(etcd_member.client_url), where=etcd_member.client_url)
    ours = tmp_path / "ours.db"
    ours.write_bytes(b"".join(reader))
    etcd_member.etcdctl("snapshot", "save", str(tmp_path / "etcdctl.db"))
    # etcdctl keeps the trailing checksum too, so both files are the bolt database (pages of 4 KiB) plus 32 bytes.
    assert ours.stat().st_size == (tmp_path / "etcdctl.db").stat().st_size == reader.db_size + TRAILER_SIZE
    assert ours.stat().st_size % 512 == TRAILER_SIZE
    # etcdutl checks that trailer when it restores (no --skip-hash-check).
    subprocess.run(
        [etcd_bin("etcdutl"), "snapshot", "restore", str(ours), f"--data-dir={tmp_path / 'restored'}"],
        check=True,
        capture_output=True,
    )
    assert (tmp_path / "restored" / "member" / "snap" / "db").exists()


def test_a_client_without_the_ca_or_a_certificate_is_refused(etcd_member: EtcdProcess, etcd_certs: Certs) -> None:
    other = make_certs(etcd_certs.dir.parent / "other-ca")
    with pytest.raises(EtcdUnavailable):
        EtcdClient([etcd_member.client_url], other.tls(), timeout_s=3).status()
    no_client_cert = EtcdTLS(etcd_certs.ca.read_bytes(), b"", b"")
    with pytest.raises(EtcdError):
        EtcdClient([etcd_member.client_url], no_client_cert, timeout_s=3).status()


def test_the_first_endpoint_that_answers_is_used(etcd_member: EtcdProcess) -> None:
    dead = f"https://127.0.0.1:{free_port()}"
    client = EtcdClient([dead, etcd_member.client_url], etcd_member.certs.tls(), timeout_s=3)
    assert client.status().version.startswith("3.")
    with pytest.raises(EtcdUnavailable, match=dead.replace(".", r"\.")):
        EtcdClient([dead], etcd_member.certs.tls(), timeout_s=1).status()


def test_endpoints_are_checked() -> None:
    assert parse_endpoints("https://a:2379, https://b:2379") == ("https://a:2379", "https://b:2379")
    for bad in ("", "a:2379", "https://a", "ftp://a:1"):
        with pytest.raises(EtcdError):
            parse_endpoints(bad)
