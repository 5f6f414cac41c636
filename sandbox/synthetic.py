"""Synthetic clusters for benchmarks: many namespaces, ConfigMaps, Secrets and Deployments, generated fast.

Deterministic for a given seed, so two runs back up byte-identical objects. ConfigMap payloads are config-like text
(they compress like real ones); Secret payloads are base64 of random bytes (tokens and keys barely compress).
"""

from __future__ import annotations

import base64
import copy
import functools
import json
import random
import uuid
from collections.abc import Iterable, Iterator
from typing import Any

NAMESPACE_PREFIX = "bench-"
CONFIG_KEY = "app.properties"
SECRET_KEY = "token"
_VOCABULARY = (
    "server port host timeout retries cache enabled disabled region bucket queue worker pool size max min level log"
    " debug info warn error metrics tracing endpoint url path prefix feature flag rollout percent batch interval"
    " seconds minutes threshold limit burst replicas zone primary secondary user tenant shard partition key value"
)
_SEPARATORS = (" ", " ", " ", "=", ".", "_", "\n", ", ")
# Twice zstd's window at its default level (2 MiB), so a pack cannot shrink by matching slices against each other.
_CORPUS_CHARS = 4 << 20
_IMAGES = ("nginx:1.25-alpine", "redis:7.2", "python:3.11-slim", "node:20-alpine", "envoyproxy/envoy:v1.29-latest")
_TIMESTAMP = "2024-05-01T00:00:00Z"


def synthetic_objects(
    namespaces: int = 20,
    configmaps: int = 2000,
    secrets: int = 1000,
    deployments: int = 500,
    size_bytes: int = 1024,
    seed: int = 0,
    server_fields: bool = False,
) -> Iterator[dict[str, Any]]:
    """Namespaces ``bench-000``..., then ConfigMaps and Secrets of about ``size_bytes`` of compact JSON each, then
    Deployments, spread round-robin over the namespaces. ``server_fields`` adds what a list response carries (uid,
    resourceVersion, creationTimestamp, managedFields), for benchmarking sanitizing; leave it off to create them."""
    if namespaces < 1:
        raise ValueError("namespaces must be at least 1")
    rng = random.Random(seed)
    corpus = _corpus(seed)
    names = [f"{NAMESPACE_PREFIX}{i:03d}" for i in range(namespaces)]
    version = _VersionCounter(rng) if server_fields else None
    for name in names:
        yield _finish({"apiVersion": "v1", "kind": "Namespace", "metadata": _meta(name, None, "bench")}, version)

    config_room = _payload_room("ConfigMap", size_bytes, names[-1], configmaps, version)
    for i in range(configmaps):
        start = rng.randrange(len(corpus) - config_room)
        text = corpus[start : start + config_room]
        text = text[: config_room - text.count("\n")]  # JSON spells each newline in two characters
        obj = {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": _meta(_name("cm", i, configmaps), names[i % namespaces], f"app-{i % 50:02d}"),
            "data": {CONFIG_KEY: text, "revision": "1"},
        }
        yield _finish(obj, version)

    secret_room = _payload_room("Secret", size_bytes, names[-1], secrets, version)
    for i in range(secrets):
        obj = {
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": _meta(_name("secret", i, secrets), names[i % namespaces], f"app-{i % 50:02d}"),
            "type": "Opaque",
            "data": {SECRET_KEY: _random_base64(rng, secret_room), "revision": "MQ=="},
        }
        yield _finish(obj, version)

    for i in range(deployments):
        config = _name("cm", i, configmaps) if i < configmaps else None  # same namespace: both go round-robin
        yield _finish(_deployment(_name("app", i, deployments), names[i % namespaces], i, config), version)


def mutate_fraction(objects: Iterable[dict[str, Any]], fraction: float, seed: int = 0) -> list[dict[str, Any]]:
    """Changed copies of ``fraction`` of the ConfigMaps and Secrets in ``objects`` (at least one when the fraction is
    positive), in their original order; sizes stay about the same. The input objects are not modified."""
    if not 0.0 <= fraction <= 1.0:
        raise ValueError("fraction must be between 0 and 1")
    candidates = [obj for obj in objects if obj.get("kind") in ("ConfigMap", "Secret")]
    count = round(len(candidates) * fraction)
    if fraction > 0 and candidates:
        count = max(count, 1)
    rng = random.Random(seed)
    chosen = sorted(rng.sample(range(len(candidates)), count))
    return [_mutated(candidates[index], rng) for index in chosen]


def _mutated(obj: dict[str, Any], rng: random.Random) -> dict[str, Any]:
    changed = copy.deepcopy(obj)
    data = changed["data"]
    if changed["kind"] == "ConfigMap":
        revision = int(data.get("revision", "1")) + 1
        data["revision"] = str(revision)
        # An edit of a few settings: a short stretch of the file rewritten, the rest as it was.
        text = data.get(CONFIG_KEY, "")
        at = rng.randrange(max(len(text) - 32, 1))
        data[CONFIG_KEY] = text[:at] + f"edited_{revision}={rng.getrandbits(32):08x}"[:32] + text[at + 32 :]
    else:
        revision = int(base64.b64decode(data.get("revision", "MQ==")) or b"1") + 1
        data["revision"] = base64.b64encode(str(revision).encode()).decode()
        # A rotated credential: the whole value is new, same length.
        data[SECRET_KEY] = _random_base64(rng, len(data.get(SECRET_KEY, "")))
    meta = changed["metadata"]
    if "resourceVersion" in meta:
        meta["resourceVersion"] = str(int(meta["resourceVersion"]) + 1_000_000)
    return changed


@functools.lru_cache(maxsize=4)
def _corpus(seed: int) -> str:
    """Config-like text to slice payloads from; generated once per seed."""
    rng = random.Random(seed ^ 0x5EED)
    count = _CORPUS_CHARS // 7
    words = rng.choices(_VOCABULARY.split(), k=count)
    separators = rng.choices(_SEPARATORS, k=count)
    digits = rng.choices(("", "", "", "0", "1", "2", "10", "30", "100", "8080"), k=count)
    text = "".join(w + d + s for w, d, s in zip(words, digits, separators, strict=True))
    return (text * (_CORPUS_CHARS // len(text) + 1))[:_CORPUS_CHARS]


def _random_base64(rng: random.Random, chars: int) -> str:
    return base64.b64encode(rng.randbytes(chars * 3 // 4 + 3)).decode()[: max(chars - chars % 4, 4)]


def _name(prefix: str, index: int, total: int) -> str:
    # Fixed width per kind, so every object of a kind has the same JSON overhead around its payload.
    return f"{prefix}-{index:0{max(len(str(total - 1)), 5)}d}"


def _meta(name: str, namespace: str | None, app: str) -> dict[str, Any]:
    meta: dict[str, Any] = {
        "name": name,
        "labels": {"app.kubernetes.io/name": app, "bench.lifeboat.io/synthetic": "true"},
    }
    if namespace is not None:
        meta["namespace"] = namespace
    return meta


def _payload_room(kind: str, size_bytes: int, namespace: str, total: int, version: _VersionCounter | None) -> int:
    """Characters of payload that bring an object of ``kind`` to about ``size_bytes`` of compact JSON."""
    probe: dict[str, Any] = {
        "apiVersion": "v1",
        "kind": kind,
        "metadata": _meta(_name("secret" if kind == "Secret" else "cm", 0, total), namespace, "app-00"),
        "data": {CONFIG_KEY: "", "revision": "1"},
    }
    if kind == "Secret":
        probe["type"] = "Opaque"
        probe["data"] = {SECRET_KEY: "", "revision": "MQ=="}
    if version is not None:
        probe = _finish(probe, _VersionCounter(random.Random(0)))
    overhead = len(json.dumps(probe, separators=(",", ":")))
    return max(size_bytes - overhead, 16)


def _deployment(name: str, namespace: str, index: int, config: str | None) -> dict[str, Any]:
    labels = {"app.kubernetes.io/name": name, "bench.lifeboat.io/synthetic": "true"}
    container: dict[str, Any] = {
        "name": "main",
        "image": _IMAGES[index % len(_IMAGES)],
        "ports": [{"name": "http", "containerPort": 8080 + index % 10}],
        "env": [
            {"name": "APP_NAME", "value": name},
            {"name": "LOG_LEVEL", "value": ("info", "debug", "warn")[index % 3]},
        ],
        "resources": {
            "requests": {"cpu": f"{50 + index % 200}m", "memory": f"{64 + index % 256}Mi"},
            "limits": {"memory": f"{128 + index % 512}Mi"},
        },
        "readinessProbe": {"httpGet": {"path": "/healthz", "port": "http"}, "periodSeconds": 10},
    }
    if config is not None:
        container["envFrom"] = [{"configMapRef": {"name": config}}]
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name, "namespace": namespace, "labels": dict(labels)},
        "spec": {
            "replicas": 1 + index % 5,
            "selector": {"matchLabels": {"app.kubernetes.io/name": name}},
            "template": {
                "metadata": {"labels": dict(labels)},
                "spec": {"containers": [container]},
            },
        },
    }


class _VersionCounter:
    """Server-set fields for ``server_fields``: increasing resource versions and seeded uids."""

    def __init__(self, rng: random.Random) -> None:
        self._rng = rng
        self._next = 1000

    def stamp(self, obj: dict[str, Any]) -> None:
        meta = obj["metadata"]
        self._next += 1
        meta["uid"] = str(uuid.UUID(int=self._rng.getrandbits(128), version=4))
        meta["resourceVersion"] = str(self._next)
        meta["creationTimestamp"] = _TIMESTAMP
        meta["managedFields"] = [
            {
                "manager": "kubectl-client-side-apply",
                "operation": "Update",
                "apiVersion": obj["apiVersion"],
                "time": _TIMESTAMP,
                "fieldsType": "FieldsV1",
                "fieldsV1": {"f:metadata": {"f:labels": {".": {}, "f:app.kubernetes.io/name": {}}}},
            }
        ]


def _finish(obj: dict[str, Any], version: _VersionCounter | None) -> dict[str, Any]:
    if version is not None:
        version.stamp(obj)
    return obj
