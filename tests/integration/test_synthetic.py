"""The synthetic benchmark generator: counts, names, payload sizes, determinism, speed, mutation."""

from __future__ import annotations

import base64
import json
import time
from collections import Counter
from typing import Any

import pytest

from sandbox.synthetic import CONFIG_KEY, SECRET_KEY, mutate_fraction, synthetic_objects


def _size(obj: dict[str, Any]) -> int:
    return len(json.dumps(obj, separators=(",", ":")))


def test_synthetic_counts_names_and_spread() -> None:
    objects = list(synthetic_objects(namespaces=7, configmaps=100, secrets=40, deployments=30))
    kinds = Counter(o["kind"] for o in objects)
    assert kinds == {"Namespace": 7, "ConfigMap": 100, "Secret": 40, "Deployment": 30}
    names = [o["metadata"]["name"] for o in objects if o["kind"] == "Namespace"]
    assert names == [f"bench-{i:03d}" for i in range(7)]
    per_namespace = Counter(o["metadata"]["namespace"] for o in objects if o["kind"] == "ConfigMap")
    assert set(per_namespace) == set(names)
    assert max(per_namespace.values()) - min(per_namespace.values()) <= 1
    identities = [(o["kind"], o["metadata"].get("namespace"), o["metadata"]["name"]) for o in objects]
    assert len(set(identities)) == len(identities)
    # creatable as they are: no server-set fields
    assert not any("uid" in o["metadata"] or "resourceVersion" in o["metadata"] for o in objects)
    for secret in (o for o in objects if o["kind"] == "Secret"):
        base64.b64decode(secret["data"][SECRET_KEY], validate=True)


@pytest.mark.parametrize("size_bytes", [512, 1024, 8192])
@pytest.mark.parametrize("server_fields", [False, True])
def test_synthetic_payload_sizes(size_bytes: int, server_fields: bool) -> None:
    objects = synthetic_objects(
        namespaces=3, configmaps=50, secrets=50, deployments=0, size_bytes=size_bytes, server_fields=server_fields
    )
    sizes = [_size(o) for o in objects if o["kind"] in ("ConfigMap", "Secret")]
    assert len(sizes) == 100
    assert all(0.8 * size_bytes <= s <= 1.2 * size_bytes for s in sizes), (min(sizes), max(sizes))


def test_synthetic_is_deterministic_and_seeded() -> None:
    first = list(synthetic_objects(namespaces=3, configmaps=20, secrets=20, deployments=5, seed=7))
    again = list(synthetic_objects(namespaces=3, configmaps=20, secrets=20, deployments=5, seed=7))
    other = list(synthetic_objects(namespaces=3, configmaps=20, secrets=20, deployments=5, seed=8))
    assert first == again
    assert first != other
    listed = list(synthetic_objects(namespaces=3, configmaps=20, secrets=20, deployments=5, seed=7, server_fields=True))
    uids = [o["metadata"]["uid"] for o in listed]
    assert len(set(uids)) == len(uids)
    assert len({o["metadata"]["resourceVersion"] for o in listed}) == len(listed)


def test_synthetic_generates_100k_objects_quickly() -> None:
    started = time.perf_counter()
    count = sum(1 for _ in synthetic_objects(namespaces=100, configmaps=60_000, secrets=30_000, deployments=9_900))
    elapsed = time.perf_counter() - started
    assert count == 100_000
    assert elapsed < 10, f"{elapsed:.1f}s"  # about 2 s on a busy 2-core machine


def test_mutate_fraction_changes_copies_of_that_fraction() -> None:
    objects = list(synthetic_objects(namespaces=4, configmaps=600, secrets=400, deployments=50, server_fields=True))
    snapshot = json.dumps(objects)
    changed = mutate_fraction(objects, 0.01, seed=3)
    assert len(changed) == 10
    assert json.dumps(objects) == snapshot, "the input objects must not be modified"
    originals = {(o["kind"], o["metadata"]["namespace"], o["metadata"]["name"]): o for o in objects if "data" in o}
    for obj in changed:
        original = originals[(obj["kind"], obj["metadata"]["namespace"], obj["metadata"]["name"])]
        assert obj["kind"] in ("ConfigMap", "Secret")
        assert obj["data"] != original["data"]
        key = CONFIG_KEY if obj["kind"] == "ConfigMap" else SECRET_KEY
        assert obj["data"][key] != original["data"][key]
        assert abs(_size(obj) - _size(original)) <= 0.05 * _size(original)
        assert int(obj["metadata"]["resourceVersion"]) > int(original["metadata"]["resourceVersion"])
    assert mutate_fraction(objects, 0.01, seed=3) == changed
    assert mutate_fraction(objects, 0.01, seed=4) != changed
    assert len(mutate_fraction(objects, 0.0)) == 0
    assert len(mutate_fraction(objects, 0.0001)) == 1
    assert len(mutate_fraction(objects, 1.0)) == 1000
    with pytest.raises(ValueError, match="fraction must be between 0 and 1"):
        mutate_fraction(objects, 1.5)
