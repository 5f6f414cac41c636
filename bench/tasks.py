"""Work timed in a child process, so each measurement has its own peak RSS. Prints one JSON object."""

from __future__ import annotations

import os
import resource
import sys
import time
from pathlib import Path
from typing import Any

import orjson

from bench.harness import peak_rss_mb


def _cpu_since(usage: resource.struct_rusage) -> float:
    """This process's CPU seconds (user + sys) since ``usage`` (a ``resource.getrusage`` result)."""
    now = resource.getrusage(resource.RUSAGE_SELF)
    return (now.ru_utime - usage.ru_utime) + (now.ru_stime - usage.ru_stime)


RAW_PATHS = ("/api/v1/namespaces", "/api/v1/configmaps", "/api/v1/secrets", "/apis/apps/v1/deployments")


def raw_list(kubeconfig: str, owner: str = "", namespaces: str = "0") -> dict[str, object]:
    """The baseline: plain paged GETs (limit=500) of the same objects, JSON parsed, nothing else.

    With ``owner`` (a cluster given with --kubeconfig, where other objects live too) the types are listed in the
    benchmark's ``namespaces`` namespaces only (``<owner>bench-NNN``), through the project's client (any auth)."""
    if owner:
        return _raw_list_owned(kubeconfig, [f"{owner}bench-{i:03d}" for i in range(int(namespaces))])
    import base64
    import tempfile

    import urllib3
    import yaml

    config = yaml.safe_load(Path(kubeconfig).read_text())
    cluster, user = config["clusters"][0]["cluster"], config["users"][0]["user"]
    with tempfile.NamedTemporaryFile(suffix=".pem", delete=False) as ca:
        ca.write(base64.b64decode(cluster["certificate-authority-data"]))
    pool = urllib3.PoolManager(ca_certs=ca.name, cert_reqs="CERT_REQUIRED")
    headers = {"Authorization": f"Bearer {user['token']}", "Accept": "application/json"}
    started = time.perf_counter()
    objects = 0
    for path in RAW_PATHS:
        token = ""
        while True:
            fields = {"limit": "500", **({"continue": token} if token else {})}
            resp = pool.request("GET", cluster["server"] + path, fields=fields, headers=headers)
            doc = orjson.loads(resp.data)
            objects += len(doc["items"])
            token = doc["metadata"].get("continue") or ""
            if not token:
                break
    return {"wall_s": time.perf_counter() - started, "objects": objects, "peak_rss_mb": peak_rss_mb()}


def _raw_list_owned(kubeconfig: str, namespaces: list[str]) -> dict[str, object]:
    from chalicelib.kube import KubeClient

    client = KubeClient.from_kubeconfig(Path(kubeconfig).read_text())
    started = time.perf_counter()
    objects = 0
    for path in RAW_PATHS:
        paths = [path] if path == "/api/v1/namespaces" else [_in_namespace(path, ns) for ns in namespaces]
        for one in paths:
            for page in client.list_pages(one, limit=500):
                objects += len(page.items)
    return {"wall_s": time.perf_counter() - started, "objects": objects, "peak_rss_mb": peak_rss_mb()}


def _in_namespace(path: str, namespace: str) -> str:
    base, _, plural = path.rpartition("/")
    return f"{base}/namespaces/{namespace}/{plural}"


def raw_list_all_types(kubeconfig: str, namespaces: str = "bench-*") -> dict[str, object]:
    """The second baseline: plain paged GETs (limit=500, the backup's label selector) of every type the backup
    lists, one after the other, as discovery offers them; JSON parsed, nothing else. Of the cluster types, in the
    auto mode of a namespace scope, the backup lists the referring ones and those something kept names: of the
    benchmark's objects, the Deployments name their CRD (any type of a group might be a custom one), nothing
    else."""
    from chalicelib.backup.listing import select_resources
    from chalicelib.core.references import referring_first
    from chalicelib.core.restore_order import CRD_RESOURCE
    from chalicelib.core.scope import BackupScope
    from chalicelib.kube import KubeClient

    scope = BackupScope(include_namespaces=(namespaces,))
    client = KubeClient.from_kubeconfig(Path(kubeconfig).read_text())
    started = time.perf_counter()
    resources = client.discover()
    namespaced, cluster = select_resources(resources, scope)
    if scope.effective_cluster_scoped == "auto":
        cluster = referring_first(cluster)[0] + [r for r in cluster if r.group_resource == CRD_RESOURCE]
    types = [r for r in resources if r.group_resource == "namespaces"] + namespaced + cluster
    selector = scope.server_selector()
    objects = requests = 0
    for res in types:
        for page in client.list_pages(res.collection_path(), limit=500, label_selector=selector):
            objects += len(page.items)
            requests += 1
    return {
        "wall_s": time.perf_counter() - started,
        "objects": objects,
        "types": len(types),
        "requests": requests,
        "peak_rss_mb": peak_rss_mb(),
    }


def _count_requests(clients: list[object]) -> list[int]:
    """A counter of the HTTP requests these boto3 clients send (retries included)."""
    sent = [0]

    def count(**_: object) -> None:
        sent[0] += 1

    for client in clients:
        client.meta.events.register("before-send", count)  # type: ignore[attr-defined]
    return sent


AWS_LATENCY_ENV = "LIFEBOAT_BENCH_AWS_LATENCY_MS"


def _emulate_aws_latency(clients: list[object]) -> None:
    """With ``LIFEBOAT_BENCH_AWS_LATENCY_MS`` set, every request of these clients waits that long before it is
    sent, off the GIL, as a round trip to AWS would (moto on the same machine answers in a millisecond or two)."""
    latency_ms = float(os.environ.get(AWS_LATENCY_ENV) or 0)
    if latency_ms <= 0:
        return

    def wait(**_: object) -> None:
        time.sleep(latency_ms / 1000)

    for client in clients:
        client.meta.events.register("before-send", wait)  # type: ignore[attr-defined]


def backup(kubeconfig: str, endpoint: str, prefix: str, job_id: str, namespaces: str = "bench-*") -> dict[str, object]:
    from chalicelib.core.jobs import BackupJob, ClusterRef
    from chalicelib.core.scope import BackupScope
    from chalicelib.services import Services
    from chalicelib.settings import Settings
    from sandbox.environment import BUCKET, REGION, TABLE

    settings = Settings(table=TABLE, bucket=BUCKET, region=REGION, endpoint_url=endpoint, repository_prefix=prefix)
    services = Services(settings)
    job = BackupJob(
        job_id=job_id,
        cluster=ClusterRef(
            f"bench-{prefix.strip('/').replace('/', '-')}",
            {"type": "kubeconfig", "kubeconfig": Path(kubeconfig).read_text()},
        ),
        scope=BackupScope(include_namespaces=(namespaces,)),
    )
    service = services.backup_service()
    # Warm what a Lambda would have warm after its first invocation: imports and clients, not data.
    # (Cold start is measured apart, as cold_import_ms.)
    import kubernetes.client  # noqa: F401
    import zstandard  # noqa: F401

    import chalicelib.kube.client  # noqa: F401
    import chalicelib.repository.reader  # noqa: F401
    import chalicelib.repository.writer  # noqa: F401

    services.catalog()
    sent = _count_requests([services.client("s3"), services.client("dynamodb")])
    _emulate_aws_latency([services.client(name) for name in ("s3", "dynamodb", "events")])
    usage = resource.getrusage(resource.RUSAGE_SELF)
    started = time.perf_counter()
    record = service.run(job).record
    wall = time.perf_counter() - started
    return {
        "wall_s": wall,
        "cpu_s": _cpu_since(usage),
        "aws_requests": sent[0],
        "backup_id": record.backup_id,
        "cluster": record.cluster,
        "state": str(record.state),
        "counts": record.counts,
        "stats": record.stats,
        "errors": record.errors,
        "failure": record.failure,
        "peak_rss_mb": peak_rss_mb(),
    }


def backup_warm(
    kubeconfig: str, endpoint: str, prefix: str, job_id: str, namespaces: str = "bench-*"
) -> dict[str, object]:
    """``backup`` run twice in one process, the second measured: a warm function's next backup of the same
    repository, which starts from the index the first loaded (``RepositoryReader(reuse_loaded_index=True)``)."""
    backup(kubeconfig, endpoint, prefix, f"{job_id}-warming", namespaces)
    return backup(kubeconfig, endpoint, prefix, job_id, namespaces)


def _pool(kubeconfig: str) -> tuple[object, str, dict[str, str]]:
    import base64
    import tempfile

    import urllib3
    import yaml

    config = yaml.safe_load(Path(kubeconfig).read_text())
    cluster, user = config["clusters"][0]["cluster"], config["users"][0]["user"]
    with tempfile.NamedTemporaryFile(suffix=".pem", delete=False) as ca:
        ca.write(base64.b64decode(cluster["certificate-authority-data"]))
    pool = urllib3.PoolManager(maxsize=16, ca_certs=ca.name, cert_reqs="CERT_REQUIRED")
    headers = {"Authorization": f"Bearer {user['token']}", "Content-Type": "application/json"}
    return pool, cluster["server"], headers


def _poster(kubeconfig: str, owner: str) -> Any:
    """POST a JSON body to a path: plain urllib3 with the test server's token, or the project's client on a cluster
    given with --kubeconfig (``owner`` set), whatever its authentication."""
    if owner:
        from chalicelib.kube import KubeClient

        client = KubeClient.from_kubeconfig(Path(kubeconfig).read_text())
        return lambda path, body: client.request("POST", path, body=orjson.loads(body))
    pool, server, headers = _pool(kubeconfig)

    def post(path: str, body: bytes) -> None:
        resp = pool.request("POST", server + path, body=body, headers=headers)  # type: ignore[attr-defined]
        if resp.status != 201:
            raise RuntimeError(f"POST {path}: HTTP {resp.status}")

    return post


def raw_create(kubeconfig: str, prefix: str, owner: str = "") -> dict[str, object]:
    """The baseline: the same objects POSTed by 16 threads into fresh namespaces (namespaces first), named
    ``<owner><prefix>bench-NNN``."""
    from concurrent.futures import ThreadPoolExecutor

    from sandbox.synthetic import synthetic_objects

    prefix = owner + prefix
    post = _poster(kubeconfig, owner)
    objects = [dict(o) for o in synthetic_objects(namespaces=20, configmaps=4750, secrets=4750, deployments=500)]
    plural = {"ConfigMap": "configmaps", "Secret": "secrets"}

    def path(obj: dict) -> str:
        meta = obj["metadata"]
        if obj["kind"] == "Namespace":
            return "/api/v1/namespaces"
        ns = prefix + meta["namespace"]
        if obj["kind"] == "Deployment":
            return f"/apis/apps/v1/namespaces/{ns}/deployments"
        return f"/api/v1/namespaces/{ns}/{plural[obj['kind']]}"

    def body(obj: dict) -> bytes:
        meta = dict(obj["metadata"])
        if obj["kind"] == "Namespace":
            meta["name"] = prefix + meta["name"]
        else:
            meta["namespace"] = prefix + meta["namespace"]
        return orjson.dumps({**obj, "metadata": meta})

    def create(obj: dict) -> int:
        post(path(obj), body(obj))
        return 1

    namespaces = [o for o in objects if o["kind"] == "Namespace"]
    rest = [o for o in objects if o["kind"] != "Namespace"]
    usage = resource.getrusage(resource.RUSAGE_SELF)
    started = time.perf_counter()
    with ThreadPoolExecutor(16) as ex:
        created = sum(ex.map(create, namespaces)) + sum(ex.map(create, rest))
    wall = time.perf_counter() - started
    return {"wall_s": wall, "objects": created, "cpu_s": _cpu_since(usage), "peak_rss_mb": peak_rss_mb()}


def restore(
    kubeconfig: str,
    endpoint: str,
    prefix: str,
    cluster: str,
    backup_id: str,
    target_prefix: str,
    dry_run: str,
    owner: str = "",
) -> dict[str, object]:
    from chalicelib.core.restore_options import RestoreOptions
    from chalicelib.kube import KubeClient
    from chalicelib.repository import RepositoryReader
    from chalicelib.restore import RestoreService
    from chalicelib.services import Services
    from chalicelib.settings import Settings
    from sandbox.environment import BUCKET, REGION, TABLE

    services = Services(
        Settings(table=TABLE, bucket=BUCKET, region=REGION, endpoint_url=endpoint, repository_prefix=prefix)
    )
    reader = RepositoryReader(services.repository())
    client = KubeClient.from_kubeconfig(Path(kubeconfig).read_text())
    mapping = [f"{owner}bench-{i:03d}:{owner}{target_prefix}bench-{i:03d}" for i in range(20)]
    options = RestoreOptions.from_dict(
        {"namespace_mapping": mapping, "include_namespaces": [f"{owner}bench-*"], "dry_run": dry_run == "dry"}
    )
    service = RestoreService(reader, client, concurrency=16)
    usage = resource.getrusage(resource.RUSAGE_SELF)
    started = time.perf_counter()
    manifest = reader.load_manifest(cluster, backup_id)
    result = service.run(manifest, options)
    wall = time.perf_counter() - started
    return {
        "wall_s": wall,
        "cpu_s": _cpu_since(usage),
        "state": str(result.state),
        "counts": result.counts(),
        "failures": len(result.failures),
        "peak_rss_mb": peak_rss_mb(),
    }


if __name__ == "__main__":
    command, *args = sys.argv[1:]
    tasks = {
        "rawlist": raw_list,
        "rawlistall": raw_list_all_types,
        "backup": backup,
        "backupwarm": backup_warm,
        "rawcreate": raw_create,
        "restore": restore,
    }
    result = tasks[command](*args)
    sys.stdout.write(orjson.dumps(result).decode() + "\n")
