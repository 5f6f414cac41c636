"""Per-item handling shared by one-shot backups and shards: select, sanitize, hash, pack, remember tree entries."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from chalicelib.backup.listing import Page
from chalicelib.backup.reuse import PriorObjects, blob_digest_of, blob_size, same_state
from chalicelib.backup.reuse import entry as packed_entry
from chalicelib.core.canonical import canonical_json
from chalicelib.core.ids import BlobId
from chalicelib.core.references import ReferenceCollector
from chalicelib.core.resources import Resource
from chalicelib.core.sanitize import sanitize_for_backup
from chalicelib.core.scope import BackupScope
from chalicelib.core.shards import Checkpoint, EntryRows, kind_key
from chalicelib.core.trees import CLUSTER_SCOPE, TreeEntry, encode_root, encode_tree

_new_entry = tuple.__new__  # TreeEntry is a NamedTuple: this skips its keyword-handling constructor


class ItemCollector:
    """Turns pages of raw objects into stored blobs and tree entries, for any set of scopes.

    Entries are kept per resource type, so a type whose list restarted (410) or failed is dropped whole; counts
    (``kinds``, ``objects``) are derived from the entries, so dropped objects are never counted.
    """

    def __init__(
        self,
        scope: BackupScope,
        namespaces: Iterable[str],
        writer: Any,
        *,
        progress: Callable[[int, str], None] | None = None,
        prior: PriorObjects | None = None,
    ) -> None:
        """``prior``: an earlier backup of this cluster; an object it holds unchanged (same uid and resourceVersion)
        reuses its entry, without being sanitized, serialized and hashed again."""
        self.scope = scope
        self.namespaces = frozenset(namespaces)
        self.writer = writer
        self.entries: EntryRows = {}
        self.errors: list[dict[str, str]] = []
        self.bytes_raw = 0
        self.bytes_dedup = 0
        self.objects = 0
        self.reused = 0  # objects whose blob came from ``prior``
        self._progress = progress
        self._prior = prior
        self._unread: list[dict[str, Any]] = []  # see ``take_unread``

    # -- pages --------------------------------------------------------------------------------------------------

    def handle_page(self, page: Page, refs: ReferenceCollector | None, namespace: str | None = None) -> None:
        """Store what ``page`` holds; ``refs`` observes namespaced objects and, for cluster types, decides (auto).
        ``namespace``: the page lists only that namespace, so a restarted list drops only its entries."""
        res = page.resource
        if page.restarted:
            self.drop(res, namespace)
        self._store(res, self._selected(res, page.items, refs), self._sink(res), metadata_only=page.metadata_only)
        self.objects = self._count()
        if self._progress is not None:
            self._progress(self.objects, res.group_resource)

    def _selected(
        self, res: Resource, items: list[dict[str, Any]], refs: ReferenceCollector | None
    ) -> list[tuple[str, dict[str, Any], dict[str, Any]]]:
        """(scope, object, metadata) of the objects of one page that the backup keeps."""
        selected: list[tuple[str, dict[str, Any], dict[str, Any]]] = []
        object_selected = self.scope.object_selected
        if res.namespaced:
            namespaces = self.namespaces
            observe = refs.observer(res) if refs is not None else None
            for obj in items:
                meta = obj.get("metadata") or {}
                ns = meta.get("namespace", "")
                if ns not in namespaces or not object_selected(obj):
                    continue
                if observe is not None:
                    observe(obj)
                selected.append((ns, obj, meta))
            if refs is not None and selected:
                refs.observed(res)
        elif res.group_resource == "namespaces":
            selected = [(CLUSTER_SCOPE, obj, obj.get("metadata") or {}) for obj in items]
        else:
            # Referenced cluster objects (auto mode) are kept whatever their labels: the backup needs them.
            for obj in items:
                if refs.wants(res, obj) if refs is not None else object_selected(obj):
                    selected.append((CLUSTER_SCOPE, obj, obj.get("metadata") or {}))
        return selected

    def take_unread(self) -> list[dict[str, Any]]:
        """The objects of the pages of metadata stored since the last call that are not unchanged, as listed (their
        metadata): ``handle_page`` left them for the caller to read whole and hand over in a page of their own."""
        unread, self._unread = self._unread, []
        return unread

    def _sink(self, res: Resource) -> Callable[[tuple[str, TreeEntry]], None]:
        """Where ``_store`` puts each (scope, entry) of ``res``: here, the type's list in ``entries``."""
        return self.entries.setdefault(res.group_resource, []).append

    def _count(self) -> int:
        return sum(len(rows) for rows in self.entries.values())

    def _held_sink(
        self, res: Resource, append: Callable[[tuple[str, TreeEntry]], None]
    ) -> Callable[[tuple[str, TreeEntry]], None]:
        """Where ``_store`` puts an entry whose blob was held already (the index or this run had it): ``append``."""
        return append

    def _reuse_sink(self, res: Resource) -> Callable[[str, str, bytes], None]:
        """Where ``_store`` puts each unchanged object (scope, uid, the parent's packed entry): here, the entry
        itself, in ``_sink``'s list."""
        append = self._sink(res)
        return lambda scope_key, uid, value: append((scope_key, packed_entry(res, uid, value)))

    def _store(
        self,
        res: Resource,
        selected: list[tuple[str, dict[str, Any], dict[str, Any]]],
        append: Callable[[tuple[str, TreeEntry]], None],
        *,
        metadata_only: bool = False,
    ) -> None:
        """Entries for the selected objects: an unchanged one (``prior``) reuses its entry, the rest are sanitized,
        serialized, hashed and packed. ``metadata_only``: the page was listed as metadata, and what is not unchanged
        is left for ``take_unread``."""
        group, plural, version, kind, api_version = res.group, res.plural, res.version, res.kind, res.api_version
        prior = self._prior.packed(res) if self._prior is not None else None
        add_bytes = self.writer.add_bytes
        reuse = self._reuse_sink(res) if prior else None
        append_held = self._held_sink(res, append)
        holds_digest = _digest_check(self.writer)
        unread = self._unread
        raw = dedup = reused = 0
        for scope_key, obj, meta in selected:
            uid = meta.get("uid") or ""
            rv = meta.get("resourceVersion") or ""
            name = meta.get("name", "")
            if prior:
                value = prior.get(uid)
                # The same uid and resourceVersion is the same object state: the blob made from it last time is
                # this object's blob, provided the repository still holds it. Anything else takes the full path.
                if value is not None and rv and same_state(value, rv, name) and holds_digest(blob_digest_of(value)):
                    size = blob_size(value)
                    raw += size
                    dedup += size
                    reused += 1
                    reuse(scope_key, uid, value)  # type: ignore[misc]
                    continue
            if metadata_only:
                unread.append(obj)  # only its metadata was listed: the caller reads it whole (``take_unread``)
                continue
            data = canonical_json(sanitize_for_backup(obj, kind, api_version))
            bid, new = add_bytes(data)
            size = len(data)
            row = (scope_key, _new_entry(TreeEntry, (group, plural, name, version, kind, bid, size, uid, rv)))
            if new:
                append(row)
            else:
                dedup += size
                append_held(row)
            raw += size
        self.bytes_raw += raw
        self.bytes_dedup += dedup
        self.reused += reused

    def drop(self, res: Resource, namespace: str | None = None) -> None:
        """Forget a type's entries (its list restarted, or failed), in ``namespace`` only when given; their blobs
        stay packed, as harmless garbage."""
        if namespace is None:
            self.entries.pop(res.group_resource, None)
        elif res.group_resource in self.entries:
            self.entries[res.group_resource] = [row for row in self.entries[res.group_resource] if row[0] != namespace]
        # A type that fails after some pages were stored is the last thing a backup hears of it: count now.
        self.objects = self._count()

    def fail(self, res: Resource, error: Exception | str, namespace: str | None = None) -> None:
        self.drop(res, namespace)
        failure = {"resource": res.group_resource, "error": str(error)}
        if namespace is not None:
            failure["namespace"] = namespace
        self.errors.append(failure)

    # -- results ------------------------------------------------------------------------------------------------

    def scope_entries(self) -> dict[str, list[TreeEntry]]:
        scopes: dict[str, list[TreeEntry]] = {}
        for rows in self.entries.values():
            for scope_key, entry in rows:
                scopes.setdefault(scope_key, []).append(entry)
        return scopes

    def kinds(self) -> dict[str, int]:
        counts: Counter[str] = Counter()
        for rows in self.entries.values():
            if not rows:
                continue
            # One type's entries share its group and kind: count them per type, not per object.
            first = rows[0][1]
            if all(entry.group == first.group and entry.kind == first.kind for _, entry in rows):
                counts[kind_key(first.group, first.kind)] += len(rows)
                continue
            for _, entry in rows:
                counts[kind_key(entry.group, entry.kind)] += 1
        return dict(sorted(counts.items()))

    def write_trees(self) -> dict[str, BlobId]:
        """One tree blob per scope that holds objects (an empty scope has no tree); scope -> tree id."""
        trees: dict[str, BlobId] = {}
        for scope_key, entries in self.scope_entries().items():
            trees[scope_key] = self.add_tree(*encode_tree(entries))
        return trees

    def write_root(self, trees: Mapping[str, BlobId]) -> BlobId:
        return self.add_tree(*encode_root(dict(trees)))

    def add_tree(self, tree_id: BlobId, data: bytes) -> BlobId:
        if not self.writer.add(tree_id, data, type="tree"):
            self.bytes_dedup += len(data)
        self.bytes_raw += len(data)
        return tree_id

    # -- checkpoints --------------------------------------------------------------------------------------------

    def restore(self, checkpoint: Checkpoint) -> None:
        """Continue from a checkpoint: its entries, errors and byte counts become this collector's."""
        self.entries = {gr: list(rows) for gr, rows in checkpoint.entries.items()}
        self.errors = [dict(e) for e in checkpoint.errors]
        self.bytes_raw = int(checkpoint.stats.get("bytes_raw", 0))
        self.bytes_dedup = int(checkpoint.stats.get("bytes_deduplicated", 0))
        self.objects = checkpoint.objects


def _digest_check(writer: Any) -> Callable[[bytes], bool]:
    """``writer.holds`` for a blob given by its digest (a ``RepositoryWriter`` answers without a hex id)."""
    holds_digest = getattr(writer, "holds_digest", None)
    if holds_digest is not None:
        return holds_digest  # type: ignore[no-any-return]
    holds = writer.holds
    return lambda digest: bool(holds(digest.hex()))
