"""A one-shot backup's tree entries kept compact (one encoded row per object) until each scope's tree is written."""

from __future__ import annotations

import random
from collections import Counter
from collections.abc import Callable, Iterable, Mapping
from typing import Any

import orjson

from chalicelib.backup.items import ItemCollector
from chalicelib.backup.reuse import DIGEST_SIZE, SCOPE_AT, PriorObjects, blob_digest_of, scope_field
from chalicelib.backup.reuse import entry as packed_entry
from chalicelib.backup.verify import WINDOW_BYTES, EarlyCheck, FrameSample
from chalicelib.core.ids import BlobId
from chalicelib.core.resources import Resource
from chalicelib.core.scope import BackupScope
from chalicelib.core.shards import kind_key
from chalicelib.core.trees import TreeEntry, encode_tree, encode_tree_text

_new_entry = tuple.__new__


class CompactCollector(ItemCollector):
    """An ``ItemCollector`` whose entries cost one string each: ``[name, blob, size, uid, resourceVersion]``
    as JSON, kept per type and scope, joined into its scope's tree one scope at a time, then let go.

    A ``TreeEntry`` with its own strings costs ~600 bytes and keeps the listed page's name, uid and
    resourceVersion strings alive; a row costs ~180. The group, version, kind and resource of a row are its
    type's: ``_store`` makes fresh entries from the type, and ``PriorObjects.for_type`` only hands out entries of
    the type as it is served now. A tree is its rows' text sorted and joined (``encode_tree_text``), or, when that
    order might not be the entries', ``encode_tree`` of the decoded rows: its bytes are the ones an
    ``ItemCollector`` writes for the same objects either way.

    Namespaced types are listed cluster-wide (one list per type, not one per type and namespace), so a namespace is
    complete only when every type is: rows are held until ``write_trees``. As it writes them, it samples the blobs
    the backup reuses from the repository (``reused_sample``), instead of keeping a set of them.
    """

    def __init__(
        self,
        scope: BackupScope,
        namespaces: Iterable[str],
        writer: Any,
        *,
        progress: Callable[[int, str], None] | None = None,
        prior: PriorObjects | None = None,
        index: Mapping[BlobId, Any] | None = None,
        window_bytes: int = WINDOW_BYTES,
        rng: random.Random | None = None,
        early: EarlyCheck | None = None,
    ) -> None:
        """``index``: the repository's index as loaded before the backup, the one ``writer`` was given as what it
        knows; blobs it holds that the trees name are what ``reused_sample`` samples, those of one window of
        ``window_bytes`` per pack (a blob the writer packed as new is never looked up in it). ``early``: the
        sample of the parent's blobs (``prior``'s) being read meanwhile: the sample takes its windows, and a blob
        reused from the parent is in the sample when it is in that one (the window is the same)."""
        super().__init__(scope, namespaces, writer, progress=progress, prior=prior)
        self._rows: dict[str, dict[str, list[str]]] = {}  # group_resource -> scope -> rows
        # group_resource -> scope -> uids of the unchanged objects, whose entries are the parent's (``prior``)
        self._hits: dict[str, dict[str, list[str]]] = {}
        self._types: dict[str, Resource] = {}
        self._counts: dict[str, int] = {}
        self._last: str | None = None  # the type of the page being stored
        starts = early.starts if early is not None else None
        self._sample = (
            FrameSample(index, window_bytes=window_bytes, rng=rng, starts=starts) if index is not None else None
        )
        self._early = early
        self._early_hits: set[bytes] = set()  # digests of reused parent blobs in the early check's sample

    def _sink(self, res: Resource) -> Callable[[tuple[str, TreeEntry]], None]:
        gr = res.group_resource
        self._types[gr] = res
        self._last = gr
        scopes = self._rows.setdefault(gr, {})
        dumps = orjson.dumps

        def add(row: tuple[str, TreeEntry]) -> None:
            scope_key, entry = row
            rows = scopes.get(scope_key)
            if rows is None:
                rows = scopes[scope_key] = []
            # As str: the bytes orjson returns keep its whole 4 KiB output buffer allocated, a str is exact.
            rows.append(dumps((entry[2], entry[5], entry[6], entry[7], entry[8])).decode())

        return add

    def _held_sink(
        self, res: Resource, append: Callable[[tuple[str, TreeEntry]], None]
    ) -> Callable[[tuple[str, TreeEntry]], None]:
        # A sixth field marks the rows whose blob was held already: only their blobs can be in the index, so only
        # they are looked up there for the reuse sample (a new blob never is).
        scopes = self._rows.setdefault(res.group_resource, {})
        dumps = orjson.dumps

        def add(row: tuple[str, TreeEntry]) -> None:
            scope_key, entry = row
            rows = scopes.get(scope_key)
            if rows is None:
                rows = scopes[scope_key] = []
            rows.append(dumps((entry[2], entry[5], entry[6], entry[7], entry[8], 1)).decode())

        return add

    def _reuse_sink(self, res: Resource) -> Callable[[str, str, bytes], None]:
        gr = res.group_resource
        self._types[gr] = res
        scopes = self._hits.setdefault(gr, {})

        def add(scope_key: str, uid: str, _: bytes) -> None:
            uids = scopes.get(scope_key)
            if uids is None:
                uids = scopes[scope_key] = []
            uids.append(uid)

        return add

    def _count(self) -> int:
        if self._last is not None:
            self._recount(self._last)
        return sum(self._counts.values())

    def _recount(self, gr: str) -> None:
        self._counts[gr] = sum(len(rows) for rows in self._rows.get(gr, {}).values()) + sum(
            len(uids) for uids in self._hits.get(gr, {}).values()
        )

    def drop(self, res: Resource, namespace: str | None = None) -> None:
        gr = res.group_resource
        for held in (self._rows, self._hits):
            if namespace is None:
                held.pop(gr, None)
            else:
                held.get(gr, {}).pop(namespace, None)
        self._recount(gr)
        self.objects = sum(self._counts.values())

    def kinds(self) -> dict[str, int]:
        counts: Counter[str] = Counter()
        for gr, count in self._counts.items():
            if count:
                res = self._types[gr]
                counts[kind_key(res.group, res.kind)] += count
        return dict(sorted(counts.items()))

    def _scope_keys(self) -> list[str]:
        held = (self._rows, self._hits)
        return sorted({key for by_type in held for scopes in by_type.values() for key, rows in scopes.items() if rows})

    def _take(
        self, scope_key: str
    ) -> tuple[list[tuple[str, str, str, str, list[str]]], list[BlobId | bytes], list[bytes]]:
        """The rows of one scope as ``encode_tree_text`` takes them (per type, each entry's JSON text), the blobs
        among them that were held before this run (as ids), and the digests of those reused from the parent: the
        scope's rows are let go."""
        types: list[tuple[str, str, str, str, list[str]]] = []
        held: list[BlobId | bytes] = []
        reused: list[bytes] = []
        loads, dumps = orjson.loads, orjson.dumps
        for gr, scopes in self._rows.items():
            rows = scopes.pop(scope_key, None)
            if not rows:
                continue
            res = self._types[gr]
            texts: list[str] = []
            for row in rows:
                if row[-2] != '"':  # not a resourceVersion last: maybe the sixth field, its blob was held already
                    fields = loads(row)
                    if len(fields) == 6:
                        held.append(fields[1])
                        row = dumps(fields[:5]).decode()
                texts.append(row)
            types.append((res.group, res.version, res.kind, res.plural, texts))
        for gr, scopes in self._hits.items():
            uids = scopes.pop(scope_key, None)
            if uids:
                res = self._types[gr]
                packed = self._packed(res)
                texts = []
                for uid in uids:
                    value = packed[uid]
                    e = packed_entry(res, uid, value)
                    texts.append(dumps((e.name, e.blob, e.size, uid, e.resource_version)).decode())
                    reused.append(blob_digest_of(value))
                types.append((res.group, res.version, res.kind, res.plural, texts))
        return types, held, reused

    @staticmethod
    def _encode(types: list[tuple[str, str, str, str, list[str]]]) -> tuple[BlobId, bytes]:
        """The scope tree of these rows: joined as text, or, when their text's order might not be their entries'
        (``encode_tree_text``), decoded into entries and encoded (the same bytes either way)."""
        built = encode_tree_text(types)
        if built is not None:
            return built
        loads = orjson.loads
        entries = []
        for g, v, k, r, rows in types:
            for row in rows:
                n, b, s, u, rv = loads(row)
                entries.append(_new_entry(TreeEntry, (g, r, n, v, k, b, s, u, rv)))
        return encode_tree(entries)

    def _packed(self, res: Resource) -> dict[str, bytes]:
        packed = self._prior.packed(res) if self._prior is not None else None
        assert packed is not None, "unchanged objects of a type the parent has no entries of"
        return packed

    def scope_entries(self) -> dict[str, list[TreeEntry]]:
        """Every scope's entries, decoded (all at once: ``write_trees`` is what keeps memory low)."""
        scopes: dict[str, list[TreeEntry]] = {}
        loads = orjson.loads
        for gr, by_scope in self._rows.items():
            res = self._types[gr]
            g, r, v, k = res.group, res.plural, res.version, res.kind
            for scope_key, rows in by_scope.items():
                for row in rows:
                    n, b, s, u, rv, *_ = loads(row)
                    scopes.setdefault(scope_key, []).append(_new_entry(TreeEntry, (g, r, n, v, k, b, s, u, rv)))
        for gr, by_scope in self._hits.items():
            res = self._types[gr]
            packed = self._packed(res)
            for scope_key, uids in by_scope.items():
                scopes.setdefault(scope_key, []).extend(packed_entry(res, uid, packed[uid]) for uid in uids)
        return scopes

    def write_trees(self) -> dict[str, BlobId]:
        """One tree blob per scope that holds objects, written one scope at a time; the rows are gone afterwards
        (``kinds`` and ``objects`` still count them). A scope holding exactly its tree's objects in the parent
        backup, every one unchanged, has that tree again: it is named, not decoded, encoded and hashed again."""
        trees: dict[str, BlobId] = {}
        for scope_key in self._scope_keys():
            tree = self._parent_tree(scope_key)
            if tree is not None:
                trees[scope_key] = tree
                continue
            types, held, reused = self._take(scope_key)
            self._offer(held)
            self._offer_reused(reused)
            trees[scope_key] = self.add_tree(*self._encode(types))
        self._rows.clear()
        self._hits.clear()
        return trees

    def _parent_tree(self, scope_key: str) -> BlobId | None:
        """The parent's tree of ``scope_key`` when this backup's entries of the scope are exactly its rows (then
        taken, their reused blobs offered to the sample), else None (nothing taken).

        Every object of the scope is unchanged, so each entry is a row of a parent tree; each came from this
        scope's tree (its packed entry says so), no two are the same (type, uid), and there are as many as the tree
        has rows, every one of which was kept: the entries are the tree's rows, so their tree is the parent's,
        byte for byte (trees are canonical, and the parent's is of this tree version and sanitizer version)."""
        tree = self._prior.parent_tree(scope_key) if self._prior is not None else None
        if tree is None or any(scopes.get(scope_key) for scopes in self._rows.values()):
            return None
        if not self.writer.holds(tree.tree_id):
            return None  # the repository lost it: write it again from the entries
        hits = [(gr, scopes[scope_key]) for gr, scopes in self._hits.items() if scopes.get(scope_key)]
        if sum(len(uids) for _, uids in hits) != tree.rows:
            return None
        digests: list[bytes] = []
        number = scope_field(tree.number)
        for gr, uids in hits:
            packed = self._packed(self._types[gr])
            values = [packed[uid] for uid in uids]
            # One loop in C each, not a call per entry: every entry of the parent's tree of this scope, none twice.
            if len(set(uids)) != len(uids) or {value[SCOPE_AT : SCOPE_AT + 2] for value in values} != {number}:
                return None
            digests.extend([value[:DIGEST_SIZE] for value in values])
        for scopes in self._hits.values():
            scopes.pop(scope_key, None)
        self._offer_reused(digests)
        # Held already (checked above): what writing it again would count, without its bytes.
        self.bytes_raw += tree.size
        self.bytes_dedup += tree.size
        return tree.tree_id

    def _offer(self, blobs: Iterable[BlobId | bytes]) -> None:
        """Offer the blobs (given as ids or as digests) to the reuse sample: it keeps those of ``index`` it picks."""
        if self._sample is not None:
            self._sample.offer_all(blobs)

    def _offer_reused(self, digests: list[bytes]) -> None:
        """Offer the digests of blobs reused from the parent: with an early check, which offered each of them in
        the same windows, those in its sample are this sample's (one set intersection, not a lookup each)."""
        sampled = self._early.sampled() if self._early is not None else None
        if sampled is None:
            self._offer(digests)
        elif self._sample is not None:
            self._early_hits.update(sampled.intersection(digests))

    def reused_sample(self) -> list[BlobId]:
        """The ``FrameSample`` of the blobs the trees name that ``index`` held (per pack, those of one window of
        frames)."""
        if self._sample is None:
            return []
        return sorted({*self._sample.blobs(), *(BlobId(digest.hex()) for digest in self._early_hits)})
