"""Unchanged objects: the parent backup's tree entries by uid, so an object listed again unchanged reuses its blob."""

from __future__ import annotations

import struct
from collections.abc import Iterable, Iterator, Mapping
from typing import Any, NamedTuple

from chalicelib.core.ids import BlobId
from chalicelib.core.resources import Resource
from chalicelib.core.sanitize import SANITIZER_VERSION
from chalicelib.core.trees import TREE_VERSION, TreeEntry, read_tree_rows

# After the blob's 32-byte digest: its size, the length of the resourceVersion that follows and the number of the
# parent's scope tree the row came from (``NO_SCOPE``: unknown); the name is the rest.
_HEAD = struct.Struct("<IBH")
_SIZE = struct.Struct("<I")
DIGEST_SIZE = 32  # bytes of the blob's digest, first in a packed entry
RV_LENGTH_AT = DIGEST_SIZE + 4  # the byte holding the resourceVersion's length
SCOPE_AT = RV_LENGTH_AT + 1  # the two bytes holding the scope tree's number
STATE_AT = DIGEST_SIZE + _HEAD.size  # resourceVersion then name: what a listed object is compared with
NO_SCOPE = 0xFFFF
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
        self._trees: dict[str, ParentTree] = {}
        self.add(entries)

    def add(self, entries: Iterable[TreeEntry]) -> None:
        self.add_rows(
            [e.group, e.version, e.kind, e.resource, e.name, e.blob, e.size, e.uid, e.resource_version] for e in entries
        )

    def add_tree(self, scope: str, tree_id: BlobId, size: int, rows: list[Any]) -> None:
        """The rows of the parent's tree of ``scope`` (``tree_id``, ``size`` bytes): ``add_rows``, and what
        ``parent_tree`` needs to tell that a scope holds exactly these rows again."""
        number = len(self._trees)
        kept = self.add_rows(rows, number if number < NO_SCOPE else NO_SCOPE)
        if number < NO_SCOPE:
            # Every row kept or none of this tree is reusable whole: a row left out has no entry a hit could match.
            whole = kept == len(rows)
            self._trees[scope] = ParentTree(tree_id, size, len(rows) if whole else -1, number)

    def parent_tree(self, scope: str) -> ParentTree | None:
        """The parent's tree of ``scope``, when it was read whole by ``add_tree``."""
        tree = self._trees.get(scope)
        return tree if tree is not None and tree.rows >= 0 else None

    def add_rows(self, rows: Iterable[Any], scope: int = NO_SCOPE) -> int:
        """Rows as a v2 scope tree holds them: ``[group, version, kind, resource, name, blob, size, uid, rv]``, of
        the parent's scope tree numbered ``scope``; returns how many were kept.

        A row this cannot keep exactly (not nine fields, no uid or resourceVersion, a blob that is not a canonical
        id, a size or resourceVersion beyond its field) is left out: its object takes the full path.
        """
        types = self._types
        last: _TypeKey | None = None
        table: dict[str, bytes] = {}
        head = _HEAD.pack
        kept = 0
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
                value = digest + head(size, len(rv_bytes), scope) + rv_bytes + name.encode()
            except (AttributeError, TypeError, ValueError, struct.error):
                continue
            # fromhex also reads upper case and spaces: only the canonical spelling names a blob.
            if len(digest) == DIGEST_SIZE and digest.hex() == blob:
                table[uid] = value
                kept += 1
        return kept

    def for_type(self, res: Resource) -> Mapping[str, TreeEntry]:
        """uid -> entry for ``res`` as it is served now; a hit still needs the same resourceVersion and name."""
        table = self._types.get((res.group, res.plural, res.version, res.kind))
        if not table:
            return {}
        return _TypeEntries(res, table)

    def packed(self, res: Resource) -> dict[str, bytes] | None:
        """uid -> packed entry for ``res`` as it is served now (None: no entry): the per-object path of a backup
        compares a listed object with ``same_state`` and reads the entry only on a hit (``entry``, ``blob_size``)."""
        return self._types.get((res.group, res.plural, res.version, res.kind)) or None

    def __len__(self) -> int:
        return sum(len(t) for t in self._types.values())

    def tree_ids(self) -> list[BlobId]:
        """The parent's scope trees whose rows ``add_tree`` kept."""
        return [tree.tree_id for tree in self._trees.values()]

    def digests(self) -> Iterator[bytes]:
        """The 32-byte digest of every entry's blob (an entry per object: a blob shared by objects comes again)."""
        for table in self._types.values():
            for value in table.values():
                yield value[:DIGEST_SIZE]


class ParentTree(NamedTuple):
    """One scope tree of the parent backup: its id and size, its rows (all kept), its number in packed entries."""

    tree_id: BlobId
    size: int
    rows: int
    number: int


def same_state(value: bytes, rv: str, name: str) -> bool:
    """Whether a packed entry records this resourceVersion and name: with its uid, the object's state is the one
    its blob was made from."""
    rv_bytes = rv.encode()
    return value[RV_LENGTH_AT] == len(rv_bytes) and value[STATE_AT:] == rv_bytes + name.encode()


def blob_size(value: bytes) -> int:
    """The blob size a packed entry records."""
    return int(_SIZE.unpack_from(value, DIGEST_SIZE)[0])


def blob_digest_of(value: bytes) -> bytes:
    """The 32-byte digest of the blob a packed entry names."""
    return value[:DIGEST_SIZE]


def scope_field(number: int) -> bytes:
    """The bytes ``value[SCOPE_AT : SCOPE_AT + 2]`` of a packed entry that came from the parent's scope tree
    ``number`` (``NO_SCOPE``: unknown)."""
    return number.to_bytes(2, "little")


def entry(res: Resource, uid: str, value: bytes) -> TreeEntry:
    """The tree entry a packed entry of ``res`` stands for."""
    size, rv_length, _ = _HEAD.unpack_from(value, DIGEST_SIZE)
    name_at = STATE_AT + rv_length
    blob = BlobId(value[:DIGEST_SIZE].hex())
    rv, name = value[STATE_AT:name_at].decode(), value[name_at:].decode()
    return _new_entry(TreeEntry, (res.group, res.plural, name, res.version, res.kind, blob, size, uid, rv))


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
        size, rv_length, _ = _HEAD.unpack_from(value, DIGEST_SIZE)
        name_at = STATE_AT + rv_length
        group, resource, version, kind = self._type
        blob = BlobId(value[:DIGEST_SIZE].hex())
        rv, name = value[STATE_AT:name_at].decode(), value[name_at:].decode()
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
    root = reader.root(manifest, with_trees=True)
    scopes = {tree: scope for scope, tree in root.items()}
    where = f"trees of backup {manifest.cluster}/{manifest.backup_id}"
    for tree_id, data in reader.read_blobs(root.values(), where=where):
        version, sanitizer, rows = read_tree_rows(data)
        if sanitizer != SANITIZER_VERSION:
            continue
        if version == TREE_VERSION:
            prior.add_tree(scopes[tree_id], tree_id, len(data), rows)
        else:
            prior.add_rows(rows)  # its entries are reused, but a tree of another version is not this one's
    return prior
