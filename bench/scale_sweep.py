"""One cluster's scale: one-shot backups of 30k, 100k and 300k objects, each size on fresh servers and in a fresh
child process (so a larger size's peak RSS cannot hide a smaller one's), and how time and memory grow with size.

Each size runs a full backup, then a no-op incremental of the unchanged cluster into the same repository (another
fresh child: every backup after the first is one, and it also holds the parent's trees and the index).

Run through ``bench/scale.py --sweep [--sizes 30000,100000,300000] [--namespaces 200] [--kubeconfig PATH]``. Prints
a table and one JSON line per size (``"sweep": objects``) then one summary line (``"sweep_summary"``):
  wall_s, peak_rss_mb, rss_before_mb, objects_per_s, cpu_s   per size, as ``--oneshot`` measures them
  noop_s, noop_peak_rss_mb   the no-op incremental's wall time and peak RSS
  rss_kb_per_object          (the higher peak RSS - RSS once warm) / objects, in KiB
  ms_per_1k_objects          wall time per 1,000 objects
  objects_ratio, time_ratio, rss_growth_ratio   largest size / smallest: linear when time_ratio ~ objects_ratio
  measure                    marginal KiB per object (the peak's slope between the smallest and largest size), its
                             intercept, the slowest rate and the highest CPU share: what
                             ``chalicelib.core.capacity`` takes (its MEASURED is docs/scale.md's, "One cluster")
  capacity                   what one backup worker invocation backs up by time and by memory from these figures
"""

from __future__ import annotations

from typing import Any

SIZES = (30_000, 100_000, 300_000)


def one_size(objects: int, namespaces: int, kubeconfig: str | None) -> dict[str, Any]:
    """One one-shot backup of ``objects`` objects on servers of its own (started and stopped here)."""
    from bench.scale import run_oneshot

    done = run_oneshot(objects, namespaces, kubeconfig, prefix="sweep", noop=True)
    loaded, load_s, run, noop, servers_cpu = done.loaded, done.load_s, done.run, done.noop, done.servers_cpu
    assert noop is not None
    assert run["state"] == "Completed", run
    assert noop["state"] == "Completed", noop
    backed_up = run["counts"]["objects"]
    peak = max(run["peak_rss_mb"], noop["peak_rss_mb"])
    grown_mb = peak - run["rss_before_mb"]
    return {
        "sweep": loaded,
        "objects_backed_up": backed_up,
        "namespaces": namespaces,
        "cluster": "kubeconfig" if kubeconfig else "test server",
        "load_s": round(load_s, 1),
        "wall_s": round(run["wall_s"], 3),
        "peak_rss_mb": round(run["peak_rss_mb"], 1),
        "rss_before_mb": round(run["rss_before_mb"], 1),
        "objects_per_s": round(backed_up / run["wall_s"]),
        "cpu_s": run["cpu_s"],
        "servers_cpu_s": servers_cpu,
        "noop_s": round(noop["wall_s"], 3),
        "noop_peak_rss_mb": round(noop["peak_rss_mb"], 1),
        "noop_reused": noop["stats"].get("objects_reused"),
        "rss_kb_per_object": round(grown_mb * 1024 / backed_up, 3),
        "ms_per_1k_objects": round(run["wall_s"] * 1e6 / backed_up, 1),
    }


def summary(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """Linearity (largest size against smallest) and what one worker invocation can hold, from the sweep's rows."""
    from chalicelib.core.capacity import OneShotMeasure, oneshot_capacity

    small, large = rows[0], rows[-1]
    grown = [_peak(r) - r["rss_before_mb"] for r in (small, large)]
    # Memory: the peak's slope between the smallest and the largest size, and what it leaves at zero objects (the
    # warm process plus what any backup allocates). A single size (or
    # peaks that did not grow: sizes too small to tell) gives its average per object and the warm RSS.
    slope, base = small["rss_kb_per_object"], small["rss_before_mb"]
    if large["sweep"] > small["sweep"] and _peak(large) > _peak(small):
        slope = (_peak(large) - _peak(small)) * 1024 / (large["sweep"] - small["sweep"])
        base = _peak(small) - slope * small["sweep"] / 1024
    # Time: the slowest rate and the highest CPU share the sweep saw, at any size (on a shared machine one size
    # can be slowed by others' work: the capacity takes the worst).
    measure = OneShotMeasure(
        objects_per_s=min(r["objects_per_s"] for r in rows),
        cpu_share=max(r["cpu_s"] / r["wall_s"] for r in rows),
        kb_per_object=round(slope, 3),
        base_mb=round(base, 1),
    )
    capacity = oneshot_capacity(measure)
    return {
        "sweep_summary": [r["sweep"] for r in rows],
        "objects_ratio": round(large["sweep"] / small["sweep"], 2),
        "time_ratio": round(large["wall_s"] / small["wall_s"], 2),
        "rss_growth_ratio": round(grown[1] / grown[0], 2) if grown[0] > 0 else None,
        "peak_rss_ratio": round(large["peak_rss_mb"] / small["peak_rss_mb"], 2),
        "measure": {
            "objects_per_s": measure.objects_per_s,
            "cpu_share": round(measure.cpu_share, 3),
            "kb_per_object": measure.kb_per_object,
            "base_mb": measure.base_mb,
        },
        "capacity": {
            "by_time": capacity.by_time,
            "by_memory": capacity.by_memory,
            "objects": capacity.objects,
        },
    }


def _peak(row: dict[str, Any]) -> float:
    return float(max(row["peak_rss_mb"], row["noop_peak_rss_mb"]))


def sweep(sizes: list[int], namespaces: int, kubeconfig: str | None) -> list[dict[str, Any]]:
    import orjson
    from rich.console import Console
    from rich.table import Table

    rows = []
    for size in sizes:
        rows.append(one_size(size, namespaces, kubeconfig))
        print(orjson.dumps(rows[-1]).decode(), flush=True)
    result = summary(rows)
    table = Table(title=f"One-shot sweep ({namespaces} namespaces, {rows[0]['cluster']})")
    columns = ("objects", "wall s", "peak RSS MB", "objects/s", "no-op s", "no-op peak MB", "RSS KiB/object")
    for column in columns:
        table.add_column(column, justify="right")
    for r in rows:
        table.add_row(
            f"{r['sweep']:,}",
            f"{r['wall_s']:.1f}",
            f"{r['peak_rss_mb']:.0f}",
            f"{r['objects_per_s']:,}",
            f"{r['noop_s']:.1f}",
            f"{r['noop_peak_rss_mb']:.0f}",
            f"{r['rss_kb_per_object']:.2f}",
        )
    Console(stderr=True).print(table)
    print(orjson.dumps(result).decode(), flush=True)
    return rows
