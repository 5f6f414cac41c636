"""The CLI's findings of issue 10: the dry-run table, one-sentence errors, and exit codes scripts can trust."""

from __future__ import annotations

import json
import uuid
from pathlib import Path
from typing import Any

import pytest

from chalicelib.cli.main import main
from chalicelib.cli.output import EXIT_ERROR, EXIT_OK, EXIT_USAGE
from tests.conftest import TEST_BUCKET, TEST_TABLE

AWS = ["--table", TEST_TABLE, "--bucket", TEST_BUCKET, "--region", "us-east-1"]


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    capsys.readouterr()
    code = main(list(argv))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


@pytest.fixture
def backup_id(
    capsys: Any, bucket: str, table: str, kubeconfig_path: Path, kube_client: Any, test_namespace: str
) -> str:
    from chalicelib.core.resources import Resource

    cm = Resource("", "v1", "ConfigMap", "configmaps", True, frozenset({"create"}))
    for name in ("alpha-config", "beta-config"):
        body = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name}, "data": {"k": "v"}}
        kube_client.create(cm, body, namespace=test_namespace)
    code, out, err = run(
        capsys, "backup", *AWS, "--kubeconfig", str(kubeconfig_path), "--cluster", "cli-errors",
        "--include-namespaces", test_namespace, "--output", "json",
    )  # fmt: skip
    assert code == EXIT_OK, err
    return str(json.loads(out)["backup_id"])


def one_sentence(err: str) -> str:
    lines = [line for line in err.strip().splitlines() if line.strip()]
    assert len(lines) == 1, err
    assert "object at 0x" not in err and "Error:" not in err.replace("error:", ""), err
    return lines[0]


def test_dry_run_table_lists_every_planned_object(
    capsys: Any, backup_id: str, kubeconfig_path: Path, test_namespace: str
) -> None:
    code, out, err = run(
        capsys, "restore", backup_id, *AWS, "--kubeconfig", str(kubeconfig_path), "--dry-run",
        "--namespace-mapping", f"{test_namespace}:{test_namespace}-r",
    )  # fmt: skip
    assert code == EXIT_OK, err
    assert "alpha-config" in out and "beta-config" in out, out
    assert f"{test_namespace}-r" in out and "create" in out


def test_unknown_backup_names_the_backup_and_the_repository(capsys: Any, backup_id: str) -> None:
    missing = f"nope-{uuid.uuid4().hex[:6]}"
    code, _, err = run(capsys, "restore", missing, *AWS, "--dry-run")
    assert code == EXIT_ERROR
    line = one_sentence(err)
    assert missing in line and f"s3://{TEST_BUCKET}/" in line


def test_backup_without_a_kubeconfig_names_the_file(capsys: Any, bucket: str, table: str, tmp_path: Path) -> None:
    path = tmp_path / "no-such-kubeconfig"
    code, _, err = run(capsys, "backup", *AWS, "--kubeconfig", str(path), "--cluster", "c")
    assert code == EXIT_ERROR
    line = one_sentence(err)
    assert str(path.name) in line and "kubeconfig" in line and "FileNotFoundError" not in line


@pytest.mark.parametrize(
    "argv",
    [
        pytest.param(["restore", "any-backup", "--namespace-mapping", "no-colon", "--dry-run"], id="bad-mapping"),
        pytest.param(["backup", "--selector", "app in (", "--cluster", "c"], id="bad-selector"),
    ],
)
def test_validation_errors_are_usage_errors(
    capsys: Any, bucket: str, table: str, kubeconfig_path: Path, argv: list[str]
) -> None:
    code, _, err = run(capsys, *argv, *AWS, "--kubeconfig", str(kubeconfig_path))
    assert code == EXIT_USAGE, err
    one_sentence(err)


def test_listing_backups_of_a_missing_bucket_fails(capsys: Any, table: str) -> None:
    code, _, err = run(
        capsys, "backups", "list", "--table", TEST_TABLE, "--bucket", "no-such-bucket", "--region", "us-east-1"
    )
    assert code == EXIT_ERROR
    assert "no-such-bucket" in one_sentence(err)
