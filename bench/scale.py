"""Scale benchmark: a backup of 100,000 objects in 200 namespaces, one-shot in one process vs sharded over worker
processes draining a shared queue, both in the same run against the same Kubernetes API test server and moto.

The workers behave like warm backup Lambdas (imports and clients loaded, nothing of the data): each handles one
message at a time through ``handle_message``, with a 15-minute budget per message. The queue they share is an
in-memory queue served by this process: moto's SQS spends ~20 ms of CPU per message received and deleted, on the
same two cores the workers need, which real SQS does not.

Prints a table and, last, one JSON line:
  sharded_speedup            one-shot wall time / sharded wall time (target >= 1.5 on a 2-core machine)
  cpus                       os.cpu_count()
  oneshot_objects_per_s      objects per second of the one-shot backup
  peak_rss_mb_per_worker     the largest peak RSS of any worker process (target <= 300)
  gc_seconds_per_10k_blobs   from bench/gc.py when present (run as a subprocess), else null
  same_root_tree             the sharded backup's root tree is the one-shot backup's (same objects, same trees)

With ``--oneshot`` it runs only a one-shot backup, of 300,000 objects unless ``--objects`` says otherwise
(ConfigMaps and Secrets of ~1 KiB, 5 % Deployments, in 200 namespaces), and prints:
  oneshot_300k_peak_rss_mb   peak RSS of the backup process: ru_maxrss of a fresh child process that runs only the
                             backup (the test server and moto are processes of their own); target <= 400
  oneshot_300k_objects_per_s objects per second of that backup
  oneshot_rss_before_mb      the child's RSS once warm, before the backup (imports and clients)
With ``--oneshot --noop`` it then runs a second one-shot backup of the unchanged cluster into the same repository, in
another fresh child process (the incremental: the parent's trees and the repository index loaded), and adds:
  noop_300k_peak_rss_mb      peak RSS of that incremental's process; target <= 400
  noop_300k_s                its wall time, and noop_vs_full (its wall time / the first backup's)

With ``--sweep`` it runs one-shot backups of 30,000, 100,000 and 300,000 objects (``--sizes`` to change them), each
on fresh servers in a fresh child process, and prints a JSON line per size and a summary (bench/scale_sweep.py).

With ``--kubeconfig PATH`` it uses that cluster instead of starting the test server: it creates its objects in
namespaces of its own (``lifeboat-bench-*``) with plain creates, and deletes them afterwards.
"""

from __future__ import annotations

import argparse
import os
import secrets
import subprocess
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import orjson  # noqa: E402

from bench.harness import ROOT, Servers, load_objects, run_child, servers  # noqa: E402
from bench.scale_tasks import STOP, job, serve_queues  # noqa: E402


def run_sharded(srv: Servers, workers: int, prefix: str, queues: Any, authkey: bytes, logs: Path) -> dict[str, Any]:
    manager, address = queues
    jobs, events = manager.jobs(), manager.events()
    command = [sys.executable, "-m", "bench.scale_tasks", "worker", str(srv.kubeconfig), srv.aws_endpoint, prefix]
    command += [f"{address[0]}:{address[1]}", authkey.hex()]
    procs = []
    for i in range(workers):
        with open(logs / f"{prefix.split('/')[0]}-worker-{i}.log", "w") as log:
            procs.append(subprocess.Popen(command, cwd=ROOT, stdout=subprocess.PIPE, stderr=log, text=True))
    try:
        for proc in procs:
            assert proc.stdout is not None
            line = proc.stdout.readline()
            if not line.startswith("READY"):
                raise RuntimeError(f"worker did not start: {line!r}")
        before = server_cpu()
        started = time.perf_counter()
        sharded_job = job(str(srv.kubeconfig), "sharded", f"sharded-{uuid.uuid4()}", True, srv.ns("bench-*"))
        jobs.put(orjson.dumps(sharded_job))
        event = orjson.loads(events.get(timeout=900))
        wall = time.perf_counter() - started
        servers_cpu = _delta(before, server_cpu())
    finally:
        for _ in procs:
            jobs.put(STOP)
    reports = []
    for proc in procs:
        out, _ = proc.communicate(timeout=120)
        reports.append(orjson.loads(out.strip().splitlines()[-1]))
    root = run_child("bench.scale_tasks", "root", srv.aws_endpoint, prefix, "sharded", event["backup_id"])
    cpu = {"workers": round(sum(r["cpu_s"] for r in reports), 2), **servers_cpu}
    return {"wall_s": wall, "state": event["status"], "workers": reports, "cpu_s": cpu, **root}


def server_cpu() -> dict[str, float]:
    """CPU seconds used so far by the moto and Kubernetes API servers (children of this process, Linux /proc)."""
    ticks = os.sysconf("SC_CLK_TCK")
    usage: dict[str, float] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            cmdline = (entry / "cmdline").read_bytes()
        except OSError:
            continue
        if int(stat[1]) != os.getpid():
            continue
        name = "moto" if b"moto" in cmdline else "kube" if b"sandbox.kubeapi" in cmdline else None
        if name:
            usage[name] = usage.get(name, 0.0) + (int(stat[11]) + int(stat[12])) / ticks
    return usage


def _delta(before: dict[str, float], after: dict[str, float]) -> dict[str, float]:
    return {k: round(after.get(k, 0.0) - before.get(k, 0.0), 2) for k in after}


def gc_benchmark() -> tuple[float | None, str]:
    script = ROOT / "bench" / "gc.py"
    if not script.exists():
        return None, "bench/gc.py not present"
    try:
        out = subprocess.run([sys.executable, str(script)], cwd=ROOT, check=True, capture_output=True, text=True)
        value = orjson.loads(out.stdout.strip().splitlines()[-1]).get("gc_seconds_per_10k_blobs")
        return value, "bench/gc.py"
    except (subprocess.CalledProcessError, orjson.JSONDecodeError, IndexError) as exc:
        return None, f"bench/gc.py failed: {exc}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--objects", type=int, default=None, help="default 100,000; 300,000 with --oneshot")
    parser.add_argument("--oneshot", action="store_true", help="only a one-shot backup: its peak RSS and speed")
    parser.add_argument("--sweep", action="store_true", help="one-shot backups of several sizes (see --sizes)")
    parser.add_argument("--sizes", default="30000,100000,300000", help="with --sweep: comma-separated object counts")
    parser.add_argument("--noop", action="store_true", help="with --oneshot: then an incremental of the same cluster")
    parser.add_argument("--kubeconfig", metavar="PATH", help="run against this cluster, not the test server")
    parser.add_argument("--namespaces", type=int, default=200)
    parser.add_argument("--workers", type=int, default=4)
    parser.add_argument("--runs", type=int, default=1, help="alternating one-shot/sharded runs; the best of each")
    parser.add_argument("--no-gc", action="store_true", help="do not run bench/gc.py")
    args = parser.parse_args()
    if args.objects is None:
        args.objects = 300_000 if args.oneshot else 100_000
    if args.sweep:
        from bench.scale_sweep import sweep

        sweep([int(size) for size in args.sizes.split(",")], args.namespaces, args.kubeconfig)
        return
    if args.oneshot:
        oneshot_only(args)
        return

    from rich.console import Console
    from rich.table import Table

    from sandbox.synthetic import synthetic_objects

    deployments = args.objects // 20
    per_kind = (args.objects - args.namespaces - deployments) // 2
    objects = synthetic_objects(
        namespaces=args.namespaces, configmaps=per_kind, secrets=per_kind, deployments=deployments, size_bytes=1024
    )
    authkey = secrets.token_bytes(16)
    oneshots, shardeds = [], []
    workdir = Path(tempfile.mkdtemp(prefix="lifeboat-bench-scale-"))
    # Several worker processes update one DynamoDB item (the remaining-shards counter) at once: moto must apply
    # each request atomically, as DynamoDB does.
    with servers(workdir, moto_module="bench.moto_serial", kubeconfig=args.kubeconfig) as srv:
        loaded = load_objects(srv, objects)
        queues = serve_queues(authkey)
        try:
            for run in range(args.runs):
                before = server_cpu()
                oneshots.append(
                    run_child(
                        "bench.scale_tasks",
                        "oneshot",
                        str(srv.kubeconfig),
                        srv.aws_endpoint,
                        f"scale-oneshot-{run}/lifeboat/v1/",
                        f"oneshot-{uuid.uuid4()}",
                        srv.ns("bench-*"),
                    )
                )
                oneshots[-1]["cpu_s"] = {"workers": oneshots[-1]["cpu_s"], **_delta(before, server_cpu())}
                oneshot_root = run_child(
                    "bench.scale_tasks",
                    "root",
                    srv.aws_endpoint,
                    f"scale-oneshot-{run}/lifeboat/v1/",
                    "oneshot",
                    oneshots[-1]["backup_id"],
                )
                oneshots[-1]["root_tree"] = oneshot_root["root_tree"]
                prefix = f"scale-sharded-{run}/lifeboat/v1/"
                shardeds.append(run_sharded(srv, args.workers, prefix, queues, authkey, workdir))
        finally:
            queues[0].shutdown()
    for result in oneshots + shardeds:
        assert result["state"] == "Completed", result
    oneshot = min(oneshots, key=lambda r: r["wall_s"])
    sharded = min(shardeds, key=lambda r: r["wall_s"])
    gc_value, gc_source = (None, "skipped") if args.no_gc else gc_benchmark()
    result = {
        "objects": loaded,
        "namespaces": args.namespaces,
        "cpus": os.cpu_count(),
        "workers": args.workers,
        "oneshot_s": round(oneshot["wall_s"], 3),
        "sharded_s": round(sharded["wall_s"], 3),
        "sharded_speedup": round(oneshot["wall_s"] / sharded["wall_s"], 3),
        "oneshot_objects_per_s": round(oneshot["counts"]["objects"] / oneshot["wall_s"]),
        "sharded_objects_per_s": round(sharded["counts"]["objects"] / sharded["wall_s"]),
        "peak_rss_mb_oneshot": round(oneshot["peak_rss_mb"], 1),
        "peak_rss_mb_per_worker": round(max(w["peak_rss_mb"] for r in shardeds for w in r["workers"]), 1),
        "shards": sum(w["handled"].get("shard", 0) for w in sharded["workers"]),
        "index_files": sharded["index_files"],
        "same_root_tree": all(s["root_tree"] == o["root_tree"] for s, o in zip(shardeds, oneshots, strict=True)),
        "gc_seconds_per_10k_blobs": gc_value,
    }
    table = Table(title=f"Scale benchmark ({loaded:,} objects, {args.namespaces} namespaces, {os.cpu_count()} CPUs)")
    table.add_column("measure")
    table.add_column("value", justify="right")
    for i, (o, s) in enumerate(zip(oneshots, shardeds, strict=True)):
        busy = ", ".join(f"{w['busy_s']:.1f}" for w in s["workers"])
        table.add_row(f"run {i + 1}: one-shot / sharded", f"{o['wall_s']:.2f} s / {s['wall_s']:.2f} s")
        table.add_row(f"run {i + 1}: worker busy seconds", busy)
        table.add_row(f"run {i + 1}: CPU s one-shot", ", ".join(f"{k} {v}" for k, v in o["cpu_s"].items()))
        table.add_row(f"run {i + 1}: CPU s sharded", ", ".join(f"{k} {v}" for k, v in s["cpu_s"].items()))
    table.add_row("gc_seconds_per_10k_blobs source", gc_source)
    for key, value in result.items():
        table.add_row(key, str(value))
    Console().print(table)
    print(orjson.dumps(result).decode())


@dataclass(frozen=True)
class OneShot:
    """A one-shot backup of a generated cluster on servers of its own, and optionally a no-op incremental after it."""

    loaded: int
    load_s: float
    run: dict[str, Any]
    noop: dict[str, Any] | None
    servers_cpu: dict[str, float]


def run_oneshot(objects: int, namespaces: int, kubeconfig: str | None, *, prefix: str, noop: bool) -> OneShot:
    """``objects`` ConfigMaps, Secrets and Deployments of ~1 KiB in ``namespaces`` namespaces, loaded into fresh
    servers, backed up one-shot in a fresh child process (then, with ``noop``, again into the same repository)."""
    from sandbox.synthetic import synthetic_objects

    deployments = objects // 20
    per_kind = (objects - namespaces - deployments) // 2
    generated = synthetic_objects(
        namespaces=namespaces, configmaps=per_kind, secrets=per_kind, deployments=deployments, size_bytes=1024
    )
    workdir = Path(tempfile.mkdtemp(prefix=f"lifeboat-bench-{prefix}-"))
    with servers(workdir, kubeconfig=kubeconfig) as srv:
        started = time.perf_counter()
        loaded = load_objects(srv, generated)
        load_s = time.perf_counter() - started

        def backup(name: str) -> dict[str, Any]:
            repository = f"scale-{prefix}/lifeboat/v1/"
            return run_child(
                "bench.scale_tasks", "oneshot", str(srv.kubeconfig), srv.aws_endpoint, repository,
                f"{name}-{uuid.uuid4()}", srv.ns("bench-*"),
            )  # fmt: skip

        before = server_cpu()
        run = backup(prefix)
        servers_cpu = _delta(before, server_cpu())
        second = backup("noop") if noop else None
    return OneShot(loaded, load_s, run, second, servers_cpu)


def oneshot_only(args: argparse.Namespace) -> None:
    """One one-shot backup of ``args.objects`` objects in ``args.namespaces`` namespaces, in a fresh process."""
    done = run_oneshot(args.objects, args.namespaces, args.kubeconfig, prefix="oneshot", noop=args.noop)
    loaded, load_s, run, noop, servers_cpu = done.loaded, done.load_s, done.run, done.noop, done.servers_cpu
    assert run["state"] == "Completed", run
    result = {
        "objects": loaded,
        "objects_backed_up": run["counts"]["objects"],
        "namespaces": args.namespaces,
        "cluster": "kubeconfig" if args.kubeconfig else "test server",
        "load_s": round(load_s, 1),
        "oneshot_s": round(run["wall_s"], 3),
        "oneshot_300k_peak_rss_mb": round(run["peak_rss_mb"], 1),
        "oneshot_300k_objects_per_s": round(run["counts"]["objects"] / run["wall_s"]),
        "oneshot_rss_before_mb": run["rss_before_mb"],
        "oneshot_cpu_s": run["cpu_s"],
        "servers_cpu_s": servers_cpu,
    }
    if noop is not None:
        assert noop["state"] == "Completed", noop
        result["noop_300k_peak_rss_mb"] = round(noop["peak_rss_mb"], 1)
        result["noop_300k_s"] = round(noop["wall_s"], 3)
        result["noop_vs_full"] = round(noop["wall_s"] / run["wall_s"], 3)
        result["noop_cpu_s"] = noop["cpu_s"]
        result["noop_reused"] = noop["stats"].get("objects_reused")
        result["noop_puts"] = noop["stats"].get("puts")
    print(orjson.dumps(result).decode())


if __name__ == "__main__":
    main()
