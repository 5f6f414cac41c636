"""The lifeboat command end to end: emulated AWS in process, the Kubernetes API over HTTP."""

from __future__ import annotations

import json
import uuid
from pathlib import Path
from typing import Any

import pytest
import yaml

from chalicelib.cli.main import main
from chalicelib.cli.output import EXIT_ERROR, EXIT_OK, EXIT_USAGE
from tests.conftest import TEST_BUCKET, TEST_TABLE

AWS = ["--table", TEST_TABLE, "--bucket", TEST_BUCKET, "--region", "us-east-1"]


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, Any]:
    capsys.readouterr()
    code = main(list(argv))
    out = capsys.readouterr().out
    try:
        return code, json.loads(out)
    except json.JSONDecodeError:
        return code, out


@pytest.fixture
def namespace(kube_client: Any, test_namespace: str) -> str:
    from chalicelib.core.resources import Resource

    cm = Resource("", "v1", "ConfigMap", "configmaps", True, frozenset({"create"}))
    secret = Resource("", "v1", "Secret", "secrets", True, frozenset({"create"}))
    kube_client.create(
        cm,
        {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "app-config"}, "data": {"mode": "blue"}},
        namespace=test_namespace,
    )
    kube_client.create(
        secret,
        {
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": {"name": "app-secret"},
            "stringData": {"password": "hunter2"},
        },
        namespace=test_namespace,
    )
    return test_namespace


def test_backup_list_describe_export_check_and_restore(
    capsys, bucket, table, kubeconfig_path, namespace, kube_client, tmp_path
):
    code, record = run(
        capsys,
        "backup",
        *AWS,
        "--kubeconfig",
        str(kubeconfig_path),
        "--cluster",
        "cli-test",
        "--include-namespaces",
        namespace,
        "--output",
        "json",
    )
    assert code == EXIT_OK, record
    assert record["state"] == "Completed" and record["counts"]["objects"] >= 3
    backup_id = record["backup_id"]

    code, listed = run(capsys, "backups", "list", *AWS, "--output", "json")
    assert code == EXIT_OK and [r["backup_id"] for r in listed] == [backup_id]

    code, described = run(capsys, "backups", "describe", backup_id, *AWS, "--output", "json")
    assert code == EXIT_OK
    assert described["namespaces"][namespace]["objects"] >= 2
    assert described["kinds"]["ConfigMap"] >= 1 and described["kinds"]["Secret"] >= 1

    code, logged = run(capsys, "backups", "logs", backup_id, *AWS, "--output", "json")
    assert code == EXIT_OK and logged["entries"] == []  # a clean backup records nothing and writes no log

    out_dir = tmp_path / "export"
    code, exported = run(capsys, "export", backup_id, *AWS, "--to", str(out_dir), "--output", "json")
    assert code == EXIT_OK and exported["objects"] >= 3
    doc = yaml.safe_load((out_dir / namespace / "configmap" / "app-config.yaml").read_text())
    assert doc["apiVersion"] == "v1" and doc["kind"] == "ConfigMap" and doc["data"] == {"mode": "blue"}
    assert "uid" not in doc["metadata"] and "resourceVersion" not in doc["metadata"]
    assert (out_dir / "Kustomization").exists() and (out_dir / namespace / "Kustomization").exists()

    gitops_dir = tmp_path / "gitops"
    args = ("export", backup_id, *AWS, "--to", str(gitops_dir), "--for", "gitops", "--output", "json")
    code, gitops = run(capsys, *args)
    assert code == EXIT_OK and gitops["skipped"] >= 1  # the Secret, left out by default
    assert not any("/secret/" in f for f in gitops["files"])

    code, check = run(capsys, "repo", "check", *AWS, "--output", "json")
    assert code == EXIT_OK and check["problems"] == [] and check["blobs"] >= 4

    target = f"{namespace}-r"
    code, plan = run(
        capsys,
        "restore",
        backup_id,
        *AWS,
        "--kubeconfig",
        str(kubeconfig_path),
        "--dry-run",
        "--namespace-mapping",
        f"{namespace}:{target}",
        "--output",
        "json",
    )
    assert code == EXIT_OK and plan["dry_run"] and plan["plan"]["counts"]["create"] >= 3
    from chalicelib.core.resources import Resource

    cm = Resource("", "v1", "ConfigMap", "configmaps", True, frozenset({"get"}))
    assert kube_client.get_object(cm, "app-config", target) is None, "a dry run creates nothing"

    try:
        code, result = run(
            capsys,
            "restore",
            backup_id,
            *AWS,
            "--kubeconfig",
            str(kubeconfig_path),
            "--namespace-mapping",
            f"{namespace}:{target}",
            "--output",
            "json",
        )
        assert code == EXIT_OK and result["state"] == "Completed", result
        restored = kube_client.get_object(cm, "app-config", target)
        assert restored is not None and restored["data"] == {"mode": "blue"}
    finally:
        kube_client.delete_namespace(target)


def test_unknown_backup_id_is_a_clear_error(capsys, bucket, table):
    code, out = run(capsys, "backups", "describe", f"nope-{uuid.uuid4().hex[:6]}", *AWS)
    assert code == EXIT_ERROR
    assert "nope-" in capsys.readouterr().err or code == EXIT_ERROR


def test_missing_table_is_a_usage_error(capsys, monkeypatch):
    monkeypatch.delenv("LIFEBOAT_TABLE", raising=False)
    monkeypatch.delenv("LIFEBOAT_BUCKET", raising=False)
    assert main(["backups", "list"]) == EXIT_USAGE
    assert "--table" in capsys.readouterr().err


def test_unreadable_kubeconfig_fails_with_exit_1(capsys, bucket, table, tmp_path: Path):
    bad = tmp_path / "kubeconfig"
    bad.write_text("clusters: [not: valid")
    code, _ = run(capsys, "backup", *AWS, "--kubeconfig", str(bad), "--cluster", "c", "--output", "json")
    assert code == EXIT_ERROR
