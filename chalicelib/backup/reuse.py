"""Unchanged objects: the parent backup's tree entries by uid, so an object listed again unchanged reuses its blob."""

from __future__ import annotations

import struct
from collections.abc import Iterable, Iterator, Mapping
from typing import Any

from chalicelib.core.ids import BlobId
from chalicelib.core.resources import Resource
from chalicelib.core.sanitize import SANITIZER_VERSION
from chalicelib.core.trees import TreeEntry, read_tree_rows

# After the blob's 32-byte digest: its size and the length of the resourceVersion that follows; the name is the rest.
_HEAD = struct.Struct("<IB")
_DIGEST = 32
_REST = _DIGEST + _HEAD.size
_new_entry = tuple.__new__

_TypeKey = tuple[str, str, str, str]  # group, resource, version, kind


class PriorObjects:
    """Tree entries of an earlier backup of the same cluster, by resource type and uid.

    An object is the same as an entry when its uid and resourceVersion are: the API server gives every write of
    an object a new resourceVersion, and a recreated object a new uid. Only entries made by this sanitizer version
    are kept, and a type's entries count only while its served version and kind are the entry's (the blob holds
    ``apiVersion`` and ``kind``).

    Kept compact, as an incremental backup holds its parent's every entry for its whole run: per type (group,
    resource, version, kind), uid -> one ``bytes`` of the blob's digest, its size, the resourceVersion and the name
    (~220 bytes an object, where a ``TreeEntry`` with its decoded row cost ~670). ``for_type`` hands out entries
    decoded one at a time, when an object's uid is looked up.
    """

    def __init__(self, entries: Iterable[TreeEntry] = ()) -> None:
        self._types: dict[_TypeKey, dict[str, bytes]] = {}
        self.add(entries)

    def add(self, entries: Iterable[TreeEntry]) -> None:
        self.add_rows([e.group, e.version, e.kind, e.resource, e.name, e.blob, e.size, e.uid, e.resource_version]
                      for e in entries)

    def add_rows(self, rows: Iterable[Any]) -> None:
        """Rows as a v2 scope tree holds them: ``[group, version, kind, resource, name, blob, size, uid, rv]``.

        A row this cannot keep exactly (not nine fields, no uid or resourceVersion, a blob that is not a canonical
        id, a size or resourceVersion beyond its field) is left out: its object takes the full path.
        """
        types = self._types
        last: _TypeKey | None = None
        table: dict[str, bytes] = {}
        head = _HEAD.pack
        for row in rows:
            if type(row) is not list or len(row) != 9:
                continue
            group, version, kind, resource, name, blob, size, uid, rv = row
            if not uid or not rv or type(uid) is not str or type(size) is not int:
                continue
            try:
                key = (group, resource, version, kind)
                if key != last:
                    table = types.setdefault(key, {})  # rows of one type come together: one lookup per run of them
                    last = key
                digest = bytes.fromhex(blob)
                rv_bytes = rv.encode()
                value = digest + head(size, len(rv_bytes)) + rv_bytes + name.encode()
            except (AttributeError, TypeError, ValueError, struct.error):
                continue
            # fromhex also reads upper case and spaces: only the canonical spelling names a blob.
            if len(digest) == _DIGEST and digest.hex() == blob:
                table[uid] = value

    def for_type(self, res: Resource) -> Mapping[str, TreeEntry]:
        """uid -> entry for ``res`` as it is served now; a hit still needs the same resourceVersion and name."""
        table = self._types.get((res.group, res.plural, res.version, res.kind))
        if not table:
            return {}
        return _TypeEntries(res, table)

    def __len__(self) -> int:
        return sum(len(t) for t in self._types.values())


class _TypeEntries(Mapping[str, TreeEntry]):
    """One type's packed entries read as uid -> ``TreeEntry``, each decoded when it is looked up."""

    def __init__(self, res: Resource, table: dict[str, bytes]) -> None:
        self._type = (res.group, res.plural, res.version, res.kind)
        self._table = table

    def get(self, uid: str, default: TreeEntry | None = None) -> TreeEntry | None:  # type: ignore[override]
        value = self._table.get(uid)
        return default if value is None else self._entry(uid, value)

    def __getitem__(self, uid: str) -> TreeEntry:
        value = self._table.get(uid)
        if value is None:
            raise KeyError(uid)
        return self._entry(uid, value)

    def _entry(self, uid: str, value: bytes) -> TreeEntry:
        size, rv_length = _HEAD.unpack_from(value, _DIGEST)
        name_at = _REST + rv_length
        group, resource, version, kind = self._type
        blob = BlobId(value[:_DIGEST].hex())
        rv, name = value[_REST:name_at].decode(), value[name_at:].decode()
        return _new_entry(TreeEntry, (group, resource, name, version, kind, blob, size, uid, rv))

    def __iter__(self) -> Iterator[str]:
        return iter(self._table)

    def __len__(self) -> int:
        return len(self._table)


def load_prior(reader: Any, manifest: Any, cluster_uid: str | None) -> PriorObjects | None:
    """The entries of ``manifest``'s backup when it was taken of this very cluster, else None.

    A tree written by another sanitizer version, or a v1 tree (no uids), contributes nothing. Raises the reader's
    errors: a parent that cannot be read is not a reason to guess. Each tree's rows are kept compact as it is read,
    then let go.
    """
    if not cluster_uid or getattr(manifest, "cluster_uid", None) != cluster_uid:
        return None
    prior = PriorObjects()
    root = reader.root(manifest)
    where = f"trees of backup {manifest.cluster}/{manifest.backup_id}"
    for _, data in reader.read_blobs(root.values(), where=where):
        sanitizer, rows = read_tree_rows(data)
        if sanitizer == SANITIZER_VERSION:
            prior.add_rows(rows)
    return prior
