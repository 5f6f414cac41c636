"""Shared benchmark plumbing: servers in their own processes, timed work in child processes, peak memory."""

from __future__ import annotations

import os
import resource
import subprocess
import sys
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def peak_rss_mb() -> float:
    """Peak resident set size of this process, in MiB (ru_maxrss is KiB on Linux)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def rss_mb() -> float:
    """Current resident set size of this process, in MiB (Linux /proc), e.g. before the measured work starts."""
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def _wait_ready(proc: subprocess.Popen[str], marker: str, timeout: float = 60) -> str:
    deadline = time.monotonic() + timeout
    assert proc.stdout is not None
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        if not line:
            if proc.poll() is not None:
                raise RuntimeError(f"server exited with {proc.returncode} before it was ready")
            continue
        if line.startswith(marker):
            return line[len(marker) :].strip()
    raise RuntimeError("server did not become ready in time")


@dataclass
class Servers:
    kube_url: str
    kubeconfig: Path
    aws_endpoint: str
    token: str


@contextmanager
def servers(workdir: Path, *, moto_module: str = "moto.server") -> Iterator[Servers]:
    """The Kubernetes API test server and a moto server, each in its own process (no shared GIL with the client).

    ``moto_module`` runs another moto entry point (``bench.moto_serial``: one request at a time)."""
    import yaml

    from sandbox.environment import FAKE_CREDENTIALS, free_port, provision_aws

    os.environ.update(FAKE_CREDENTIALS)
    workdir.mkdir(parents=True, exist_ok=True)
    kubeconfig = workdir / "kubeconfig"
    kube = subprocess.Popen(
        [sys.executable, "-m", "sandbox.kubeapi", "--kubeconfig-out", str(kubeconfig)],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        text=True,
    )
    port = free_port()
    moto = subprocess.Popen(
        [sys.executable, "-m", moto_module, "-H", "127.0.0.1", "-p", str(port)],
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        url = _wait_ready(kube, "READY ")
        endpoint = f"http://127.0.0.1:{port}"
        _wait_http(endpoint)
        provision_aws(endpoint)
        token = yaml.safe_load(kubeconfig.read_text())["users"][0]["user"]["token"]
        yield Servers(url, kubeconfig, endpoint, token)
    finally:
        for proc in (kube, moto):
            proc.terminate()
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()


def _wait_http(url: str, timeout: float = 30) -> None:
    import urllib.request

    deadline = time.monotonic() + timeout
    while True:
        try:
            urllib.request.urlopen(url, timeout=2).read()
            return
        except Exception:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)


def kube_pool(srv: Servers) -> Any:
    import tempfile

    import urllib3
    import yaml

    config = yaml.safe_load(srv.kubeconfig.read_text())
    cluster = config["clusters"][0]["cluster"]
    import base64

    with tempfile.NamedTemporaryFile(delete=False, suffix=".pem") as ca:
        ca.write(base64.b64decode(cluster["certificate-authority-data"]))
    return urllib3.PoolManager(maxsize=16, ca_certs=ca.name, cert_reqs="CERT_REQUIRED")


def bulk_load(srv: Servers, objects: Iterable[dict[str, Any]], chunk: int = 2000) -> int:
    """Seed the test server through its test-only bulk endpoint."""
    pool = kube_pool(srv)
    batch: list[dict[str, Any]] = []
    total = 0

    def send() -> None:
        resp = pool.request(
            "POST",
            f"{srv.kube_url}/_lifeboat/bulk",
            body=orjson.dumps(batch),
            headers={"Authorization": f"Bearer {srv.token}", "Content-Type": "application/json"},
        )
        if resp.status >= 300:
            raise RuntimeError(f"bulk load failed: HTTP {resp.status}: {resp.data[:200]!r}")

    for obj in objects:
        batch.append(obj)
        if len(batch) >= chunk:
            send()
            total += len(batch)
            batch = []
    if batch:
        send()
        total += len(batch)
    return total


def run_child(module: str, *args: str) -> dict[str, Any]:
    """Run ``python -m module args`` and return the JSON object it prints last (its own timings and peak RSS)."""
    out = subprocess.run([sys.executable, "-m", module, *args], cwd=ROOT, check=True, capture_output=True, text=True)
    return orjson.loads(out.stdout.strip().splitlines()[-1])


def cold_import_ms(module: str = "app", runs: int = 5) -> float:
    """Best-of-N time to import ``module`` in a fresh interpreter."""
    code = f"import time; t = time.perf_counter(); import {module}; print((time.perf_counter() - t) * 1000)"
    times = []
    for _ in range(runs):
        out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, check=True, capture_output=True, text=True)
        times.append(float(out.stdout.strip()))
    return min(times)


def replace_objects(srv: Servers, objects: Iterable[dict[str, Any]]) -> int:
    """PUT changed ConfigMaps/Secrets back, as a user's edit would."""
    pool = kube_pool(srv)
    plural = {"ConfigMap": "configmaps", "Secret": "secrets"}
    headers = {"Authorization": f"Bearer {srv.token}", "Content-Type": "application/json"}
    count = 0
    for obj in objects:
        meta = obj["metadata"]
        path = f"/api/v1/namespaces/{meta['namespace']}/{plural[obj['kind']]}/{meta['name']}"
        resp = pool.request("PUT", srv.kube_url + path, body=orjson.dumps(obj), headers=headers)
        if resp.status >= 300:
            raise RuntimeError(f"PUT {path} failed: HTTP {resp.status}")
        count += 1
    return count
