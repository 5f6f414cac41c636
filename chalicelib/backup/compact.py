"""A one-shot backup's tree entries kept compact (one encoded row per object) until each scope's tree is written."""

from __future__ import annotations

import random
from collections import Counter
from collections.abc import Callable, Iterable, Mapping
from typing import Any

import orjson

from chalicelib.backup.items import ItemCollector
from chalicelib.backup.reuse import PriorObjects
from chalicelib.backup.verify import SAMPLE_PER_PACK
from chalicelib.core.ids import BlobId, PackId
from chalicelib.core.resources import Resource
from chalicelib.core.scope import BackupScope
from chalicelib.core.shards import kind_key
from chalicelib.core.trees import TreeEntry, encode_tree

_new_entry = tuple.__new__


class CompactCollector(ItemCollector):
    """An ``ItemCollector`` whose entries cost one string each: ``[name, blob, size, uid, resourceVersion]``
    as JSON, kept per type and scope, decoded back into ``TreeEntry`` values one scope at a time when its tree is
    written, then let go.

    A ``TreeEntry`` with its own strings costs ~600 bytes and keeps the listed page's name, uid and
    resourceVersion strings alive; a row costs ~180. The group, version, kind and resource of a row are its
    type's: ``_store`` makes fresh entries from the type, and ``PriorObjects.for_type`` only hands out entries of
    the type as it is served now. Trees are encoded by ``encode_tree`` from the decoded entries, so their bytes are
    the ones an ``ItemCollector`` writes for the same objects.

    Namespaced types are listed cluster-wide (one list per type, not one per type and namespace), so a namespace is
    complete only when every type is: rows are held until ``write_trees``. While it decodes, it samples the blobs
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
        per_pack: int = SAMPLE_PER_PACK,
        rng: random.Random | None = None,
    ) -> None:
        """``index``: the repository's index as loaded before the backup; blobs it holds that the trees name are
        what ``reused_sample`` samples, up to ``per_pack`` per pack."""
        super().__init__(scope, namespaces, writer, progress=progress, prior=prior)
        self._rows: dict[str, dict[str, list[str]]] = {}  # group_resource -> scope -> rows
        self._types: dict[str, Resource] = {}
        self._counts: dict[str, int] = {}
        self._last: str | None = None  # the type of the page being stored
        self._index = index
        self._sample = _PackSample(per_pack, rng or random.Random())

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

    def _count(self) -> int:
        if self._last is not None:
            self._recount(self._last)
        return sum(self._counts.values())

    def _recount(self, gr: str) -> None:
        self._counts[gr] = sum(len(rows) for rows in self._rows.get(gr, {}).values())

    def drop(self, res: Resource, namespace: str | None = None) -> None:
        gr = res.group_resource
        if namespace is None:
            self._rows.pop(gr, None)
        else:
            self._rows.get(gr, {}).pop(namespace, None)
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
        return sorted({scope_key for scopes in self._rows.values() for scope_key, rows in scopes.items() if rows})

    def _take(self, scope_key: str) -> list[TreeEntry]:
        """The entries of one scope, decoded; their rows are let go."""
        entries: list[TreeEntry] = []
        loads = orjson.loads
        for gr, scopes in self._rows.items():
            rows = scopes.pop(scope_key, None)
            if not rows:
                continue
            res = self._types[gr]
            g, r, v, k = res.group, res.plural, res.version, res.kind
            for row in rows:
                n, b, s, u, rv = loads(row)
                entries.append(_new_entry(TreeEntry, (g, r, n, v, k, b, s, u, rv)))
        return entries

    def scope_entries(self) -> dict[str, list[TreeEntry]]:
        """Every scope's entries, decoded (all at once: ``write_trees`` is what keeps memory low)."""
        scopes: dict[str, list[TreeEntry]] = {}
        loads = orjson.loads
        for gr, by_scope in self._rows.items():
            res = self._types[gr]
            g, r, v, k = res.group, res.plural, res.version, res.kind
            for scope_key, rows in by_scope.items():
                for row in rows:
                    n, b, s, u, rv = loads(row)
                    scopes.setdefault(scope_key, []).append(_new_entry(TreeEntry, (g, r, n, v, k, b, s, u, rv)))
        return scopes

    def write_trees(self) -> dict[str, BlobId]:
        """One tree blob per scope that holds objects, written one scope at a time; the rows are gone afterwards
        (``kinds`` and ``objects`` still count them)."""
        trees: dict[str, BlobId] = {}
        pack_of = _pack_lookup(self._index)
        offer = self._sample.offer
        for scope_key in self._scope_keys():
            entries = self._take(scope_key)
            if pack_of is not None:
                for entry in entries:
                    pack = pack_of(entry.blob)
                    if pack is not None:
                        offer(pack, entry.blob)
            trees[scope_key] = self.add_tree(*encode_tree(entries))
        self._rows.clear()
        return trees

    def reused_sample(self) -> list[BlobId]:
        """Up to ``per_pack`` distinct blobs per pack, at random, of those the trees name that ``index`` held."""
        return self._sample.blobs()


def _pack_lookup(index: Mapping[BlobId, Any] | None) -> Callable[[BlobId], PackId | None] | None:
    """blob -> its pack in ``index``: an ``IndexMap`` answers without decoding the whole location."""
    if index is None:
        return None
    pack_of = getattr(index, "pack_of", None)
    if pack_of is not None:
        return pack_of  # type: ignore[no-any-return]

    def lookup(blob: BlobId) -> PackId | None:
        where = index.get(blob)
        return where.pack if where is not None else None

    return lookup


class _PackSample:
    """A reservoir of blob ids per pack: a uniform sample of what was offered, in memory bounded by the packs."""

    def __init__(self, per_pack: int, rng: random.Random) -> None:
        self._per_pack = per_pack
        self._rng = rng
        self._packs: dict[PackId, tuple[list[int], list[BlobId]]] = {}

    def offer(self, pack: PackId, blob: BlobId) -> None:
        seen, kept = self._packs.setdefault(pack, ([0], []))
        seen[0] += 1
        if len(kept) < self._per_pack:
            if blob not in kept:
                kept.append(blob)
            return
        slot = self._rng.randrange(seen[0])
        if slot < self._per_pack and blob not in kept:
            kept[slot] = blob

    def blobs(self) -> list[BlobId]:
        return sorted({blob for _, kept in self._packs.values() for blob in kept})
