"""Restore benchmark: 10,000 objects (ConfigMaps, Secrets, Deployments in 20 namespaces) into empty namespaces.

The raw creates and the restore run in turn, ``--rounds`` times each (3), each into namespaces of its own; a
figure is the median of its rounds, as single runs on a 2-core machine spread by up to a third.

Prints a table and, last, one JSON line:
  restore_vs_raw_create   restore wall time / the same objects POSTed by 16 threads (same run; target <= 1.1)
  restore_objects_per_s   objects restored per second
  restore_cpu_us_per_object, raw_create_cpu_us_per_object
                          each client process's CPU (user + sys) / objects: on the test server the client's one
                          interpreter, not the server, is what the wall time waits for
  dry_run_s               time to plan the same restore without touching the cluster
  peak_rss_mb             peak RSS of the restore process (target <= 300)

``--kubeconfig PATH`` runs it against that cluster instead of the test server, in namespaces of the benchmark's own
(``lifeboat-bench-*``, ``lifeboat-rawN-bench-*``, ``lifeboat-rstN-bench-*``), deleted afterwards.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import orjson  # noqa: E402

from bench.harness import load_objects, run_child, servers  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--kubeconfig", metavar="PATH", help="run against this cluster, not the test server")
    parser.add_argument("--rounds", type=int, default=3, help="raw creates and restores, in turn (default 3)")
    args = parser.parse_args()
    if args.rounds < 1:
        parser.error("--rounds must be at least 1")

    from rich.console import Console
    from rich.table import Table

    from sandbox.synthetic import synthetic_objects

    objects = list(synthetic_objects(namespaces=20, configmaps=4750, secrets=4750, deployments=500))
    with servers(Path(tempfile.mkdtemp(prefix="lifeboat-bench-")), kubeconfig=args.kubeconfig) as srv:
        load_objects(srv, objects)
        kubeconfig = str(srv.kubeconfig)
        owner = srv.owned_prefix or ""
        if owner:
            # What the raw creates and the restores make: deleted with the benchmark's own namespaces.
            made = (f"{p}{n}-" for n in range(args.rounds) for p in ("raw", "rst"))
            srv.created.update(f"{owner}{p}bench-{i:03d}" for p in made for i in range(20))
        prefix = "bench-restore/lifeboat/v1/"
        backup = run_child(
            "bench.tasks", "backup", kubeconfig, srv.aws_endpoint, prefix, f"b-{uuid.uuid4()}", srv.ns("bench-*")
        )
        assert backup["state"] == "Completed", backup
        source = (srv.aws_endpoint, prefix, backup["cluster"], backup["backup_id"])
        dry = run_child("bench.tasks", "restore", kubeconfig, *source, "dry-", "dry", owner)
        raws, reals = [], []
        for n in range(args.rounds):
            raws.append(run_child("bench.tasks", "rawcreate", kubeconfig, f"raw{n}-", owner))
            reals.append(run_child("bench.tasks", "restore", kubeconfig, *source, f"rst{n}-", "real", owner))
    for real in reals:
        assert real["state"] == "Completed" and real["failures"] == 0, real
    restored = reals[0]["counts"].get("created", 0)
    raw_s, restore_s = (statistics.median(r["wall_s"] for r in runs) for runs in (raws, reals))
    result = {
        "objects": restored,
        "rounds": args.rounds,
        "raw_create_s": round(raw_s, 3),
        "restore_s": round(restore_s, 3),
        "restore_vs_raw_create": round(restore_s / raw_s, 3),
        "restore_objects_per_s": round(restored / restore_s, 1),
        "restore_cpu_us_per_object": round(statistics.median(r["cpu_s"] for r in reals) / max(1, restored) * 1e6, 1),
        "raw_create_cpu_us_per_object": round(
            statistics.median(r["cpu_s"] for r in raws) / max(1, raws[0]["objects"]) * 1e6, 1
        ),
        "dry_run_s": round(dry["wall_s"], 3),
        "peak_rss_mb": round(max(r["peak_rss_mb"] for r in reals), 1),
    }
    table = Table(title="Restore benchmark (10,000 objects, 20 namespaces)")
    table.add_column("measure")
    table.add_column("value", justify="right")
    for n, (raw, real) in enumerate(zip(raws, reals, strict=True)):
        table.add_row(f"round {n}: raw creates (16 threads)", f"{raw['wall_s']:.3f} s ({raw['objects']} objects)")
        table.add_row(f"round {n}: restore", f"{real['wall_s']:.3f} s, counts {real['counts']}")
    table.add_row("dry run", f"{dry['wall_s']:.3f} s")
    for key, value in result.items():
        table.add_row(key, str(value))
    Console().print(table)
    print(orjson.dumps(result).decode())


if __name__ == "__main__":
    main()
