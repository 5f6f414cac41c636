"""In-memory storage: serialized objects per resource in etcd key order, and the global resourceVersion.

Objects are kept as immutable JSON bytes without kind/apiVersion (the type supplies those on the way out): a GET or
a list page is then a few byte concatenations, with no copying or re-serializing of object trees, and 100k objects
cost little more than their JSON size.
"""

from __future__ import annotations

import threading
from bisect import bisect_left
from typing import Any

import orjson

from sandbox.kubeapi.catalog import ResourceType


class Stored:
    """One object as stored: its JSON (metadata first, no kind/apiVersion) and what lists filter on."""

    __slots__ = ("_metadata", "body", "labels", "rv")

    def __init__(self, body: bytes, labels: dict[str, str], rv: int, metadata: bytes) -> None:
        self.body = body
        self.labels = labels
        self.rv = rv
        self._metadata = metadata

    @classmethod
    def of(cls, obj: dict[str, Any], rv: int) -> Stored:
        # The metadata alone is serialized with the object, as kube-apiserver keeps decoded objects and encodes
        # what a list asks for: a list of metadata must not cost more than the list of whole objects (parsing each
        # body on a first metadata list made it four times as costly).
        meta = obj["metadata"]
        return cls(orjson.dumps(obj), dict(meta.get("labels") or {}), rv, orjson.dumps({"metadata": meta}))

    def metadata_body(self) -> bytes:
        """``{"metadata":{...}}`` of this object alone: what a list as ``PartialObjectMetadataList`` serves of it."""
        return self._metadata

    def load(self) -> dict[str, Any]:
        """A private, mutable copy of the object (parsing the bytes is the cheapest deep copy)."""
        obj: dict[str, Any] = orjson.loads(self.body)
        return obj


def object_key(namespace: str | None, name: str) -> str:
    """The etcd key below the resource prefix: `<namespace>/<name>` or `<name>`, which fixes the list order."""
    return f"{namespace}/{name}" if namespace else name


class Bucket:
    """The objects of one resource. Keys are kept sorted lazily: a bulk load appends, the next list sorts once."""

    def __init__(self) -> None:
        self.objects: dict[str, Stored] = {}
        self._sorted: list[str] | None = []

    def get(self, key: str) -> Stored | None:
        return self.objects.get(key)

    def put(self, key: str, stored: Stored) -> None:
        if key not in self.objects and self._sorted is not None:
            if self._sorted and key < self._sorted[-1]:
                self._sorted = None
            else:
                self._sorted.append(key)
        self.objects[key] = stored

    def pop(self, key: str) -> Stored | None:
        stored = self.objects.pop(key, None)
        if stored is not None:
            self._sorted = None
        return stored

    def keys(self) -> list[str]:
        if self._sorted is None:
            self._sorted = sorted(self.objects)
        return self._sorted

    def key_range(self, prefix: str) -> tuple[list[str], int, int]:
        """The sorted keys and the [lo, hi) slice of those under `prefix` ("" for all)."""
        keys = self.keys()
        if not prefix:
            return keys, 0, len(keys)
        # "0" is the character after "/", so this brackets exactly the keys starting with "<ns>/".
        return keys, bisect_left(keys, prefix), bisect_left(keys, prefix[:-1] + "0")


class Store:
    """All buckets and the resourceVersion counter, guarded by one lock."""

    def __init__(self) -> None:
        self.lock = threading.RLock()
        self.rv = 1000
        self.compacted_rv = 0  # continue tokens from before this resourceVersion answer 410
        self.buckets: dict[tuple[str, str], Bucket] = {}
        self.namespaces: dict[str, str] = {}  # name -> phase, for the namespace checks on every create

    def bucket(self, rtype: ResourceType) -> Bucket:
        bucket = self.buckets.get(rtype.key)
        if bucket is None:
            bucket = self.buckets[rtype.key] = Bucket()
        return bucket

    def next_rv(self) -> int:
        self.rv += 1
        return self.rv

    def compact(self) -> None:
        # Move past the compaction point so tokens issued from now on are newer than it.
        self.compacted_rv = self.rv
        self.rv += 1
