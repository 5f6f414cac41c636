"""Work timed in a child process, so each measurement has its own peak RSS. Prints one JSON object."""

from __future__ import annotations

import sys
import time
from pathlib import Path

import orjson

from bench.harness import peak_rss_mb

RAW_PATHS = ("/api/v1/namespaces", "/api/v1/configmaps", "/api/v1/secrets", "/apis/apps/v1/deployments")


def raw_list(kubeconfig: str) -> dict[str, object]:
    """The baseline: plain paged GETs (limit=500) of the same objects, JSON parsed, nothing else."""
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


def backup(kubeconfig: str, endpoint: str, prefix: str, job_id: str) -> dict[str, object]:
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
        scope=BackupScope(include_namespaces=("bench-*",)),
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
    services.client("s3")
    started = time.perf_counter()
    record = service.run(job).record
    wall = time.perf_counter() - started
    return {
        "wall_s": wall,
        "state": str(record.state),
        "counts": record.counts,
        "stats": record.stats,
        "errors": record.errors,
        "failure": record.failure,
        "peak_rss_mb": peak_rss_mb(),
    }


if __name__ == "__main__":
    command, *args = sys.argv[1:]
    result = {"rawlist": raw_list, "backup": backup}[command](*args)
    sys.stdout.write(orjson.dumps(result).decode() + "\n")
