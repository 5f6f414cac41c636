"""Tree blobs: one per namespace (and one for cluster-scoped objects), plus a root tree over them."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, NamedTuple

import orjson

from chalicelib.core.canonical import blob_id, canonical_blob
from chalicelib.core.errors import FormatError
from chalicelib.core.ids import BlobId
from chalicelib.core.sanitize import SANITIZER_VERSION

CLUSTER_SCOPE = ""  # the scope key of cluster-scoped objects

# v1: entries of 7 columns. v2: two more, the object's uid and resourceVersion, and the sanitizer version that made
# the blobs, so the next backup can recognise an unchanged object without sanitizing and hashing it again.
TREE_VERSION = 2
_TREE_VERSIONS = frozenset({1, 2})


class TreeEntry(NamedTuple):
    """One object of a scope. Sorted by (group, resource, name) so a tree's bytes are canonical.

    ``uid`` and ``resource_version`` are the listed object's (empty when read from a v1 tree): they identify the
    exact object state the blob was made from, which lets a later backup reuse the blob (``backup/reuse.py``).

    A NamedTuple, like ``IndexEntry``: immutable and ordered field by field as a frozen dataclass would be, but
    built in a fraction of the time, and a backup builds one per object (and one per object of its parent's trees).
    """

    group: str
    resource: str
    name: str
    version: str
    kind: str
    blob: BlobId
    size: int
    uid: str = ""
    resource_version: str = ""

    def to_list(self) -> list[Any]:
        group, resource, name, version, kind, blob, size, uid, rv = self
        return [group, version, kind, resource, name, blob, size, uid, rv]

    @classmethod
    def from_list(cls, row: list[Any]) -> TreeEntry:
        if len(row) == 7:  # a v1 tree, or a checkpoint written before v2
            group, version, kind, resource, name, blob, size = row
            return _new_tuple(cls, (group, resource, name, version, kind, blob, size, "", ""))
        group, version, kind, resource, name, blob, size, uid, rv = row
        return _new_tuple(cls, (group, resource, name, version, kind, blob, size, uid, rv))


_new_tuple = tuple.__new__


@dataclass(frozen=True)
class Tree:
    """A decoded scope tree: its entries and the sanitizer version of its blobs (None for a v1 tree: unknown)."""

    entries: list[TreeEntry]
    sanitizer: int | None


def encode_tree(entries: list[TreeEntry]) -> tuple[BlobId, bytes]:
    """Canonical bytes of a scope tree and its blob id."""
    rows = [[g, v, k, r, n, b, s, u, rv] for g, r, n, v, k, b, s, u, rv in sorted(entries)]
    return canonical_blob({"type": "tree", "v": TREE_VERSION, "sanitizer": SANITIZER_VERSION, "entries": rows})


# What follows the last row of a tree's canonical JSON: its other keys, in sorted order.
_TREE_TAIL = f'],"sanitizer":{SANITIZER_VERSION},"type":"tree","v":{TREE_VERSION}}}'


def encode_tree_text(types: Iterable[tuple[str, str, str, str, list[str]]]) -> tuple[BlobId, bytes] | None:
    """``encode_tree`` of entries given as text: per type (group, version, kind, resource), each entry's
    ``[name, blob, size, uid, resourceVersion]`` as its JSON text (``orjson.dumps``, decoded). The same bytes and id,
    built by sorting and joining the rows' text instead of decoding, sorting and encoding entries; None when the
    text's order might not be the entries' (then ``encode_tree`` must be used).

    Sorted as text, rows of one type are in the entries' order when no two share a name and no name, uid or
    resourceVersion holds a character the text escapes (it would show as a backslash) or one sorting before the
    quote that closes a name (a space, '!'): the names decide, as in the entries' order, a name before any longer
    name it begins. Types go in (group, resource) order, which must be unique per type, as in a backup.
    """
    ordered = sorted(types, key=lambda t: (t[0], t[3]))
    if len({(t[0], t[3]) for t in ordered}) != len(ordered):
        return None
    parts: list[str] = []
    for group, version, kind, resource, rows in ordered:
        if not rows:
            continue
        prefix = orjson.dumps([group, version, kind, resource]).decode()[:-1] + ","
        rows = sorted(rows)
        joined = prefix + ("," + prefix).join([row[1:] for row in rows])
        if joined.count(prefix + '"') != len(rows):
            return None  # a name that is not a string (a quote would follow the prefix)
        if len({row[2 : row.find('"', 2)] for row in rows}) != len(rows):
            return None  # a name twice: its rows' order would be their blobs', sizes' ... as text
        parts.append(joined)
    body = ",".join(parts)
    if "\\" in body or " " in body or "!" in body:
        return None
    data = ('{"entries":[' + body + _TREE_TAIL).encode()
    return blob_id(data), data


def _tree_doc(data: bytes) -> dict[str, Any]:
    doc = orjson.loads(data)
    if not isinstance(doc, dict) or doc.get("type") != "tree":
        raise FormatError("blob is not a scope tree")
    if doc.get("v") not in _TREE_VERSIONS:
        raise FormatError(f"scope tree version {doc.get('v')!r} is not supported (this reader knows 1 and 2)")
    return doc


def decode_tree(data: bytes) -> list[TreeEntry]:
    return read_tree(data).entries


def read_tree(data: bytes) -> Tree:
    """A scope tree with its header: what deciding whether its blobs can be reused needs."""
    doc = _tree_doc(data)
    sanitizer = doc.get("sanitizer") if doc["v"] >= 2 else None
    return Tree(_entries(doc["entries"]), sanitizer if isinstance(sanitizer, int) else None)


def read_tree_rows(data: bytes) -> tuple[int, int | None, list[Any]]:
    """A scope tree's version, sanitizer version (None for a v1 tree) and rows as decoded, unchecked: each
    ``[group, version, kind, resource, name, blob, size, uid, resourceVersion]`` in a v2 tree. For a reader that
    keeps a few fields of every row in its own form (``backup/reuse.py``) without building entries first."""
    doc = _tree_doc(data)
    sanitizer = doc.get("sanitizer") if doc["v"] >= 2 else None
    rows = doc.get("entries")
    if not isinstance(rows, list):
        raise FormatError("scope tree has no list of entries")
    return doc["v"], (sanitizer if isinstance(sanitizer, int) else None), rows


def _entries(rows: list[list[Any]]) -> list[TreeEntry]:
    # A backup reads every entry of its parent's trees: one comprehension, no call per row (TreeEntry.from_list).
    if all(len(row) == 9 for row in rows):
        return [_new_tuple(TreeEntry, (g, r, n, v, k, b, s, u, rv)) for g, v, k, r, n, b, s, u, rv in rows]
    return [TreeEntry.from_list(row) for row in rows]


def tree_blob_ids(data: bytes) -> list[BlobId]:
    """Just the object blob ids of a scope tree: what a reachability check needs, without building entries."""
    return [BlobId(row[5]) for row in _tree_doc(data)["entries"]]


def encode_root(scopes: dict[str, BlobId]) -> tuple[BlobId, bytes]:
    """Root tree: scope ("" for cluster-scoped, else the namespace) -> tree blob id."""
    return canonical_blob({"type": "root", "v": 1, "scopes": dict(sorted(scopes.items()))})


def decode_root(data: bytes) -> dict[str, BlobId]:
    doc = orjson.loads(data)
    if not isinstance(doc, dict) or doc.get("type") != "root":
        raise FormatError("blob is not a root tree")
    return {k: BlobId(v) for k, v in doc["scopes"].items()}
