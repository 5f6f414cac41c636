"""Velero's verbs on the lifeboat command: backup, schedule and restore, against a registered cluster."""

from __future__ import annotations

import json
import subprocess
import sys
import tarfile
from pathlib import Path
from typing import Any

import pytest
import yaml

from chalicelib.cli.main import main
from chalicelib.cli.output import EXIT_ERROR, EXIT_OK, EXIT_USAGE, set_data_format
from chalicelib.cli.schedule_cmd import ttl_keep_last
from chalicelib.cli.velero import normalize_argv
from tests.integration.test_cli import AWS, run
from tests.support.api import register_test_cluster


@pytest.fixture(autouse=True)
def _json_output() -> Any:
    yield
    set_data_format("json")  # the format is process-wide: a yaml test must not leak into the next one


@pytest.fixture
def registered(services: Any, kubeconfig_path: Path) -> str:
    return register_test_cluster(services, kubeconfig_path.read_text(), "velero")


@pytest.fixture
def app_namespace(kube_client: Any, test_namespace: str) -> str:
    from chalicelib.core.resources import Resource

    cm = Resource("", "v1", "ConfigMap", "configmaps", True, frozenset({"create"}))
    for name in ("web-config", "db-config"):
        body = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name}, "data": {"off": "NO"}}
        kube_client.create(cm, body, namespace=test_namespace)
    return test_namespace


def test_the_older_spellings_still_mean_create() -> None:
    assert normalize_argv(["backup", "--kubeconfig", "k"]) == ["backup", "create", "--kubeconfig", "k"]
    assert normalize_argv(["backup"]) == ["backup", "create"]
    assert normalize_argv(["backup", "get"]) == ["backup", "get"]
    assert normalize_argv(["restore", "b-1", "--dry-run"]) == ["restore", "create", "b-1", "--dry-run"]
    assert normalize_argv(["restore", "describe", "r-1"]) == ["restore", "describe", "r-1"]
    assert normalize_argv(["backups", "list"]) == ["backups", "list"]


def test_ttl_maps_to_the_number_of_runs_it_covers() -> None:
    from datetime import UTC, datetime

    now = datetime(2026, 1, 1, 0, 30, tzinfo=UTC)
    assert ttl_keep_last("0 * * * *", "UTC", 720 * 3600, now=now) == 720
    assert ttl_keep_last("0 3 * * *", "UTC", 720 * 3600, now=now) == 30
    assert ttl_keep_last("0 3 * * *", "UTC", 3600, now=now) == 1  # shorter than one period still keeps the newest


def test_a_bad_ttl_or_mapping_is_a_usage_error(capsys: pytest.CaptureFixture[str], table: str) -> None:
    with pytest.raises(SystemExit) as exited:
        main(["schedule", "create", "s", "--schedule", "0 * * * *", "--cluster", "c", "--ttl", "30 days", *AWS])
    assert exited.value.code == EXIT_USAGE
    assert "720h" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exited:
        main(["restore", "create", "b", "--namespace-mappings", "a:b,c", *AWS])
    assert exited.value.code == EXIT_USAGE
    assert "FROM:TO" in capsys.readouterr().err


def test_backup_create_reaches_a_registered_cluster_without_a_kubeconfig(
    capsys: pytest.CaptureFixture[str], bucket: str, registered: str, app_namespace: str, tmp_path: Path
) -> None:
    code, record = run(
        capsys, "backup", "create", *AWS, "--cluster", registered, "--include-namespaces", app_namespace, "-o", "json"
    )
    assert code == EXIT_OK, record
    assert record["cluster"] == registered and record["counts"]["objects"] >= 2
    backup_id = record["backup_id"]

    code, listed = run(capsys, "backup", "get", *AWS, "-o", "json")
    assert code == EXIT_OK and [r["backup_id"] for r in listed] == [backup_id]
    code, text = run(capsys, "backup", "get", backup_id, *AWS, "-o", "yaml")
    assert code == EXIT_OK
    assert yaml.safe_load(text)[0]["backup_id"] == backup_id

    code, described = run(capsys, "backup", "describe", backup_id, "--details", *AWS, "-o", "json")
    assert code == EXIT_OK
    assert {"kind": "ConfigMap", "namespace": app_namespace, "name": "db-config"} in described["objects"]

    code, logs = run(capsys, "backup", "logs", backup_id, *AWS, "-o", "json")
    assert code == EXIT_OK and logs["state"] == "Completed" and logs["entries"] == []

    archive = tmp_path / "data.tar.gz"
    code, downloaded = run(capsys, "backup", "download", backup_id, *AWS, "--to", str(archive), "-o", "json")
    assert code == EXIT_OK and downloaded["objects"] == record["counts"]["objects"]
    with tarfile.open(archive) as tar:
        names = [m.name for m in tar.getmembers() if m.isfile()]
        config = next(n for n in names if "web-config" in n)
        loaded = yaml.safe_load(tar.extractfile(config).read())  # type: ignore[union-attr]
    assert loaded["metadata"]["name"] == "web-config" and loaded["data"] == {"off": "NO"}
    assert not list(tmp_path.glob("*.partial"))


def test_backup_delete_expires_it_and_asks_for_confirmation(
    capsys: pytest.CaptureFixture[str], services: Any, registered: str, app_namespace: str
) -> None:
    code, record = run(capsys, "backup", *AWS, "--cluster", registered, "--include-namespaces", app_namespace)
    assert code == EXIT_OK
    backup_id = services.catalog().list(registered)[0][0].backup_id

    # Not on a terminal and no --confirm: nothing is deleted.
    code = main(["backup", "delete", backup_id, *AWS])
    assert code == EXIT_ERROR
    assert "--confirm" in capsys.readouterr().err
    assert str(services.catalog().find(backup_id).state) == "Completed"

    code, out = run(capsys, "backup", "delete", backup_id, "--confirm", *AWS, "-o", "json")
    assert code == EXIT_OK and out["outcome"] == "expired"
    assert str(services.catalog().find(backup_id).state) == "Expired"
    from chalicelib.repository.repo import Repository

    with pytest.raises(Exception, match="no such key"):
        services.repository().store.get(Repository.manifest_key(registered, backup_id))

    # A second delete says why it does nothing.
    code, out = run(capsys, "backup", "delete", backup_id, "--confirm", *AWS, "-o", "json")
    assert code == EXIT_ERROR and "Expired" in out["outcome"]


def test_schedule_create_pause_unpause_and_delete(
    capsys: pytest.CaptureFixture[str], bucket: str, registered: str, app_namespace: str
) -> None:
    code, applied = run(
        capsys,
        "schedule",
        "create",
        "nightly",
        "--schedule",
        "0 3 * * *",
        "--cluster",
        registered,
        "--include-namespaces",
        app_namespace,
        "--ttl",
        "720h",
        *AWS,
        "-o",
        "json",
    )
    assert code == EXIT_OK and applied[0]["name"] == "nightly" and applied[0]["next_run_at"]

    code, described = run(capsys, "schedule", "describe", "nightly", *AWS, "-o", "json")
    assert code == EXIT_OK
    text = json.dumps(described)
    assert '"keep_last": 30' in text and app_namespace in text

    code, paused = run(capsys, "schedule", "pause", "nightly", *AWS, "-o", "json")
    assert code == EXIT_OK and not paused[0]["next_run_at"]
    code, listed = run(capsys, "schedule", "get", *AWS, "-o", "json")
    assert code == EXIT_OK and '"enabled": false' in json.dumps(listed)
    assert main(["schedule", "pause", "nightly", *AWS]) == EXIT_ERROR  # already paused, and it says so
    assert "already paused" in capsys.readouterr().err

    code, resumed = run(capsys, "schedule", "unpause", "nightly", *AWS, "-o", "json")
    assert code == EXIT_OK and resumed[0]["next_run_at"]

    # A backup now with the schedule's scope, and a restore from the schedule's newest backup.
    code, record = run(capsys, "backup", "create", "--from-schedule", "nightly", *AWS, "-o", "json")
    assert code == EXIT_OK, record
    assert record["policy"] == "nightly" and record["cluster"] == registered

    code, deleted = run(capsys, "schedule", "delete", "nightly", *AWS, "-o", "json")
    assert code == EXIT_OK and deleted["deleted"] == "nightly"


def test_restore_create_from_a_schedule_is_recorded_and_listed(
    capsys: pytest.CaptureFixture[str],
    bucket: str,
    registered: str,
    app_namespace: str,
    kubeconfig_path: Path,
    kube_client: Any,
) -> None:
    run(capsys, "schedule", "create", "hourly", "--schedule", "0 * * * *", "--cluster", registered,
        "--include-namespaces", app_namespace, *AWS)  # fmt: skip
    code, record = run(capsys, "backup", "create", "--from-schedule", "hourly", "--wait", *AWS, "-o", "json")
    assert code == EXIT_OK

    target = f"{app_namespace}-copy"
    code, result = run(
        capsys,
        "restore",
        "create",
        "--from-schedule",
        "hourly",
        "--kubeconfig",
        str(kubeconfig_path),
        "--namespace-mappings",
        f"{app_namespace}:{target}",
        "--existing-resource-policy",
        "none",
        *AWS,
        "-o",
        "json",
    )
    try:
        assert code == EXIT_OK, result
        assert result["backup_id"] == record["backup_id"]
        assert kube_client.get(f"/api/v1/namespaces/{target}/configmaps/web-config")["data"] == {"off": "NO"}

        code, listed = run(capsys, "restore", "get", *AWS, "-o", "json")
        assert code == EXIT_OK
        mine = [r for r in listed if r["restore_id"] == result["restore_id"]]
        assert mine and mine[0]["state"] == "Completed" and mine[0]["backup_id"] == record["backup_id"]
        assert mine[0]["counts"].get("created", 0) >= 2
        code, described = run(capsys, "restore", "describe", result["restore_id"], *AWS, "-o", "json")
        assert code == EXIT_OK and described["options"]["namespace_mapping"] == {app_namespace: target}
        code, logs = run(capsys, "restore", "logs", result["restore_id"], *AWS, "-o", "json")
        assert code == EXIT_OK and logs["failures"] == [] and logs["failure"] is None
    finally:
        kube_client.delete_namespace(target)


def test_restore_create_names_its_backup_once(capsys: pytest.CaptureFixture[str], table: str) -> None:
    assert main(["restore", "create", *AWS]) == EXIT_ERROR
    assert "needs a backup" in capsys.readouterr().err
    assert main(["restore", "create", "b-1", "--from-schedule", "x", *AWS]) == EXIT_ERROR
    assert "name the backup once" in capsys.readouterr().err
    assert main(["restore", "create", "--from-schedule", "nope", *AWS]) == EXIT_ERROR
    assert "nope" in capsys.readouterr().err


@pytest.mark.parametrize("shell", ["bash", "zsh"])
def test_completion_scripts_know_the_verbs(shell: str) -> None:
    out = subprocess.run(
        [sys.executable, "-m", "chalicelib.cli.main", "completion", shell],
        capture_output=True,
        text=True,
        check=True,
        cwd=Path(__file__).resolve().parents[2],
    ).stdout
    for word in ("backup", "schedule", "restore", "unpause", "download", "--include-namespaces"):
        assert word in out
    if shell == "bash":
        syntax = subprocess.run(["bash", "-n"], input=out, capture_output=True, text=True)
        assert syntax.returncode == 0, syntax.stderr
