"""The etcd runbook text: the tool and flags per etcd version, members, and what every script holds."""

from __future__ import annotations

import pytest

from chalicelib.core.etcd_runbook import (
    InvalidRunbook,
    RunbookFacts,
    initial_cluster,
    member_script,
    parse_members,
    readme,
    uses_etcdutl,
)

MEMBERS = parse_members("cp1=https://10.0.0.1:2380,cp2=https://10.0.0.2:2380,cp3=https://10.0.0.3:2380")


def facts(version: str, **options: str) -> RunbookFacts:
    return RunbookFacts("prod", "20261201T000000Z-abc123", version, 42, "ab" * 32, MEMBERS, "tok-1", **options)


def test_members() -> None:
    assert [m.name for m in MEMBERS] == ["cp1", "cp2", "cp3"]
    assert MEMBERS[1].client_url == "https://10.0.0.2:2379"
    assert initial_cluster(MEMBERS) == "cp1=https://10.0.0.1:2380,cp2=https://10.0.0.2:2380,cp3=https://10.0.0.3:2380"
    for bad in ("", "cp1", "cp1=10.0.0.1:2380", "cp1=https://a:1,cp1=https://b:1"):
        with pytest.raises(InvalidRunbook):
            parse_members(bad)


@pytest.mark.parametrize(("version", "etcdutl"), [("3.6.0", True), ("3.7.1", True), ("3.5.17", False), ("", True)])
def test_tool_by_version(version: str, etcdutl: bool) -> None:
    assert uses_etcdutl(version) is etcdutl


def test_etcd_36_restores_with_etcdutl_and_bumps_revisions() -> None:
    text = member_script(facts("3.6.1"), MEMBERS[1])
    assert '"$ETCDUTL" snapshot restore "$SNAPSHOT"' in text
    assert "BUMP_FLAGS=(--bump-revision 1000000000 --mark-compacted)" in text
    for flag in (
        "--name=cp2",
        "--initial-cluster=cp1=https://10.0.0.1:2380,cp2=",
        "--initial-cluster-token=tok-1",
        "--initial-advertise-peer-urls=https://10.0.0.2:2380",
    ):
        assert flag in text
    assert 'mv "$DATA_DIR" "$OLD_DIR"' in text and 'chown -R "$OWNER" "$DATA_DIR"' in text
    assert "EXPECTED_REVISION=42" in text and "sha256sum -c" in text


def test_etcd_35_restores_with_etcdctl_and_bumps_only_where_supported() -> None:
    text = member_script(facts("3.5.9"), MEMBERS[0])
    assert 'ETCDCTL_API=3 "$ETCDCTL" snapshot restore "$SNAPSHOT"' in text
    assert "grep -q -- --bump-revision" in text


def test_control_plane_commands() -> None:
    kubeadm = member_script(facts("3.6.1"), MEMBERS[0])
    assert "/etc/kubernetes/manifests/kube-apiserver.yaml" in kubeadm and "manifests/etcd.yaml" in kubeadm
    systemd = member_script(facts("3.6.1", control_plane="systemd"), MEMBERS[0])
    assert "systemctl stop kube-apiserver" in systemd and "systemctl start etcd" in systemd
    assert "restore-cp1.sh verify" in readme(facts("3.6.1"))
