"""Child processes of the scale benchmark: a one-shot backup, or a backup worker draining the shared queue.

``oneshot KUBECONFIG ENDPOINT PREFIX JOB_ID`` prints one JSON object (wall time, record, peak RSS).
``worker KUBECONFIG ENDPOINT PREFIX QUEUE_ADDRESS AUTHKEY`` prints ``READY`` once warm, handles messages as the
backup Lambda does (a 15-minute budget each) until it receives ``STOP``, then prints one JSON object.
"""

from __future__ import annotations

import os
import sys
import time
from multiprocessing.managers import BaseManager
from pathlib import Path
from queue import Queue
from typing import Any

import orjson

from bench.harness import peak_rss_mb, rss_mb

STOP = b"STOP"
LAMBDA_BUDGET_S = 900
FINAL = frozenset({"Completed", "PartiallyFailed", "Failed"})


class QueueManager(BaseManager):
    """The benchmark's shared queues: ``jobs`` (messages for the workers) and ``events`` (backups that ended)."""


def serve_queues(authkey: bytes) -> tuple[QueueManager, tuple[str, int]]:
    jobs: Queue[bytes] = Queue()
    events: Queue[bytes] = Queue()
    QueueManager.register("jobs", callable=lambda: jobs)
    QueueManager.register("events", callable=lambda: events)
    manager = QueueManager(address=("127.0.0.1", 0), authkey=authkey)
    manager.start()
    return manager, manager.address  # type: ignore[return-value]


def connect_queues(address: str, authkey: bytes) -> tuple[Any, Any]:
    QueueManager.register("jobs")
    QueueManager.register("events")
    host, port = address.rsplit(":", 1)
    manager = QueueManager(address=(host, int(port)), authkey=authkey)
    manager.connect()
    return manager.jobs(), manager.events()  # type: ignore[attr-defined]


class SharedQueue:
    """The backup-jobs queue for workers in several processes (what SQS is to the backup Lambdas)."""

    def __init__(self, jobs: Any) -> None:
        self._jobs = jobs

    def send(self, message: dict[str, Any], *, delay_s: int = 0) -> None:
        if delay_s:
            time.sleep(min(delay_s, 1))  # retries are rare; a short pause keeps them apart without a timer
        self._jobs.put(orjson.dumps(message))

    def send_many(self, messages: Any) -> int:
        count = 0
        for message in messages:
            self._jobs.put(orjson.dumps(message))
            count += 1
        return count


def _services(endpoint: str, prefix: str, kubeconfig: str | None = None) -> Any:
    from chalicelib.core.jobs import ClusterRef
    from chalicelib.services import Services
    from chalicelib.settings import Settings
    from sandbox.environment import BUCKET, REGION, TABLE

    services = Services(
        Settings(table=TABLE, bucket=BUCKET, region=REGION, endpoint_url=endpoint, repository_prefix=prefix)
    )
    # Warm what a Lambda has warm after its first invocation: imports and clients, not data.
    for name in ("s3", "dynamodb"):
        services.client(name)
    services.catalog()
    if kubeconfig:
        auth = {"type": "kubeconfig", "kubeconfig": Path(kubeconfig).read_text()}
        services.connect(ClusterRef("warm-up", auth)).close()
    return services


def job(kubeconfig: str, cluster: str, job_id: str, shard: bool, namespaces: str = "bench-*") -> dict[str, Any]:
    return {
        "job_id": job_id,
        "cluster": {"name": cluster, "auth": {"type": "kubeconfig", "kubeconfig": Path(kubeconfig).read_text()}},
        "scope": {"include_namespaces": [namespaces]},
        "shard": shard,
    }


def oneshot(kubeconfig: str, endpoint: str, prefix: str, job_id: str, namespaces: str = "bench-*") -> dict[str, Any]:
    from chalicelib.backup.worker import handle_message

    services = _services(endpoint, prefix, kubeconfig)
    service = services.backup_service()
    import chalicelib.repository  # noqa: F401  (warm)

    rss_before = rss_mb()
    started, cpu = time.perf_counter(), time.process_time()
    result = handle_message(service, job(kubeconfig, "oneshot", job_id, shard=False, namespaces=namespaces))
    wall, cpu = time.perf_counter() - started, time.process_time() - cpu
    record = services.catalog().get("oneshot", result["backup_id"])
    return {**_report(record, wall), "cpu_s": round(cpu, 3), "rss_before_mb": round(rss_before, 1)}


def traced(kubeconfig: str, endpoint: str, prefix: str, job_id: str, top: str = "25") -> dict[str, Any]:
    """``oneshot`` with tracemalloc: the heap's growth at its highest (sampled every 0.1 s, a snapshot whenever it
    grew by a tenth) and when the writer finishes, per allocating line."""
    import threading
    import tracemalloc

    from chalicelib.backup.worker import handle_message
    from chalicelib.repository.writer import RepositoryWriter

    services = _services(endpoint, prefix, kubeconfig)
    service = services.backup_service()
    tracemalloc.start(1)
    before = tracemalloc.take_snapshot()
    at_finish: list[Any] = []
    at_peak: list[Any] = []
    finish = RepositoryWriter.finish
    done = threading.Event()

    def snapshot_then_finish(self: RepositoryWriter) -> list[str]:
        at_finish.append(tracemalloc.take_snapshot())
        return finish(self)

    def watch() -> None:
        high = 0
        while not done.wait(0.1):
            current, _ = tracemalloc.get_traced_memory()
            if current > high * 1.1:
                high = current
                at_peak[:] = [tracemalloc.take_snapshot()]

    RepositoryWriter.finish = snapshot_then_finish  # type: ignore[method-assign]
    watcher = threading.Thread(target=watch, daemon=True)
    watcher.start()
    try:
        result = handle_message(service, job(kubeconfig, "oneshot", job_id, shard=False))
    finally:
        done.set()
        watcher.join()
        RepositoryWriter.finish = finish  # type: ignore[method-assign]
    _, peak = tracemalloc.get_traced_memory()

    def rows(snapshot: Any) -> tuple[int, list[dict[str, Any]]]:
        diff = snapshot.compare_to(before, "lineno")
        top_rows = [
            {"where": str(d.traceback[0]), "bytes": d.size_diff, "count": d.count_diff}
            for d in diff[: int(top)]
            if d.size_diff > 0
        ]
        return sum(d.size_diff for d in diff), top_rows

    growth, top_rows = rows(at_finish[0])
    peak_growth, peak_rows = rows(at_peak[0]) if at_peak else (0, [])
    return {
        "state": result.get("status"),
        "growth_bytes": growth,
        "top": top_rows,
        "traced_peak_bytes": peak,
        "peak_growth_bytes": peak_growth,
        "peak_top": peak_rows,
    }


def worker(kubeconfig: str, endpoint: str, prefix: str, address: str, authkey: str, *, ready: Any) -> dict[str, Any]:
    from chalicelib.backup.errors import RetryLater
    from chalicelib.backup.sharded.shard import time_budget
    from chalicelib.backup.worker import handle_message

    jobs, events = connect_queues(address, bytes.fromhex(authkey))
    services = _services(endpoint, prefix, kubeconfig)
    service = services.backup_service(queue=SharedQueue(jobs))
    import chalicelib.backup.sharded.join  # noqa: F401  (warm, as a Lambda that handled one of each)
    import chalicelib.backup.sharded.planner  # noqa: F401
    import chalicelib.repository  # noqa: F401

    ready.write("READY\n")
    ready.flush()
    handled: dict[str, int] = {}
    busy = 0.0
    cpu_at_start = time.process_time()
    while True:
        body = jobs.get()
        if body == STOP:
            break
        started = time.perf_counter()
        try:
            result = handle_message(service, body, remaining_ms=time_budget(LAMBDA_BUDGET_S))
        except RetryLater:
            jobs.put(body)
            continue
        busy += time.perf_counter() - started
        kind = orjson.loads(body).get("type", "job")
        handled[kind] = handled.get(kind, 0) + 1
        if result.get("status") in FINAL and kind != "shard" or result.get("status") == "Failed":
            events.put(orjson.dumps({"backup_id": result.get("backup_id"), "status": result["status"]}))
    cpu = time.process_time() - cpu_at_start
    return {"handled": handled, "busy_s": round(busy, 3), "cpu_s": round(cpu, 3), "peak_rss_mb": peak_rss_mb()}


def manifest_root(endpoint: str, prefix: str, cluster: str, backup_id: str) -> dict[str, Any]:
    from chalicelib.repository import RepositoryReader

    services = _services(endpoint, prefix)
    manifest = RepositoryReader(services.repository()).load_manifest(cluster, backup_id)
    return {"root_tree": manifest.root_tree, "counts": manifest.counts, "index_files": len(manifest.index_files)}


def _report(record: Any, wall: float) -> dict[str, Any]:
    return {
        "wall_s": wall,
        "backup_id": record.backup_id,
        "state": str(record.state),
        "counts": record.counts,
        "stats": record.stats,
        "failure": record.failure,
        "peak_rss_mb": peak_rss_mb(),
    }


def _protocol_stream() -> Any:
    """stdout for READY and the result only: logs written to stdout go to stderr instead, so a parent that reads
    stdout only at the start and the end can never block a worker on a full pipe."""
    stream = os.fdopen(os.dup(1), "w")
    os.dup2(2, 1)
    sys.stdout = sys.stderr
    return stream


if __name__ == "__main__":
    command, *args = sys.argv[1:]
    out = _protocol_stream() if command == "worker" else sys.stdout
    commands = {"oneshot": oneshot, "traced": traced, "worker": worker, "root": manifest_root}
    output = commands[command](*args) if command != "worker" else worker(*args, ready=out)
    out.write(orjson.dumps(output).decode() + "\n")
    out.flush()
