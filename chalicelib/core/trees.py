"""Tree blobs: one per namespace (and one for cluster-scoped objects), plus a root tree over them."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import orjson

from chalicelib.core.canonical import canonical_blob
from chalicelib.core.errors import FormatError
from chalicelib.core.ids import BlobId

CLUSTER_SCOPE = ""  # the scope key of cluster-scoped objects


@dataclass(frozen=True, slots=True, order=True)
class TreeEntry:
    """One object of a scope. Sorted by (group, resource, name) so a tree's bytes are canonical."""

    group: str
    resource: str
    name: str
    version: str
    kind: str
    blob: BlobId
    size: int

    def to_list(self) -> list[Any]:
        return [self.group, self.version, self.kind, self.resource, self.name, self.blob, self.size]

    @classmethod
    def from_list(cls, row: list[Any]) -> TreeEntry:
        group, version, kind, resource, name, blob, size = row
        return cls(group=group, resource=resource, name=name, version=version, kind=kind, blob=blob, size=size)


def encode_tree(entries: list[TreeEntry]) -> tuple[BlobId, bytes]:
    """Canonical bytes of a scope tree and its blob id."""
    rows = [e.to_list() for e in sorted(entries)]
    return canonical_blob({"type": "tree", "v": 1, "entries": rows})


def decode_tree(data: bytes) -> list[TreeEntry]:
    doc = orjson.loads(data)
    if not isinstance(doc, dict) or doc.get("type") != "tree":
        raise FormatError("blob is not a scope tree")
    return [TreeEntry.from_list(row) for row in doc["entries"]]


def tree_blob_ids(data: bytes) -> list[BlobId]:
    """Just the object blob ids of a scope tree: what a reachability check needs, without building entries."""
    doc = orjson.loads(data)
    if not isinstance(doc, dict) or doc.get("type") != "tree":
        raise FormatError("blob is not a scope tree")
    return [BlobId(row[5]) for row in doc["entries"]]


def encode_root(scopes: dict[str, BlobId]) -> tuple[BlobId, bytes]:
    """Root tree: scope ("" for cluster-scoped, else the namespace) -> tree blob id."""
    return canonical_blob({"type": "root", "v": 1, "scopes": dict(sorted(scopes.items()))})


def decode_root(data: bytes) -> dict[str, BlobId]:
    doc = orjson.loads(data)
    if not isinstance(doc, dict) or doc.get("type") != "root":
        raise FormatError("blob is not a root tree")
    return {k: BlobId(v) for k, v in doc["scopes"].items()}
