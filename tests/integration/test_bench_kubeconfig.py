"""The benchmarks' --kubeconfig mode: the same measurement against a cluster they did not start, in namespaces of
their own that they remove afterwards (here a Kubernetes API test server started by the test stands in for it)."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest

from chalicelib.kube import KubeClient
from tests.support.resources import CM

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[tuple[Path, Any]]:
    from sandbox.kubeapi import KubeAPIServer

    server = KubeAPIServer()
    server.start()
    try:
        path = tmp_path / "kubeconfig"
        server.write_kubeconfig(path)
        yield path, KubeClient.from_kubeconfig(path.read_text())
    finally:
        server.stop()


def _namespaces(client: Any) -> set[str]:
    return {o["metadata"]["name"] for page in client.list_pages("/api/v1/namespaces") for o in page.items}


def test_scale_oneshot_runs_against_a_given_cluster_in_namespaces_it_owns_and_removes(cluster):
    path, client = cluster
    # Someone else's namespace that happens to match the test server's benchmark names: never touched.
    client.create_namespace("bench-000")
    client.create(CM, {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "keep", "namespace": "bench-000"}})
    before = _namespaces(client)

    out = subprocess.run(
        [sys.executable, "bench/scale.py", "--oneshot", "--objects", "60", "--namespaces", "3", "--kubeconfig",
         str(path)],
        cwd=ROOT, check=True, capture_output=True, text=True, timeout=300,
    )
    result = orjson.loads(out.stdout.strip().splitlines()[-1])

    assert result["cluster"] == "kubeconfig"
    assert result["objects"] == 60
    # The backup's scope is the benchmark's own namespaces: exactly what it created, nothing of bench-000.
    assert result["objects_backed_up"] == 60
    assert result["oneshot_300k_peak_rss_mb"] > 0 and result["oneshot_300k_objects_per_s"] > 0
    assert _namespaces(client) == before
    assert client.get_object(CM, "keep", "bench-000") is not None
