"""Where a backup's CPU goes: the 10,000 objects of ``bench/backup.py``; a full backup, then no-op incrementals,
each in a child process as ``bench.tasks backup`` runs it, with every thread under cProfile (``--profile``).

Prints each run's CPU µs per object (as bench/backup.py computes it), the CPU of each kind of thread (the main
thread while the backup runs, and every thread the backup started that had ended when it returned, by name) and,
profiled, the top functions by own time over all threads, and which modules the run imported (their import is CPU
the backup pays on a fresh process).
"""

from __future__ import annotations

import argparse
import cProfile
import io
import os
import pstats
import re
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.harness import load_objects, run_child, servers  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--profile", action="store_true", help="profile every thread, print the top functions")
    parser.add_argument("--top", type=int, default=40)
    parser.add_argument("--runs", type=int, default=2, help="full backups (each on its own prefix) and no-op runs")
    args = parser.parse_args()

    from sandbox.synthetic import synthetic_objects

    objects = list(synthetic_objects(namespaces=20, configmaps=4750, secrets=4750, deployments=500, size_bytes=1024))
    workdir = Path(tempfile.mkdtemp(prefix="lifeboat-profile-"))
    with servers(workdir) as srv:
        load_objects(srv, objects)
        kubeconfig, endpoint = str(srv.kubeconfig), srv.aws_endpoint
        raw = run_child("bench.tasks", "rawlist", kubeconfig)
        print(f"== raw list: wall {raw['wall_s']:.3f} s")
        prefix = ""
        for i in range(args.runs):
            prefix = f"profile-full-{i}/lifeboat/v1/"
            _run(args, workdir, f"full {i}", kubeconfig, endpoint, prefix, f"full-{uuid.uuid4()}")
        for i in range(args.runs):
            _run(args, workdir, f"no-op {i}", kubeconfig, endpoint, prefix, f"noop-{uuid.uuid4()}")
        _run(args, workdir, "empty scope", kubeconfig, endpoint, prefix, f"empty-{uuid.uuid4()}", "none-*")


def _run(
    args: Any, workdir: Path, name: str, kubeconfig: str, endpoint: str, prefix: str, job: str, pattern: str = "bench-*"
) -> None:
    stats = workdir / f"{job}.prof" if args.profile else None
    result = run_child("bench.profile_backup", "child", str(stats or ""), kubeconfig, endpoint, prefix, job, pattern)
    objects = max(1, result["counts"]["objects"])
    print(
        f"== {name}: {result['state']}, wall {result['wall_s']:.3f} s, cpu {result['cpu_s']:.3f} s, "
        f"{result['cpu_s'] / objects * 1e6:.1f} µs CPU/object, reused {result['stats'].get('objects_reused')}, "
        f"puts {result['stats'].get('puts')}, gc {result['gc']}, stages (ms CPU) {result['stages']}"
    )
    print("   threads (ms CPU):", ", ".join(f"{name} {ms}" for name, ms in result["threads"].items()))
    if stats is not None:
        out = io.StringIO()
        pstats.Stats(str(stats), stream=out).sort_stats("tottime").print_stats(args.top)
        print(out.getvalue())
    imported = [m for m in result["imported"] if not m.startswith("_")]
    print(f"   {len(imported)} modules imported during the run:", " ".join(imported[:80]) or "-")


def child(stats: str, kubeconfig: str, endpoint: str, prefix: str, job_id: str, namespaces: str) -> dict[str, Any]:
    """``bench.tasks.backup``, every thread profiled while the backup runs when ``stats`` names a file (their
    profiles merged into it); ``imported``: the modules first imported during the run."""
    from bench import tasks
    from chalicelib.backup.service import BackupService

    profiles: list[cProfile.Profile] = []
    lock = threading.Lock()
    original_thread_run = threading.Thread.run
    original_run = BackupService.run
    imported: list[str] = []

    threads: dict[str, float] = {}

    def timed_thread(self: threading.Thread) -> None:
        try:
            original_thread_run(self)
        finally:
            kind = re.sub(r"(_\d+|-\d+(_\d+)?)$", "", self.name)
            with lock:
                threads[kind] = threads.get(kind, 0.0) + time.thread_time()

    def profiled_thread(self: threading.Thread) -> None:
        profile = cProfile.Profile(time.thread_time)
        with lock:
            profiles.append(profile)
        profile.runcall(timed_thread, self)

    def profiled_run(self: BackupService, *args: Any, **kwargs: Any) -> Any:
        before = set(sys.modules)
        import gc

        mode = os.environ.get("PROFILE_GC", "")
        if mode == "freeze":
            gc.freeze()
        elif mode == "off":
            gc.disable()
        elif mode.isdigit():
            gc.set_threshold(int(mode), 10, 10)
        elif mode.startswith("freeze"):
            gc.freeze()
            gc.set_threshold(int(mode[len("freeze") :]), 10, 10)
        main_started = time.thread_time()
        if not stats:
            threading.Thread.run = timed_thread  # type: ignore[method-assign]
            try:
                result = original_run(self, *args, **kwargs)
            finally:
                threading.Thread.run = original_thread_run  # type: ignore[method-assign]
        else:
            threading.Thread.run = profiled_thread  # type: ignore[method-assign]
            profile = cProfile.Profile(time.thread_time)
            profiles.append(profile)
            try:
                result = profile.runcall(original_run, self, *args, **kwargs)
            finally:
                threading.Thread.run = original_thread_run  # type: ignore[method-assign]
        threads["main"] = time.thread_time() - main_started
        imported.extend(sorted(set(sys.modules) - before))
        return result

    BackupService.run = profiled_run  # type: ignore[method-assign]
    from chalicelib.backup import service
    from chalicelib.backup.collect import Listing

    stages = _time_stages(BackupService, ("_open", "_execute"))
    _time_stages(service, ("refuse_damaged_reuse",), stages)  # called by its name in the service module
    _time_stages(Listing, ("namespaces", "collect"), stages)
    gc_time = _time_gc()
    result = tasks.backup(kubeconfig, endpoint, prefix, job_id, namespaces)
    result["imported"] = imported
    with lock:
        result["threads"] = {name: round(cpu * 1000, 1) for name, cpu in sorted(threads.items())}
    result["gc"] = gc_time
    result["stages"] = stages
    if stats:
        merged = pstats.Stats(profiles[0])
        for profile in profiles[1:]:
            try:
                merged.add(profile)
            except TypeError:
                continue  # a thread still running has no stats yet
        merged.dump_stats(stats)
    return result


def _time_stages(cls: Any, names: tuple[str, ...], totals: dict[str, float] | None = None) -> dict[str, float]:
    """CPU of the whole process (every thread) while each of ``cls``'s methods ``names`` runs, and its wall time
    (``<name>_wall``), in ms."""
    import resource

    def cpu() -> float:
        usage = resource.getrusage(resource.RUSAGE_SELF)
        return usage.ru_utime + usage.ru_stime

    totals = {} if totals is None else totals
    for name in names:
        original = getattr(cls, name)

        def timed(*args: Any, _original: Any = original, _name: str = name, **kwargs: Any) -> Any:
            started, wall = cpu(), time.perf_counter()
            try:
                return _original(*args, **kwargs)
            finally:
                totals[_name] = round(totals.get(_name, 0.0) + (cpu() - started) * 1000, 1)
                totals[_name + "_wall"] = round(totals.get(_name + "_wall", 0.0) + (time.perf_counter() - wall) * 1000)

        setattr(cls, name, timed)
    return totals


def _time_gc() -> dict[str, float]:
    """Collections by generation and the wall time they took, from now on (the GIL is held while they run)."""
    import gc
    import time

    totals: dict[str, float] = {"s": 0.0, "0": 0, "1": 0, "2": 0}
    started = [0.0]

    def callback(phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            started[0] = time.perf_counter()
        else:
            totals["s"] += time.perf_counter() - started[0]
            totals[str(info["generation"])] += 1

    gc.callbacks.append(callback)
    return totals


if __name__ == "__main__":
    if sys.argv[1:2] == ["child"]:
        import orjson

        sys.stdout.write(orjson.dumps(child(*sys.argv[2:])).decode() + "\n")
        sys.stdout.flush()
        os._exit(0)  # the repository-opening thread may still be parked: nothing is left to wait for
    main()
