"""``bench/floor.py list``: the listing a backup does, alone, against the Kubernetes API."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import orjson

from tests.support.resources import CM

ROOT = Path(__file__).resolve().parents[2]


def _floor(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "bench.floor", *args], cwd=ROOT, capture_output=True, text=True, timeout=120
    )


def _configmaps(client: Any) -> int:
    return sum(len(page.items) for page in client.list_pages("/api/v1/configmaps"))


def test_lists_every_object_of_the_namespaced_types_as_metadata_and_whole(kubeconfig_path, kube_client, test_namespace):
    for i in range(7):
        kube_client.create(
            CM, {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": f"c{i}", "namespace": test_namespace}}
        )

    results = {}
    for mode in ("metadata", "whole"):
        done = _floor("list", str(kubeconfig_path), mode, test_namespace)
        assert done.returncode == 0, done.stderr[-2000:]
        results[mode] = orjson.loads(done.stdout.strip().splitlines()[-1])

    # Cluster-wide, as a backup lists: at least every ConfigMap, a page of each type at least.
    assert min(r["objects"] for r in results.values()) >= _configmaps(kube_client) >= 7
    assert min(r["pages"] for r in results.values()) > 1
    assert results["metadata"]["metadata_pages"] == results["metadata"]["pages"]
    assert results["whole"]["metadata_pages"] == 0
    assert all(r["cpu_s"] > 0 and r["wall_s"] > 0 for r in results.values())


def test_an_unknown_mode_is_refused(kubeconfig_path, test_namespace):
    done = _floor("list", str(kubeconfig_path), "partial", test_namespace)
    assert done.returncode != 0
    assert "mode must be metadata or whole, not 'partial'" in done.stderr
