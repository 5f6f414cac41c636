"""The etcd runbook end to end: lifeboat etcd restore-plan, then its script run against a real single-member etcd."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path
from typing import Any

import pytest

from chalicelib.cli.output import EXIT_ERROR, EXIT_OK
from chalicelib.services import Services
from tests.integration.test_cli import AWS, run
from tests.integration.test_etcd_backup import job
from tests.integration.test_etcd_backup import services as services  # noqa: F401 (fixture)
from tests.support import etcd as etcd_helpers
from tests.support.etcd import EtcdProcess, etcd_bin, free_port, put_keys, start_etcd

pytestmark = pytest.mark.etcd
etcd_certs = etcd_helpers.etcd_certs
etcd_member = etcd_helpers.etcd_member


@pytest.fixture
def backup_id(services: Services, kubeconfig_path: Any, test_namespace: str, etcd_member: EtcdProcess) -> str:
    record = services.backup_service().run(job(kubeconfig_path, test_namespace, [etcd_member.client_url])).record
    assert record.state == "Completed", record.errors
    return record.backup_id


def test_the_runbook_restores_a_single_member(
    backup_id: str, etcd_member: EtcdProcess, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    certs = etcd_member.certs
    # The cluster to recover: a member whose data has moved on since the backup.
    peer_port, client_port = free_port(), free_port()
    data_dir = tmp_path / "member" / "data"
    data_dir.parent.mkdir()
    target = start_etcd(certs, data_dir, name="cp1", client_port=client_port, peer_port=peer_port)
    put_keys(target, 5, prefix="/registry/after-backup/")

    plan = tmp_path / "plan"
    members = f"cp1=http://127.0.0.1:{peer_port}"
    code, summary = run(capsys, "etcd", "restore-plan", backup_id, "--members", members, "--to", str(plan),
                        "--output", "json", *AWS)
    assert code == EXIT_OK, summary
    script = plan / "restore-cp1.sh"
    assert summary["scripts"] == [str(script)] and (plan / "etcd.db").exists() and (plan / "README.md").exists()
    text = script.read_text()
    assert "--initial-cluster=cp1=http://127.0.0.1:" in text and "--initial-cluster-token=lifeboat-" in text

    pidfile = tmp_path / "etcd.pid"
    pid = target.process.pid
    start = " ".join(target.process.args)  # type: ignore[arg-type]
    env = {
        **os.environ,
        "SNAPSHOT": str(plan / "etcd.db"),
        "DATA_DIR": str(data_dir),
        "OWNER": f"{os.getuid()}:{os.getgid()}",
        "ETCDCTL": etcd_bin("etcdctl"),
        "ETCDUTL": etcd_bin("etcdutl"),
        "ENDPOINT": target.client_url,
        "CACERT": str(certs.ca),
        "CERT": str(certs.client_cert),
        "KEY": str(certs.client_key),
        "STOP_APISERVER": "true",
        "START_APISERVER": "true",
        # etcd is this test's child: once it exits it stays a zombie until waited for, so wait for that state.
        "STOP_ETCD": f"kill {pid}; while ps -o stat= -p {pid} | grep -qv Z; do sleep 0.2; done",
        "START_ETCD": f"{start} >> {tmp_path / 'restored.log'} 2>&1 & echo $! > {pidfile}",
    }
    try:
        done = subprocess.run(["bash", str(script), "all"], env=env, capture_output=True, text=True, timeout=120)
        target.process.wait(timeout=10)
        assert done.returncode == 0, done.stdout + done.stderr
        assert "3000 keys" in done.stdout
        restored = EtcdProcess("cp1", data_dir, target.client_url, target.peer_url, certs, target.process, target.log)
        assert restored.client().count_keys().count == 3000
        assert restored.etcdctl("get", "/registry/test/000042", "--print-value-only").startswith("value-42x")
        assert restored.etcdctl("get", "/registry/after-backup/", "--prefix", "--count-only", "-w", "fields").count(
            '"Count" : 0'
        )
        assert (data_dir.parent / f"data.before-{backup_id}" / "member").is_dir()  # the old data is kept
    finally:
        if pidfile.exists():
            subprocess.run(["kill", pidfile.read_text().strip()], check=False)
        target.stop()


def test_verify_command_records_the_result(backup_id: str, services: Services, capsys: Any) -> None:
    code, result = run(capsys, "etcd", "verify", backup_id, "--output", "json", *AWS)
    assert code == EXIT_OK and result["ok"] and result["keys"] == 3000
    assert services.etcd_verifications().latest("selfmanaged").backup_id == backup_id
    assert run(capsys, "etcd", "verify", "20200101T000000Z-000000", *AWS)[0] == EXIT_ERROR
