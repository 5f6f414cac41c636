"""Shared benchmark plumbing: servers in their own processes, timed work in child processes, peak memory."""

from __future__ import annotations

import collections
import os
import resource
import subprocess
import sys
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
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
    # Given with --kubeconfig: the benchmark runs against that cluster, in namespaces whose names start with this
    # prefix (it creates them and removes them afterwards). None: the Kubernetes API test server, started for it.
    owned_prefix: str | None = None
    created: set[str] = field(default_factory=set)  # namespaces the benchmark created there

    def ns(self, name: str) -> str:
        """The name the benchmark gives namespace ``name`` on this cluster."""
        return f"{self.owned_prefix}{name}" if self.owned_prefix else name


OWNED_PREFIX = "lifeboat-"  # bench-000 becomes lifeboat-bench-000 on a cluster given with --kubeconfig


@contextmanager
def servers(workdir: Path, *, moto_module: str = "moto.server", kubeconfig: str | None = None) -> Iterator[Servers]:
    """The Kubernetes API test server and a moto server, each in its own process (no shared GIL with the client).

    ``moto_module`` runs another moto entry point (``bench.moto_serial``: one request at a time). ``kubeconfig``
    names a cluster to use instead of the test server (only moto is started); every namespace the benchmark
    created there (``created_namespaces``) is deleted when the block ends."""
    from sandbox.environment import FAKE_CREDENTIALS

    os.environ.update(FAKE_CREDENTIALS)
    workdir.mkdir(parents=True, exist_ok=True)
    if kubeconfig is not None:
        with _moto(moto_module) as endpoint:
            url = _kubeconfig_server(Path(kubeconfig))
            srv = Servers(url, Path(kubeconfig), endpoint, "", owned_prefix=OWNED_PREFIX)
            try:
                yield srv
            finally:
                delete_namespaces(srv)
        return
    import yaml

    kubeconfig_path = workdir / "kubeconfig"
    kube = subprocess.Popen(
        [sys.executable, "-m", "sandbox.kubeapi", "--kubeconfig-out", str(kubeconfig_path)],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        url = _wait_ready(kube, "READY ")
        with _moto(moto_module) as endpoint:
            token = yaml.safe_load(kubeconfig_path.read_text())["users"][0]["user"]["token"]
            yield Servers(url, kubeconfig_path, endpoint, token)
    finally:
        _stop(kube)


@contextmanager
def _moto(module: str) -> Iterator[str]:
    from sandbox.environment import free_port, provision_aws

    port = free_port()
    moto = subprocess.Popen(
        [sys.executable, "-m", module, "-H", "127.0.0.1", "-p", str(port)],
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        endpoint = f"http://127.0.0.1:{port}"
        _wait_http(endpoint)
        provision_aws(endpoint)
        yield endpoint
    finally:
        _stop(moto)


def _stop(proc: subprocess.Popen[Any]) -> None:
    proc.terminate()
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        proc.kill()


def _kubeconfig_server(path: Path) -> str:
    import yaml

    config = yaml.safe_load(path.read_text())
    current = config.get("current-context")
    contexts = {c["name"]: c["context"] for c in config.get("contexts") or []}
    name = contexts[current]["cluster"] if current in contexts else config["clusters"][0]["name"]
    return str(next(c["cluster"]["server"] for c in config["clusters"] if c["name"] == name))


def _kube_client(srv: Servers) -> Any:
    from chalicelib.kube import KubeClient

    return KubeClient.from_kubeconfig(srv.kubeconfig.read_text())


def owned(srv: Servers, objects: Iterable[dict[str, Any]]) -> Iterator[dict[str, Any]]:
    """``objects`` with their namespaces (and Namespace objects) renamed to the ones the benchmark owns."""
    for obj in objects:
        if not srv.owned_prefix:
            yield obj
            continue
        meta = dict(obj["metadata"])
        if obj["kind"] == "Namespace":
            meta["name"] = srv.ns(meta["name"])
        elif meta.get("namespace"):
            meta["namespace"] = srv.ns(meta["namespace"])
        yield {**obj, "metadata": meta}


def create_objects(srv: Servers, objects: Iterable[dict[str, Any]], threads: int = 16) -> int:
    """Create ``objects`` (namespaces first) with plain POSTs, ``threads`` at a time: how a benchmark loads a cluster
    that has no bulk endpoint. Namespaces it creates are remembered for ``delete_namespaces``."""
    from concurrent.futures import ThreadPoolExecutor

    from chalicelib.core.resources import Resource

    kinds = {
        "Namespace": ("", "namespaces", False),
        "ConfigMap": ("", "configmaps", True),
        "Secret": ("", "secrets", True),
        "Deployment": ("apps", "deployments", True),
    }

    def resource_of(obj: dict[str, Any]) -> Resource:
        group, plural, namespaced = kinds[obj["kind"]]
        version = obj["apiVersion"].rpartition("/")[2]
        return Resource(group, version, obj["kind"], plural, namespaced, frozenset({"create", "list"}))

    client = _kube_client(srv)
    items = list(objects)
    namespaces = [o for o in items if o["kind"] == "Namespace"]
    rest = [o for o in items if o["kind"] != "Namespace"]

    def create(obj: dict[str, Any]) -> int:
        client.create(resource_of(obj), obj)
        return 1

    with ThreadPoolExecutor(threads) as pool:
        srv.created.update(ns["metadata"]["name"] for ns in namespaces)
        created = sum(pool.map(create, namespaces))
        created += sum(pool.map(create, rest))
    client.close()
    return created


def delete_namespaces(srv: Servers, timeout_s: float = 300) -> None:
    """Delete the namespaces the benchmark created, and wait until they are gone (their objects with them)."""
    from chalicelib.kube.errors import NotFound

    names = sorted(srv.created)
    if not names:
        return
    client = _kube_client(srv)
    try:
        for name in names:
            client.delete_namespace(name)

        def gone() -> bool:
            for name in names:
                try:
                    client.get(f"/api/v1/namespaces/{name}")
                except NotFound:
                    continue
                return False
            return True

        client.wait_for(gone, timeout_s, 1.0, what=f"deletion of {len(names)} benchmark namespaces")
    finally:
        client.close()
        srv.created.clear()


def load_objects(srv: Servers, objects: Iterable[dict[str, Any]]) -> int:
    """Seed the cluster: the test server's bulk endpoint, or plain creates in owned namespaces (``--kubeconfig``)."""
    if srv.owned_prefix:
        return create_objects(srv, owned(srv, objects))
    return bulk_load(srv, objects)


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
    if srv.owned_prefix:
        return _replace_owned(srv, owned(srv, objects))
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


def _replace_owned(srv: Servers, objects: Iterable[dict[str, Any]]) -> int:
    client = _kube_client(srv)
    plural = {"ConfigMap": "configmaps", "Secret": "secrets"}
    count = 0
    try:
        for obj in objects:
            meta = obj["metadata"]
            path = f"/api/v1/namespaces/{meta['namespace']}/{plural[obj['kind']]}/{meta['name']}"
            current = client.get(path)
            # A real API server wants the stored resourceVersion back on a replace.
            body = {**obj, "metadata": {**meta, "resourceVersion": current["metadata"]["resourceVersion"]}}
            client.request("PUT", path, body=body)
            count += 1
    finally:
        client.close()
    return count


@contextmanager
def counting() -> Iterator[collections.Counter[str]]:
    """Every AWS API call made inside, by ``service.Operation`` (a botocore before-call hook on every client)."""
    from botocore.client import BaseClient

    calls: collections.Counter[str] = collections.Counter()
    original = BaseClient._make_api_call

    def counted(self: Any, operation: str, params: Any) -> Any:
        calls[f"{self.meta.service_model.service_name}.{operation}"] += 1
        return original(self, operation, params)

    BaseClient._make_api_call = counted  # type: ignore[method-assign]
    try:
        yield calls
    finally:
        BaseClient._make_api_call = original  # type: ignore[method-assign]
