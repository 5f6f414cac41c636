"""The exported tree as kubectl takes it: ``kubectl kustomize`` builds it, and a real API server accepts it.

The server test runs only when a real cluster is configured (LIFEBOAT_TEST_KUBECONFIG), like the other real-cluster
tests; it applies with ``--dry-run=server``, so nothing changes on the cluster.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from chalicelib.core.resources import Resource
from chalicelib.repository import Repository, RepositoryReader, export_backup
from tests.conftest import REAL_KUBECONFIG
from tests.support.builders import write_backup

KUBECTL = shutil.which("kubectl")


def _export(repo: Repository, out: Path, namespace: str) -> Any:
    long_name = "cfg-" + "x" * 249  # 253 characters: the longest valid name
    objects = [
        (Resource("", "v1", "ConfigMap", "configmaps", True), _cm(long_name, namespace)),
        (Resource("", "v1", "ConfigMap", "configmaps", True), _cm("flags", namespace, enabled="y", level="off")),
        (
            Resource("rbac.authorization.k8s.io", "v1", "ClusterRole", "clusterroles", False),
            {
                "apiVersion": "rbac.authorization.k8s.io/v1",
                "kind": "ClusterRole",
                "metadata": {"name": "lifeboat-export-test:reader"},
                "rules": [],
            },
        ),
    ]
    written = write_backup(repo, objects, cluster="c", backup_id="20260101T000000Z-cccccc")
    assert written.manifest is not None
    return export_backup(RepositoryReader(repo), written.manifest, out)


def _cm(name: str, namespace: str, **data: str) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name, "namespace": namespace}, "data": data}


@pytest.mark.skipif(KUBECTL is None, reason="kubectl is not installed")
def test_kubectl_kustomize_builds_the_export(tmp_path: Path, repo: Repository) -> None:
    out = tmp_path / "out"
    report = _export(repo, out, "default")

    built = subprocess.run([KUBECTL or "", "kustomize", str(out)], capture_output=True, text=True, check=True)

    docs = list(yaml.safe_load_all(built.stdout))
    assert len(docs) == report.objects == 3
    flags = next(d for d in docs if d["metadata"]["name"] == "flags")
    assert flags["data"] == {"enabled": "y", "level": "off"}


@pytest.mark.skipif(not REAL_KUBECONFIG, reason="needs a real cluster (LIFEBOAT_TEST_KUBECONFIG)")
def test_a_real_api_server_accepts_the_export(tmp_path: Path, repo: Repository) -> None:
    out = tmp_path / "out"
    _export(repo, out, "default")
    base = [KUBECTL or "kubectl", "--kubeconfig", str(REAL_KUBECONFIG), "apply", "--dry-run=server"]

    for how in (["-R", "-f", str(out)], ["-k", str(out)]):
        done = subprocess.run([*base, *how], capture_output=True, text=True)
        assert done.returncode == 0, done.stderr
        assert done.stdout.count("(server dry run)") == 3
