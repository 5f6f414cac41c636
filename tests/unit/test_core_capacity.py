"""What one backup worker invocation backs up one-shot: by time and by memory, from the measured figures."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from chalicelib.core.capacity import (
    FULL_VCPU_MB,
    MEASURED,
    MEMORY_SHARE,
    TIME_SHARE,
    WORKER_MEMORY_MB,
    WORKER_TIMEOUT_S,
    Capacity,
    OneShotMeasure,
    oneshot_capacity,
    seconds_per_object,
    shard_threshold,
)

ROOT = Path(__file__).resolve().parents[2]


def test_the_worker_limits_are_those_of_the_backup_worker_function():
    config = json.loads((ROOT / ".chalice" / "config.json").read_text())["lambda_functions"]["backup_worker"]
    assert (config["lambda_timeout"], config["lambda_memory_size"]) == (WORKER_TIMEOUT_S, WORKER_MEMORY_MB)


def test_by_time_is_the_rate_over_the_planned_share_of_the_timeout():
    waiting = OneShotMeasure(objects_per_s=1000, cpu_share=0.0, kb_per_object=1.0, base_mb=0)
    assert oneshot_capacity(waiting, timeout_s=900).by_time == pytest.approx(1000 * 900 * TIME_SHARE, abs=1)


def test_the_cpu_part_is_slowed_by_the_functions_vcpu_share():
    cpu_bound = OneShotMeasure(objects_per_s=1000, cpu_share=1.0, kb_per_object=1.0, base_mb=0)
    assert seconds_per_object(cpu_bound, FULL_VCPU_MB) == pytest.approx(1 / 1000)
    assert seconds_per_object(cpu_bound, FULL_VCPU_MB // 2) == pytest.approx(2 / 1000, rel=1e-3)
    assert seconds_per_object(cpu_bound, 2 * FULL_VCPU_MB) == pytest.approx(1 / 1000), "one thread: no faster"
    half = OneShotMeasure(objects_per_s=1000, cpu_share=0.5, kb_per_object=1.0, base_mb=0)
    assert seconds_per_object(half, FULL_VCPU_MB // 2) == pytest.approx(1.5 / 1000, rel=1e-3)


def test_by_memory_is_the_planned_share_of_the_memory_left_after_the_base():
    measure = OneShotMeasure(objects_per_s=1000, cpu_share=0.5, kb_per_object=2.0, base_mb=112)
    expected = (1024 * MEMORY_SHARE - 112) * 1024 / 2.0
    assert oneshot_capacity(measure, memory_mb=1024).by_memory == pytest.approx(expected, abs=1)
    assert oneshot_capacity(measure, memory_mb=128).by_memory == 0, "a base above the share leaves nothing"


def test_the_capacity_is_the_lower_of_time_and_memory():
    assert Capacity(by_time=5, by_memory=7).objects == 5
    assert Capacity(by_time=9, by_memory=7).objects == 7


@pytest.mark.parametrize("measure", [OneShotMeasure(0, 0.5, 1.0, 70), OneShotMeasure(1000, 0.5, 0.0, 70)])
def test_a_measure_without_a_rate_or_memory_per_object_is_refused(measure):
    with pytest.raises(ValueError, match="positive"):
        oneshot_capacity(measure)


@pytest.mark.parametrize(
    ("objects", "threshold"), [(1_234_567, 1_200_000), (987_654, 980_000), (99_999, 99_000), (150, 150), (42, 42)]
)
def test_the_threshold_is_the_capacity_to_two_significant_digits(objects, threshold):
    assert shard_threshold(Capacity(by_time=objects, by_memory=objects + 1)) == threshold


def test_the_measured_figures_give_a_capacity_below_the_timeout_and_the_memory():
    capacity = oneshot_capacity(MEASURED)
    seconds = capacity.objects * seconds_per_object(MEASURED)
    megabytes = MEASURED.base_mb + capacity.objects * MEASURED.kb_per_object / 1024
    assert seconds <= WORKER_TIMEOUT_S * TIME_SHARE + 1
    assert megabytes <= WORKER_MEMORY_MB * MEMORY_SHARE + 1
