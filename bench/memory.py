"""Where a one-shot backup's memory goes: tracemalloc at its fullest moment, grouped by the line that allocated.

Starts the Kubernetes API test server and moto, loads ``--objects`` synthetic objects, then runs one one-shot backup
in a child process with tracemalloc on. The child snapshots the heap before the backup and again when the
collector writes its last scope tree (everything the backup holds is still alive then), and prints the top holders
of the difference, per allocating line, with bytes per object. A second child runs the same backup without
tracemalloc for its peak RSS (tracemalloc's own bookkeeping would inflate it).

    python bench/memory.py --objects 50000 [--top 25] [--noop]

``--noop`` traces a second backup of the unchanged cluster into the same repository instead: what an incremental
holds (the parent's trees, the repository index) rather than what a first backup does; a plain child runs that
incremental first, for its peak RSS.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import orjson  # noqa: E402

from bench.harness import bulk_load, run_child, servers  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--objects", type=int, default=50_000)
    parser.add_argument("--namespaces", type=int, default=200)
    parser.add_argument("--top", type=int, default=25)
    parser.add_argument("--noop", action="store_true", help="trace an incremental of the unchanged cluster")
    args = parser.parse_args()

    from sandbox.synthetic import synthetic_objects

    deployments = args.objects // 20
    per_kind = (args.objects - args.namespaces - deployments) // 2
    objects = synthetic_objects(
        namespaces=args.namespaces, configmaps=per_kind, secrets=per_kind, deployments=deployments, size_bytes=1024
    )
    with servers(Path(tempfile.mkdtemp(prefix="lifeboat-bench-memory-"))) as srv:
        loaded = bulk_load(srv, objects)
        kubeconfig = str(srv.kubeconfig)
        plain = run_child(
            "bench.scale_tasks", "oneshot", kubeconfig, srv.aws_endpoint, "mem-rss/lifeboat/v1/", f"m-{uuid.uuid4()}"
        )
        noop = (
            run_child(
                "bench.scale_tasks",
                "oneshot",
                kubeconfig,
                srv.aws_endpoint,
                "mem-rss/lifeboat/v1/",
                f"n-{uuid.uuid4()}",
            )
            if args.noop
            else None
        )
        traced = run_child(
            "bench.scale_tasks",
            "traced",
            kubeconfig,
            srv.aws_endpoint,
            "mem-rss/lifeboat/v1/" if args.noop else "mem-traced/lifeboat/v1/",
            f"t-{uuid.uuid4()}",
            str(args.top),
        )
    counted = max(1, plain["counts"]["objects"])
    print(f"objects loaded {loaded:,}, backed up {counted:,}; state {plain['state']}")
    print(f"peak RSS (no tracemalloc): {plain['peak_rss_mb']:.1f} MiB; {plain['rss_before_mb']:.1f} MiB before the "
          f"backup; wall {plain['wall_s']:.2f} s")
    if noop is not None:
        print(f"no-op incremental peak RSS (no tracemalloc): {noop['peak_rss_mb']:.1f} MiB; "
              f"{noop['rss_before_mb']:.1f} MiB before the backup; wall {noop['wall_s']:.2f} s; state {noop['state']}")
    growth, peak = traced["growth_bytes"], traced["traced_peak_bytes"]
    print(f"traced heap growth when the writer finishes: {growth / 2**20:.1f} MiB ({growth / counted:.0f} B/object)")
    print(f"traced peak: {peak / 2**20:.1f} MiB ({peak / counted:.0f} B/object)")
    for title, key in (("when the writer finishes", "top"), ("at the sampled peak", "peak_top")):
        print(f"-- {title}")
        print(f"{'bytes/obj':>10} {'MiB':>8} {'blocks':>9}  where")
        for row in traced[key]:
            print(f"{row['bytes'] / counted:10.0f} {row['bytes'] / 2**20:8.1f} {row['count']:9d}  {row['where']}")
    summary: dict[str, object] = {"objects": counted, "peak_rss_mb": round(plain["peak_rss_mb"], 1)}
    if noop is not None:
        summary["noop_peak_rss_mb"] = round(noop["peak_rss_mb"], 1)
    print(orjson.dumps({**summary, **traced}).decode())


if __name__ == "__main__":
    main()
