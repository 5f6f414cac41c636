"""How many objects one backup worker invocation backs up one-shot within its timeout and memory, with margins.

The measured figures are those of ``bench/scale.py --sweep`` (docs/scale.md, "One cluster"); the worker's limits
are ``backup_worker``'s in ``.chalice/config.json`` (a test checks that they agree). A cluster above the capacity
is sharded (``ShardingOptions.min_objects``).
"""

from __future__ import annotations

from dataclasses import dataclass

WORKER_TIMEOUT_S = 900
WORKER_MEMORY_MB = 1024
# Lambda gives a function one full vCPU at 1,769 MB and a proportional share below it.
FULL_VCPU_MB = 1769
# Only this share of the timeout is planned for: the sweep ran against the test server and moto on localhost, a
# real API server lists from etcd over TLS and the network, and the same invocation may run hooks and the etcd
# snapshot before the manifest.
TIME_SHARE = 1 / 3
# Only this share of the function memory is planned for: the sweep's objects are ~1 KiB, real ones vary, and a
# Lambda that runs out of memory dies without a word.
MEMORY_SHARE = 1 / 2


@dataclass(frozen=True)
class OneShotMeasure:
    """A one-shot backup as measured: its rate, how much of it was CPU, and its memory per object."""

    objects_per_s: float  # objects backed up per wall-clock second
    cpu_share: float  # the backup process's CPU seconds per wall second (the part a fraction of a vCPU slows)
    kb_per_object: float  # peak RSS growth per object backed up, KiB
    base_mb: float  # RSS of the warm process before the backup, MiB


@dataclass(frozen=True)
class Capacity:
    """Objects one invocation can back up within its time (``by_time``) and memory (``by_memory``)."""

    by_time: int
    by_memory: int

    @property
    def objects(self) -> int:
        return min(self.by_time, self.by_memory)


# The worst of two sweeps of 30k/100k/300k objects (docs/scale.md, "One cluster"): the slowest rate (30k, 4,908/s),
# the highest CPU share, and the steepest line through the peak RSS of the full or no-op backup (0.793 KiB per
# object above 108 MiB; a 600k run's no-op peak, 572 MiB, is on that line).
MEASURED = OneShotMeasure(objects_per_s=4_908, cpu_share=0.611, kb_per_object=0.793, base_mb=108.1)


def seconds_per_object(measure: OneShotMeasure, memory_mb: int = WORKER_MEMORY_MB) -> float:
    """Wall seconds per object on a Lambda of ``memory_mb``: the CPU part stretched by its vCPU share."""
    vcpu = min(1.0, memory_mb / FULL_VCPU_MB)
    cpu = min(measure.cpu_share, 1.0)
    return (1 - cpu) / measure.objects_per_s + measure.cpu_share / vcpu / measure.objects_per_s


def oneshot_capacity(
    measure: OneShotMeasure = MEASURED, *, timeout_s: int = WORKER_TIMEOUT_S, memory_mb: int = WORKER_MEMORY_MB
) -> Capacity:
    if measure.objects_per_s <= 0 or measure.kb_per_object <= 0:
        raise ValueError(f"a measure needs a positive rate and memory per object: {measure}")
    by_time = int(TIME_SHARE * timeout_s / seconds_per_object(measure, memory_mb))
    by_memory = int(max(0.0, MEMORY_SHARE * memory_mb - measure.base_mb) * 1024 / measure.kb_per_object)
    return Capacity(by_time=by_time, by_memory=by_memory)


def shard_threshold(capacity: Capacity) -> int:
    """The capacity rounded down to two significant digits (a number people can remember and compare)."""
    objects = capacity.objects
    if objects < 100:
        return objects
    step: int = 10 ** (len(str(objects)) - 2)
    return objects // step * step
