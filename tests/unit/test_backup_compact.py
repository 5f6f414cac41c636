"""CompactCollector: the one-shot pipeline's entries as encoded rows, counted, dropped, written as ItemCollector's."""

from __future__ import annotations

import random
from typing import Any

from chalicelib.backup.compact import CompactCollector
from chalicelib.backup.items import ItemCollector
from chalicelib.backup.listing import Page
from chalicelib.backup.reuse import PriorObjects
from chalicelib.core.index_format import IndexEntry
from chalicelib.core.scope import BackupScope
from chalicelib.core.trees import decode_tree
from chalicelib.repository.index_map import IndexMap
from tests.support.resources import CM, DEPLOY, NS
from tests.unit.test_backup_reuse import MemoryWriter, _entries


def _obj(name: str, ns: str, *, uid: str | None = None, rv: str = "1", data: str = "x") -> dict[str, Any]:
    return {
        "metadata": {"name": name, "namespace": ns, "uid": uid or f"uid-{ns}-{name}", "resourceVersion": rv},
        "data": {"k": data},
    }


def _pages() -> list[Page]:
    return [
        Page(NS, [{"metadata": {"name": n, "uid": f"ns-{n}", "resourceVersion": "1"}} for n in ("a", "b")]),
        Page(CM, [_obj("one", "a"), _obj("two", "b"), _obj("skip", "elsewhere")]),
        Page(DEPLOY, [_obj("web", "a"), _obj("api", "b")]),
        Page(CM, [_obj("three", "a")]),
    ]


def _both(**kwargs: Any) -> tuple[ItemCollector, CompactCollector]:
    full = ItemCollector(BackupScope(), ["a", "b"], MemoryWriter(), **kwargs)
    compact = CompactCollector(BackupScope(), ["a", "b"], MemoryWriter(), **kwargs)
    for collector in (full, compact):
        for page in _pages():
            collector.handle_page(page, None)
    return full, compact


def test_counts_kinds_and_trees_are_the_item_collectors():
    full, compact = _both()
    assert compact.objects == full.objects == 7
    assert compact.kinds() == full.kinds() == {"ConfigMap": 3, "Namespace": 2, "apps/Deployment": 2}
    compact_scopes = {k: sorted(v) for k, v in compact.scope_entries().items()}
    assert compact_scopes == {k: sorted(v) for k, v in full.scope_entries().items()}
    trees = compact.write_trees()
    assert trees == full.write_trees()
    assert compact.write_root(trees) == full.write_root(trees)
    # Written trees let their rows go; the counts stay for the manifest.
    assert compact.scope_entries() == {}
    assert compact.objects == 7 and compact.kinds()["ConfigMap"] == 3
    assert compact.bytes_raw == full.bytes_raw and compact.bytes_dedup == full.bytes_dedup


def test_a_restarted_or_failed_type_is_dropped_whole_or_in_one_namespace():
    full, compact = _both()
    for collector in (full, compact):
        collector.handle_page(Page(CM, [_obj("again", "a")], restarted=True), None)
        collector.drop(DEPLOY, "b")
    assert compact.objects == full.objects == 2 + 1 + 1
    assert compact.kinds() == full.kinds()
    assert compact.write_trees() == full.write_trees()
    compact.fail(CM, "boom")
    assert compact.kinds() == {"Namespace": 2, "apps/Deployment": 1}
    assert compact.errors == [{"resource": "configmaps", "error": "boom"}]


def test_unchanged_objects_reuse_the_prior_entry_in_the_compact_rows_too():
    first = ItemCollector(BackupScope(), ["a", "b"], MemoryWriter())
    for page in _pages():
        first.handle_page(page, None)
    held = {e.blob for e in _entries(first)}
    prior = PriorObjects(_entries(first))
    writer = MemoryWriter(held)
    compact = CompactCollector(BackupScope(), ["a", "b"], writer, prior=prior)
    for page in _pages():
        compact.handle_page(page, None)
    assert compact.reused == 7 and writer.added == {}
    assert compact.write_trees() == first.write_trees()


def test_the_reuse_sample_names_only_indexed_blobs_and_one_window_per_pack():
    full, _ = _both()
    blobs = sorted({e.blob for e in _entries(full)})
    # Every blob but the last is "in the repository", spread over two packs, one frame of 100 bytes each.
    index = IndexMap()
    for i, b in enumerate(blobs[:-1]):
        index.add(b, IndexEntry(f"{i % 2}" * 64, "data", i * 100, 100, 1, 0, 1))
    # The writer knows what the index holds, as a backup's writer does (it is given the same index).
    compact = CompactCollector(
        BackupScope(), ["a", "b"], MemoryWriter(set(index)), index=index, window_bytes=250, rng=random.Random(1)
    )
    for page in _pages():
        compact.handle_page(page, None)
    trees = compact.write_trees()
    sample = compact.reused_sample()
    assert set(sample) <= set(index) and blobs[-1] not in sample
    assert set(trees.values()).isdisjoint(sample)
    for pack in ("0" * 64, "1" * 64):
        frames = sorted(index[b].frame_offset for b in sample if index[b].pack == pack)
        assert frames and frames[-1] - frames[0] < 250, "the blobs of one window of each pack"


def test_tree_rows_decode_into_the_entries_the_item_collector_made():
    full, compact = _both()
    writer = compact.writer
    trees = compact.write_trees()
    for scope_key, tree_id in trees.items():
        assert sorted(decode_tree(writer.added[tree_id])) == sorted(full.scope_entries()[scope_key])


def test_trees_are_joined_as_text_and_decoded_only_when_the_text_order_might_differ(monkeypatch):
    import chalicelib.backup.compact as compact_module

    decoded: list[int] = []
    encode = compact_module.encode_tree

    def counting(entries: Any) -> Any:
        decoded.append(len(entries))
        return encode(entries)

    monkeypatch.setattr(compact_module, "encode_tree", counting)
    full, compact = _both()
    assert compact.write_trees() == full.write_trees() and decoded == []
    # A name with a space sorts otherwise as text: that scope's tree is made from entries, the same bytes.
    odd = [_obj("web app", "a"), _obj("web", "a", rv="3")]
    full, compact = _both()
    for collector in (full, compact):
        collector.handle_page(Page(CM, odd), None)
    assert compact.write_trees() == full.write_trees() and decoded == [5]


def test_held_blobs_are_offered_to_the_sample_and_left_out_of_the_tree_rows():
    full, _ = _both()
    index = IndexMap()
    blobs = sorted({e.blob for e in _entries(full)})
    for i, b in enumerate(blobs):
        index.add(b, IndexEntry("0" * 64, "data", i * 10, 10, 1, 0, 1))
    compact = CompactCollector(BackupScope(), ["a", "b"], MemoryWriter(set(index)), index=index, window_bytes=1 << 20)
    for page in _pages():
        compact.handle_page(page, None)
    assert compact.write_trees() == full.write_trees()
    assert compact.reused_sample() == blobs
