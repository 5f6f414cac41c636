"""A thousand clusters: the dispatcher's tick measured on moto with 1,000 hourly policies, and a simulation (no
AWS) of the dispatcher and workers over an hour to find what breaks first.

Measured: moto's server in processes of its own, over HTTP (as the product's clients talk to AWS); 1,000 clusters
registered, one hourly policy each, all due in the same minute; one ``Dispatcher.dispatch_due`` claims every due run,
with the Lambda's remaining time counting down from the dispatcher's timeout (.chalice/config.json) so the 15 s
reserve acts as it would in Lambda; then the next minute's tick claims what the first one left. The tick is measured
on two servers in the same run, from the same catalog (set up once, then copied item by item into the second one):

  flat moto    moto with its per-request costs made independent of the table's size (bench/moto_flat.py, patches
               applied only in that server process): TransactWriteItems snapshots only the items it touches for its
               rollback, and a key Query reads only its partition, as DynamoDB does. What is left is the dispatcher's
               own work and moto's ordinary per-request cost. These are the ``tick_<N>_*`` figures.
  stock moto   moto as released: each TransactWriteItems deep-copies the whole table for its rollback and each key
               Query sorts and scans the whole table, so on the 3,000 items of 1,000 policies a claim costs moto
               hundreds of milliseconds of CPU: the tick is quadratic in moto, not in the dispatcher. These are the
               ``stock_tick_<N>_*`` figures.

``request_ms`` and ``send_batch_ms`` are the baseline that shows the difference: the median latency of one
TransactWriteItems (a conditional Put), one key Query and one GetItem on each server, on an empty table and on a
table of 2,000 items, and of one SendMessageBatch of ten jobs into an empty queue and into one of 500 messages.
``client_cpu_s`` is the dispatcher's own CPU time in the tick (this process; moto runs in its own), and
``lambda_cpu_bound_s`` what that CPU alone takes on the dispatcher Lambda's share of a vCPU (its memory / 1,769 MB),
a lower bound on the tick's time there (the requests' waiting overlaps on the 16 threads, the CPU does not).

Simulated (a minute-by-minute model): the runs the dispatcher sends each minute go to backup workers of the
configured reserved concurrency; each run takes ``--run-s`` seconds. It reports DynamoDB items and request units
per minute, SQS messages per minute, peak Lambda concurrency against the reserved concurrencies in
.chalice/config.json, and the queue's backlog (the first limit reached).

  python -m bench.thousand [--clusters 1000] [--run-s 20] [--no-measure] [--json]
"""

from __future__ import annotations

import argparse
import json
import math
import os
import resource
import statistics
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

TABLE = "lifeboat-bench"
REGION = "us-east-1"
FLAT_MOTO = "bench.moto_flat"
STOCK_MOTO = "moto.server"


class Clock:
    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


def clients(endpoint: str) -> tuple[Any, Any]:
    """DynamoDB and SQS clients as the product builds them (services.py: 32 pooled connections)."""
    import boto3
    from botocore.config import Config

    config = Config(retries={"mode": "standard", "max_attempts": 3}, max_pool_connections=32)
    return tuple(  # type: ignore[return-value]
        boto3.client(service, region_name=REGION, endpoint_url=endpoint, config=config)
        for service in ("dynamodb", "sqs")
    )


@contextmanager
def moto_servers() -> Iterator[dict[str, str]]:
    """Both moto servers, each in its own process: {"flat": endpoint, "stock": endpoint}."""
    from bench.harness import _moto
    from sandbox.environment import FAKE_CREDENTIALS

    os.environ.update(FAKE_CREDENTIALS)
    with _moto(FLAT_MOTO) as flat, _moto(STOCK_MOTO) as stock:
        yield {"flat": flat, "stock": stock}


def request_ms(endpoint: str, items: int, samples: int = 15) -> dict[str, float]:
    """Median latency of one conditional-Put TransactWriteItems, key Query and GetItem on a table of ``items``."""
    from chalicelib.catalog.schema import create_table

    ddb, _ = clients(endpoint)
    name = f"lifeboat-probe-{items}"
    create_table(ddb, name)
    spec = {"M": {"cron": {"S": "0 * * * *"}, "scope": {"M": {"include_namespaces": {"L": [{"S": "*"}]}}}}}
    for first in range(0, items, 25):
        batch = [
            {"PutRequest": {"Item": {"pk": {"S": f"CLUSTER#c{i:05d}"}, "sk": {"S": "POLICY#p"}, "spec": spec}}}
            for i in range(first, min(items, first + 25))
        ]
        ddb.batch_write_item(RequestItems={name: batch})

    def transact(i: int) -> None:
        item = {"pk": {"S": "PROBE"}, "sk": {"S": f"RUN#{i}"}, "spec": spec}
        put = {"TableName": name, "Item": item, "ConditionExpression": "attribute_not_exists(pk)"}
        ddb.transact_write_items(TransactItems=[{"Put": put}])

    def query(i: int) -> None:
        ddb.query(
            TableName=name,
            KeyConditionExpression="pk = :pk AND begins_with(sk, :prefix)",
            ExpressionAttributeValues={":pk": {"S": f"CLUSTER#c{i:05d}"}, ":prefix": {"S": "BACKUP#"}},
            ConsistentRead=True,
        )

    def get(i: int) -> None:
        ddb.get_item(TableName=name, Key={"pk": {"S": f"CLUSTER#c{i:05d}"}, "sk": {"S": "POLICY#p"}})

    out = {}
    for operation, call in (("TransactWriteItems", transact), ("Query", query), ("GetItem", get)):
        times = []
        for i in range(samples):
            started = time.perf_counter()
            call(i)
            times.append(time.perf_counter() - started)
        out[operation] = round(statistics.median(times) * 1000, 1)
    ddb.delete_table(TableName=name)
    return out


def send_batch_ms(endpoint: str, queued: int, samples: int = 10) -> dict[str, float]:
    """Median latency of one SendMessageBatch of ten jobs into an empty queue and into one of ``queued`` messages."""
    _, sqs = clients(endpoint)
    url = sqs.create_queue(QueueName=f"lifeboat-probe-{queued}")["QueueUrl"]
    entries = [{"Id": str(i), "MessageBody": json.dumps({"job_id": f"probe-{i}", "pad": "x" * 600})} for i in range(10)]

    def median_ms() -> float:
        times = []
        for _ in range(samples):
            started = time.perf_counter()
            sqs.send_message_batch(QueueUrl=url, Entries=entries)
            times.append(time.perf_counter() - started)
        return round(statistics.median(times) * 1000, 1)

    empty = median_ms()
    for _ in range(queued // 10 - samples):
        sqs.send_message_batch(QueueUrl=url, Entries=entries)
    out = {"empty": empty, f"{queued}_queued": median_ms()}
    sqs.delete_queue(QueueUrl=url)
    return out


def set_up(endpoint: str, clusters: int, clock: Clock) -> float:
    """``clusters`` registered clusters with one hourly policy each, through the catalog (seconds taken)."""
    from chalicelib.catalog.clusters import ClusterCatalog
    from chalicelib.catalog.policies import PolicyCatalog
    from chalicelib.catalog.schema import create_table
    from chalicelib.scheduling.policies import PolicyService

    ddb, _ = clients(endpoint)
    create_table(ddb, TABLE)
    started = time.perf_counter()
    cluster_catalog = ClusterCatalog(ddb, TABLE)
    auth = {"type": "eks", "cluster_name": "c", "region": REGION}
    docs = []
    for i in range(clusters):
        cluster_catalog.register(f"c{i:04d}", auth, kubernetes_version="v1.31.0", now=clock())
        policy = {"name": f"hourly-{i:04d}", "cluster": f"c{i:04d}", "schedule": {"cron": "0 * * * *"}}
        docs.append(policy | {"scope": {"include_namespaces": ["*"]}})
    PolicyService(PolicyCatalog(ddb, TABLE), cluster_catalog, clock=clock).apply_document({"policies": docs})
    return time.perf_counter() - started


def copy_table(source: str, target: str) -> int:
    """Every item of the catalog table on ``source`` written into a new table on ``target`` (the same catalog)."""
    from chalicelib.catalog.schema import create_table

    src, _ = clients(source)
    dst, _ = clients(target)
    create_table(dst, TABLE)
    copied = 0
    for page in src.get_paginator("scan").paginate(TableName=TABLE):
        items = page["Items"]
        for first in range(0, len(items), 25):
            requests = [{"PutRequest": {"Item": item}} for item in items[first : first + 25]]
            while requests:
                left = dst.batch_write_item(RequestItems={TABLE: requests}).get("UnprocessedItems", {})
                requests = left.get(TABLE, [])
        copied += len(items)
    return copied


def tick(endpoint: str, timeout_s: int, *, next_tick: bool = False) -> dict[str, Any]:
    """One tick over every due run (the top of the hour), with the Lambda's remaining time counting down from
    ``timeout_s``; with ``next_tick``, then the tick of the minute after, and the jobs both sent."""
    from bench.harness import counting
    from chalicelib.backup.queue import BackupWorkQueue
    from chalicelib.catalog import BackupCatalog
    from chalicelib.catalog.clusters import ClusterCatalog
    from chalicelib.catalog.policies import PolicyCatalog
    from chalicelib.observability import logger
    from chalicelib.scheduling.dispatcher import Dispatcher

    logger().setLevel("WARNING")  # one line per run would bury the bench's output
    ddb, sqs = clients(endpoint)
    url = sqs.create_queue(QueueName="lifeboat-backup-jobs")["QueueUrl"]
    clock = Clock(datetime(2026, 1, 10, 1, 0, 5, tzinfo=UTC))
    started = 0.0

    def remaining_ms() -> int:
        return int((started + timeout_s - time.monotonic()) * 1000)

    catalog = (PolicyCatalog(ddb, TABLE), BackupCatalog(ddb, TABLE), ClusterCatalog(ddb, TABLE))
    dispatcher = Dispatcher(*catalog, BackupWorkQueue(sqs, url), clock=clock, remaining_ms=remaining_ms)
    with counting() as calls:
        cpu = _cpu_s()
        started = time.monotonic()
        report = dispatcher.dispatch_due()
        wall = time.monotonic() - started
        cpu = _cpu_s() - cpu
    counts = report.counts()
    queued = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["ApproximateNumberOfMessages"])["Attributes"]
    out: dict[str, Any] = {
        "s": round(wall, 2),
        # The dispatcher's own CPU (this process: moto runs in its own), and what it alone would take on the
        # dispatcher Lambda's share of a vCPU (its memory size / 1,769 MB), where the requests' waiting overlaps.
        "client_cpu_s": round(cpu, 2),
        "lambda_cpu_bound_s": round(cpu / lambda_vcpu(), 1),
        "requests": sum(calls.values()),
        "calls": dict(sorted(calls.items())),
        "claimed": counts.get("dispatched", 0),
        "left": counts.get("left", 0),
        "outcomes": counts,
        "jobs_queued": int(queued["ApproximateNumberOfMessages"]),
    }
    if next_tick:
        # The next minute's tick, on a fresh deadline: it claims what this one left, and nothing twice.
        clock.now += timedelta(minutes=1)
        started = time.monotonic()
        following = dispatcher.dispatch_due()
        out["next_s"] = round(time.monotonic() - started, 2)
        out["next_outcomes"] = following.counts()
        jobs = queued_jobs(sqs, url)
        out["jobs_sent"], out["jobs_distinct"] = len(jobs), len(set(jobs))
    return out


def _cpu_s() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def lambda_vcpu(function: str = "dispatcher") -> float:
    """The share of a vCPU Lambda gives ``function`` (one full vCPU at 1,769 MB, proportionally below)."""
    from chalicelib.core.capacity import FULL_VCPU_MB

    memory = json.loads((ROOT / ".chalice" / "config.json").read_text())["lambda_functions"][function]
    return min(1.0, memory["lambda_memory_size"] / FULL_VCPU_MB)


def queued_jobs(sqs: Any, url: str) -> list[str]:
    """The job id of every message in the queue (each received once: the visibility timeout outlasts the bench)."""
    ids = []
    while True:
        got = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10, VisibilityTimeout=900).get("Messages", [])
        if not got:
            return ids
        ids.extend(json.loads(m["Body"])["job_id"] for m in got)


def measure_tick(clusters: int) -> dict[str, Any]:
    """The tick on flat moto and on stock moto, from the same catalog, and the baseline latencies."""
    timeout_s = reserved()["dispatcher"][1]
    # The machine's load when the measurement started: a shared machine's other work slows both servers and client.
    out: dict[str, Any] = {"clusters": clusters, "tick_timeout_s": timeout_s, "loadavg_1m": os.getloadavg()[0]}
    out["dispatcher_vcpu"] = round(lambda_vcpu(), 3)
    with moto_servers() as endpoints:
        out["request_ms"] = {
            name: {"empty": request_ms(url, 0), "2000_items": request_ms(url, 2000)} for name, url in endpoints.items()
        }
        out["send_batch_ms"] = {name: send_batch_ms(url, 500) for name, url in endpoints.items()}
        clock = Clock(datetime(2026, 1, 10, 0, 0, 10, tzinfo=UTC))
        out["setup_s"] = round(set_up(endpoints["flat"], clusters, clock), 1)
        out["catalog_items"] = copy_table(endpoints["flat"], endpoints["stock"])
        for key, value in tick(endpoints["flat"], timeout_s, next_tick=True).items():
            out[f"tick_{clusters}_{key}"] = value
        for key, value in tick(endpoints["stock"], timeout_s).items():
            out[f"stock_tick_{clusters}_{key}"] = value
    return out


def reserved() -> dict[str, Any]:
    config = json.loads((ROOT / ".chalice" / "config.json").read_text())["lambda_functions"]
    return {name: (f.get("reserved_concurrency"), f.get("lambda_timeout")) for name, f in config.items()}


def simulate(clusters: int, run_s: float, spread: bool, per_run: dict[str, int]) -> dict[str, Any]:
    """Minute by minute over one hour: runs due each minute, workers limited to the reserved concurrency."""
    limits = reserved()
    workers = limits["backup_worker"][0] or 1000
    per_minute_capacity = workers * 60 / run_s
    due = [clusters / 60] * 60 if spread else [clusters] + [0] * 59
    backlog = 0.0
    peak_backlog = 0.0
    peak_concurrency = 0.0
    last_done_minute = 0
    for minute in range(60):
        backlog += due[minute]
        done = min(backlog, per_minute_capacity)
        backlog -= done
        peak_concurrency = max(peak_concurrency, min(workers, math.ceil(done * run_s / 60)))
        peak_backlog = max(peak_backlog, backlog)
        if done:
            last_done_minute = minute
    wanted = max(due) * run_s / 60  # concurrency needed to finish a minute's runs within that minute
    runs_per_minute_peak = max(due)
    return {
        "clusters": clusters,
        "run_s": run_s,
        "due": "spread over the hour" if spread else "all at minute 0",
        "backup_worker_reserved": workers,
        "peak_concurrency": int(peak_concurrency),
        "concurrency_wanted": math.ceil(wanted),
        "minutes_to_drain": last_done_minute + 1,
        "peak_queue_backlog": int(peak_backlog),
        "sqs_messages_per_minute_peak": int(runs_per_minute_peak * per_run["sqs"]),
        "ddb_writes_per_minute_peak": int(runs_per_minute_peak * per_run["ddb_write"]),
        "ddb_reads_per_minute_peak": int(runs_per_minute_peak * per_run["ddb_read"]),
        "ddb_items": clusters * (1 + 1 + per_run["retention"] + 24),  # cluster, policy, kept backups, run history
        "s3_puts_per_second_peak": round(runs_per_minute_peak * per_run["s3_put"] / 60, 1),
    }


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--clusters", type=int, default=1000)
    p.add_argument("--run-s", type=float, default=20.0, help="seconds one hourly incremental takes in a worker")
    p.add_argument("--no-measure", action="store_true", help="skip the moto tick")
    p.add_argument("--json", action="store_true")
    args = p.parse_args(argv)
    sys.path.insert(0, str(ROOT))
    from chalicelib.core.cost.model import ClusterShape, backup_requests

    run = backup_requests(ClusterShape(objects=10_000), 0.01)
    per_run = {
        "sqs": run.sqs,
        "ddb_write": run.ddb_write + 2,
        "ddb_read": run.ddb_read + 1,
        "s3_put": run.s3_put,
        "retention": 48,
    }  # plus the dispatcher's claim (2 writes) and due query share
    out: dict[str, Any] = {
        "reserved": reserved(),
        "simulated": [simulate(args.clusters, args.run_s, spread, per_run) for spread in (False, True)],
    }
    if not args.no_measure:
        out.update(measure_tick(args.clusters))
    print(json.dumps(out, indent=None if args.json else 2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
