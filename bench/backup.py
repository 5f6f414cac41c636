"""Backup benchmark: 10,000 objects in 20 namespaces on the Kubernetes API test server.

Prints a table and, last, one JSON line:
  full_vs_raw_list           full backup wall time / raw paged list of the same objects (same run; target <= 1.5)
  noop_incremental_puts      S3 PUTs of a backup of an unchanged cluster (target <= 2)
  noop_incremental_bytes_ratio  its bytes uploaded / the full backup's (target <= 0.01)
  changed_1pct_new_blobs     new blobs after changing 1 % of the ConfigMaps/Secrets ...
  changed_1pct_expected      ... which must equal the changed objects + their namespace trees + the root tree
  peak_rss_mb                peak RSS of the full backup process (target <= 300)
  cold_import_ms             import of app.py in a fresh interpreter (target <= 800)
  cpu_us_per_object_full     CPU time (user+sys) of the full backup process during the run / objects (target <= 20)
  cpu_us_per_object_noop     the same for the no-op incremental (target <= 8)
  noop_vs_full               no-op incremental wall time / full backup wall time (target <= 0.6)
  cpu_us_per_object_noop_warm  the no-op's CPU / objects when it is the second backup of a process (a warm function,
                             which reads only the index files written since its last load)
  noop_warm_s                that no-op's wall time
  empty_scope_s              wall time of a backup whose scope selects no namespace: the fixed overhead
  empty_scope_requests       its AWS requests (S3 + DynamoDB)
  raw_list_all_types_s       plain paged GETs of every type the backup lists (discovery included): the second baseline

What the backup's CPU is made of, each part measured alone (bench/floor.py), µs per object of the full backup:
  cpu_us_per_object_fixed    the empty-scope backup's CPU (claim, lease, index, manifest, catalog, events, discovery)
  cpu_us_per_object_list_metadata / _list_whole  listing the namespaced types as the backup does, pages dropped:
                             as metadata (a no-op) / whole (a full backup)
  cpu_us_per_object_stages_noop / _stages_full   the backup's per-object stages in one process, without HTTP
                             (bench/items_cpu.py)
  cpu_us_per_object_library_full  the library calls alone a new object cannot skip: sanitize, canonical JSON,
                             SHA-256, zstd on its frame
  cpu_us_per_object_noop_floor  fixed + list_metadata: no way of comparing the objects takes a no-op below it
  cpu_us_per_object_full_floor  fixed + list_whole + library_full: the same for a full backup
  full_cpu_per_wall          the full backup's CPU / its wall time: near 1, it runs on one core's worth of CPU
  full_vs_raw_list_floor     full_floor's CPU / the raw list's wall time: while full_cpu_per_wall is at most 1, the
                             lowest full_vs_raw_list this backup's work allows on this machine

``--kubeconfig PATH`` runs the same measurements against that cluster instead of the test server: the objects go
into namespaces of the benchmark's own (``lifeboat-bench-*``), created with plain creates and deleted afterwards.
``--aws-latency-ms MS`` makes every AWS request of the backups wait that long first, as a round trip to AWS would
(moto on the same machine answers in a millisecond or two): what overlapping the requests is worth.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import orjson  # noqa: E402

from bench.harness import cold_import_ms, load_objects, replace_objects, run_child, servers  # noqa: E402

RUNS = 3


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--kubeconfig", metavar="PATH", help="run against this cluster, not the test server")
    parser.add_argument("--aws-latency-ms", type=float, default=0, help="wait this long before each AWS request")
    args = parser.parse_args()
    if args.aws_latency_ms:
        from bench.tasks import AWS_LATENCY_ENV

        os.environ[AWS_LATENCY_ENV] = str(args.aws_latency_ms)  # the backups run in child processes

    from rich.console import Console
    from rich.table import Table

    from sandbox.synthetic import mutate_fraction, synthetic_objects

    objects = list(synthetic_objects(namespaces=20, configmaps=4750, secrets=4750, deployments=500, size_bytes=1024))
    with servers(Path(tempfile.mkdtemp(prefix="lifeboat-bench-")), kubeconfig=args.kubeconfig) as srv:
        load_objects(srv, objects)
        kubeconfig = str(srv.kubeconfig)
        owner, pattern = srv.owned_prefix or "", srv.ns("bench-*")
        raw = [run_child("bench.tasks", "rawlist", kubeconfig, owner, "20") for _ in range(RUNS)]
        raw_all = [run_child("bench.tasks", "rawlistall", kubeconfig, pattern) for _ in range(RUNS)]
        fulls = []
        for i in range(RUNS):
            prefix = f"bench-full-{i}/lifeboat/v1/"
            fulls.append(
                (
                    prefix,
                    run_child(
                        "bench.tasks", "backup", kubeconfig, srv.aws_endpoint, prefix, f"full-{uuid.uuid4()}", pattern
                    ),
                )
            )
        prefix, full = min(fulls, key=lambda pair: pair[1]["wall_s"])
        assert full["state"] == "Completed", full
        noops = [
            run_child("bench.tasks", "backup", kubeconfig, srv.aws_endpoint, prefix, f"noop-{uuid.uuid4()}", pattern)
            for _ in range(RUNS)
        ]
        noop = min(noops, key=lambda r: r["wall_s"])
        warm = min(
            (
                run_child(
                    "bench.tasks", "backupwarm", kubeconfig, srv.aws_endpoint, prefix, f"warm-{uuid.uuid4()}", pattern
                )
                for _ in range(RUNS)
            ),
            key=lambda r: r["wall_s"],
        )
        empties = [
            run_child("bench.tasks", "backup", kubeconfig, srv.aws_endpoint, prefix, f"empty-{uuid.uuid4()}", "none-*")
            for _ in range(RUNS)
        ]
        empty = min(empties, key=lambda r: r["wall_s"])
        # The parts a backup is made of, each alone (bench/floor.py): the listing, as a no-op and as a full backup.
        listing = {
            mode: min(run_child("bench.floor", "list", kubeconfig, mode, pattern)["cpu_s"] for _ in range(RUNS))
            for mode in ("metadata", "whole")
        }
        changed = mutate_fraction(objects, 0.01, seed=7)
        replace_objects(srv, changed)
        incr = run_child(
            "bench.tasks", "backup", kubeconfig, srv.aws_endpoint, prefix, f"incr-{uuid.uuid4()}", pattern
        )

    stages = run_child("bench.floor", "stages")
    raw_best = min(r["wall_s"] for r in raw)
    full_best = full["wall_s"]
    touched = {o["metadata"]["namespace"] for o in changed}
    objects = full["counts"]["objects"]
    result = {
        "objects": raw[0]["objects"],
        "raw_list_s": round(raw_best, 3),
        "full_backup_s": round(full_best, 3),
        "full_vs_raw_list": round(full_best / raw_best, 3),
        "noop_incremental_puts": noop["stats"].get("puts"),
        "noop_incremental_bytes_ratio": round(noop["stats"]["bytes_uploaded"] / full["stats"]["bytes_uploaded"], 5),
        "changed_1pct_new_blobs": incr["counts"]["blobs_new"],
        "changed_1pct_expected": len(changed) + len(touched) + 1,
        "peak_rss_mb": round(full["peak_rss_mb"], 1),
        "cold_import_ms": round(cold_import_ms("app"), 1),
        "cpu_us_per_object_full": round(full["cpu_s"] / objects * 1e6, 1),
        "cpu_us_per_object_noop": round(noop["cpu_s"] / objects * 1e6, 1),
        "noop_vs_full": round(noop["wall_s"] / full_best, 3),
        "noop_backup_s": round(noop["wall_s"], 3),
        "cpu_us_per_object_noop_warm": round(warm["cpu_s"] / objects * 1e6, 1),
        "noop_warm_s": round(warm["wall_s"], 3),
        "empty_scope_s": round(empty["wall_s"], 3),
        "empty_scope_requests": empty["aws_requests"],
        "raw_list_all_types_s": round(min(r["wall_s"] for r in raw_all), 3),
        "raw_list_all_types_requests": raw_all[0]["requests"],
    }
    per_object = 1e6 / objects
    parts = {
        "fixed": min(r["cpu_s"] for r in empties) * per_object,
        "list_metadata": listing["metadata"] * per_object,
        "list_whole": listing["whole"] * per_object,
        "stages_noop": stages["stages_noop"],
        "stages_full": stages["stages_full"],
        "library_full": stages["library_full"],
    }
    result.update({f"cpu_us_per_object_{name}": round(value, 1) for name, value in parts.items()})
    noop_floor = parts["fixed"] + parts["list_metadata"]
    full_floor = parts["fixed"] + parts["list_whole"] + parts["library_full"]
    result.update(
        {
            "cpu_us_per_object_noop_floor": round(noop_floor, 1),
            "cpu_us_per_object_full_floor": round(full_floor, 1),
            "full_cpu_per_wall": round(full["cpu_s"] / full_best, 2),
            "full_vs_raw_list_floor": round(full_floor * objects / 1e6 / raw_best, 2),
        }
    )
    table = Table(title="Backup benchmark (10,000 objects, 20 namespaces)")
    table.add_column("measure")
    table.add_column("value", justify="right")
    rows = [
        ("raw paged list (baseline, best of 3)", f"{raw_best:.3f} s"),
        ("full backup (best of 3)", f"{full_best:.3f} s"),
        ("full backup bytes uploaded", f"{full['stats']['bytes_uploaded']:,}"),
        (
            "no-op incremental",
            f"{noop['wall_s']:.3f} s, {noop['stats'].get('puts')} PUTs, {noop['stats']['bytes_uploaded']:,} B",
        ),
        ("1 % changed incremental", f"{incr['wall_s']:.3f} s, {incr['counts']['blobs_new']} new blobs"),
    ]
    for name, value in rows:
        table.add_row(name, value)
    for key, value in result.items():
        table.add_row(key, str(value))
    Console().print(table)
    print(orjson.dumps(result).decode())


if __name__ == "__main__":
    main()
