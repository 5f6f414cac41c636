"""A thousand clusters: the dispatcher's tick measured on moto with 1,000 hourly policies, and a simulation (no
AWS) of the dispatcher and workers over an hour to find what breaks first.

Measured (moto in process): 1,000 clusters registered, one hourly policy each, all due in the same minute; one
``Dispatcher.dispatch_due`` claims every due run. It reports the tick's wall time and its DynamoDB/SQS calls.
moto answers from the same process on a shared 2-core machine, so the wall time is that of this machine, not of AWS.

Simulated (a minute-by-minute model): the runs the dispatcher sends each minute go to backup workers of the
configured reserved concurrency; each run takes ``--run-s`` seconds. It reports DynamoDB items and request units
per minute, SQS messages per minute, peak Lambda concurrency against the reserved concurrencies in
.chalice/config.json, and the queue's backlog (the first limit reached).

  python -m bench.thousand [--clusters 1000] [--run-s 20] [--spread] [--json]
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent


def measure_tick(clusters: int) -> dict[str, Any]:
    for key in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN"):
        os.environ[key] = "testing"
    os.environ["AWS_DEFAULT_REGION"] = "us-east-1"
    import boto3
    from moto import mock_aws

    from bench.harness import counting
    from chalicelib.backup.queue import BackupWorkQueue
    from chalicelib.catalog import BackupCatalog
    from chalicelib.catalog.clusters import ClusterCatalog
    from chalicelib.catalog.policies import PolicyCatalog
    from chalicelib.catalog.schema import create_table
    from chalicelib.scheduling.dispatcher import Dispatcher
    from chalicelib.scheduling.policies import PolicyService

    class Clock:
        def __init__(self, now: datetime) -> None:
            self.now = now

        def __call__(self) -> datetime:
            return self.now

    with mock_aws():
        ddb = boto3.client("dynamodb", region_name="us-east-1")
        sqs = boto3.client("sqs", region_name="us-east-1")
        create_table(ddb, "lifeboat-bench")
        url = sqs.create_queue(QueueName="lifeboat-backup-jobs")["QueueUrl"]
        clock = Clock(datetime(2026, 1, 10, 0, 0, 10, tzinfo=UTC))
        policies = PolicyCatalog(ddb, "lifeboat-bench")
        cluster_catalog = ClusterCatalog(ddb, "lifeboat-bench")
        service = PolicyService(policies, cluster_catalog, clock=clock)
        auth = {"type": "eks", "cluster_name": "c", "region": "us-east-1"}
        t0 = time.perf_counter()
        docs = []
        for i in range(clusters):
            cluster_catalog.register(f"c{i:04d}", auth, kubernetes_version="v1.31.0", now=clock())
            docs.append(
                {
                    "name": f"hourly-{i:04d}",
                    "cluster": f"c{i:04d}",
                    "schedule": {"cron": "0 * * * *"},
                    "scope": {"include_namespaces": ["*"]},
                }
            )
        service.apply_document({"policies": docs})
        setup_s = time.perf_counter() - t0
        clock.now = datetime(2026, 1, 10, 1, 0, 5, tzinfo=UTC)
        dispatcher = Dispatcher(
            policies, BackupCatalog(ddb, "lifeboat-bench"), cluster_catalog, BackupWorkQueue(sqs, url), clock=clock
        )
        with counting() as calls:
            t0 = time.perf_counter()
            report = dispatcher.dispatch_due()
            tick_s = time.perf_counter() - t0
        clock.now += timedelta(minutes=1)
        t0 = time.perf_counter()
        idle = dispatcher.dispatch_due()
        idle_s = time.perf_counter() - t0
    return {
        "clusters": clusters,
        "setup_s": round(setup_s, 1),
        "tick_s": round(tick_s, 2),
        "tick_counts": report.counts(),
        "tick_calls": dict(sorted(calls.items())),
        "idle_tick_s": round(idle_s, 3),
        "idle_outcomes": len(idle.outcomes),
    }


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
        out["measured_tick"] = measure_tick(args.clusters)
    print(json.dumps(out, indent=None if args.json else 2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
