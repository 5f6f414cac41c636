"""A scope holding exactly its parent tree's objects, all unchanged, names the parent's tree: nothing is encoded."""

from __future__ import annotations

import random
from typing import Any

import pytest

from chalicelib.backup import compact as compact_module
from chalicelib.backup.compact import CompactCollector
from chalicelib.backup.items import ItemCollector
from chalicelib.backup.listing import Page
from chalicelib.backup.reuse import load_prior
from chalicelib.core.canonical import blob_id
from chalicelib.core.index_format import IndexEntry
from chalicelib.core.scope import BackupScope
from tests.support.resources import CM, DEPLOY, NS
from tests.unit.test_backup_reuse import MemoryWriter, ParentManifest


def _obj(name: str, ns: str, *, rv: str = "1", data: str = "x", uid: str | None = None) -> dict[str, Any]:
    meta = {"name": name, "namespace": ns, "uid": uid or f"uid-{ns}-{name}", "resourceVersion": rv}
    return {"metadata": meta, "data": {"k": data}}


def _pages(**changes: dict[str, Any]) -> list[Page]:
    """Namespaces a and b; ``changes`` replaces (a dict) or, given {}, removes the object of that name."""
    cms = [_obj("one", "a"), _obj("two", "a"), _obj("three", "b")]
    deploys = [_obj("web", "a"), _obj("api", "b")]

    def changed(objs: list[dict[str, Any]]) -> list[dict[str, Any]]:
        out = []
        for obj in objs:
            new = changes.get(obj["metadata"]["name"], obj)
            if new:
                out.append(new)
        return out

    namespaces = [{"metadata": {"name": n, "uid": f"ns-{n}", "resourceVersion": "1"}} for n in ("a", "b")]
    return [Page(NS, namespaces), Page(CM, changed(cms)), Page(DEPLOY, changed(deploys))]


class TreeReader:
    """The parent backup: its scope trees, served as RepositoryReader serves them."""

    def __init__(self, trees: dict[str, str], blobs: dict[str, bytes]) -> None:
        self.trees = trees
        self.blobs = blobs

    def root(self, manifest: Any, *, with_trees: bool = False) -> dict[str, str]:
        return dict(self.trees)

    def read_blobs(self, ids: Any, *, where: str | None = None) -> Any:
        return ((bid, self.blobs[bid]) for bid in ids)


def _parent() -> tuple[dict[str, str], MemoryWriter, TreeReader]:
    writer = MemoryWriter()
    first = CompactCollector(BackupScope(), ["a", "b"], writer)
    for page in _pages():
        first.handle_page(page, None)
    trees = first.write_trees()
    return trees, writer, TreeReader(trees, writer.added)


def _again(writer: MemoryWriter, reader: TreeReader, pages: list[Page], **kwargs: Any) -> CompactCollector:
    prior = load_prior(reader, ParentManifest("cluster-a"), "cluster-a")
    collector = CompactCollector(BackupScope(), ["a", "b"], writer, prior=prior, **kwargs)
    for page in pages:
        collector.handle_page(page, None)
    return collector


def _fresh_trees(pages: list[Page]) -> dict[str, str]:
    full = ItemCollector(BackupScope(), ["a", "b"], MemoryWriter())
    for page in pages:
        full.handle_page(page, None)
    return full.write_trees()


def _count_encodes(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    encoded: list[int] = []

    encode = compact_module.CompactCollector._encode

    def counting(types: Any) -> Any:
        encoded.append(sum(len(rows) for *_, rows in types))
        return encode(types)

    monkeypatch.setattr(compact_module.CompactCollector, "_encode", staticmethod(counting))
    return encoded


def test_an_unchanged_cluster_names_every_parent_tree_and_encodes_none(monkeypatch):
    trees, writer, reader = _parent()
    held = MemoryWriter(set(writer.added))
    again = _again(held, reader, _pages())
    encoded = _count_encodes(monkeypatch)
    assert again.write_trees() == trees == _fresh_trees(_pages())
    assert encoded == [] and held.added == {}
    assert again.reused == again.objects == 7
    # Counted as a rewrite of held trees would count them.
    tree_bytes = sum(len(writer.added[t]) for t in trees.values())
    object_bytes = sum(len(b) for bid, b in writer.added.items() if bid not in trees.values())
    assert again.bytes_raw == again.bytes_dedup == tree_bytes + object_bytes


@pytest.mark.parametrize(
    ("changes", "encoded_scopes"),
    [
        pytest.param({"two": _obj("two", "a", rv="2", data="y")}, ["a"], id="one object changed"),
        pytest.param({"two": {}}, ["a"], id="one object gone"),
        pytest.param({"web": _obj("web", "a", uid="uid-recreated")}, ["a"], id="one object recreated"),
        pytest.param({"api": {}, "three": _obj("three", "b", rv="5")}, ["b"], id="other scope"),
    ],
)
def test_a_scope_that_is_not_exactly_its_parent_tree_is_encoded_again(monkeypatch, changes, encoded_scopes):
    trees, writer, reader = _parent()
    pages = _pages(**changes)
    again = _again(MemoryWriter(set(writer.added)), reader, pages)
    encoded = _count_encodes(monkeypatch)
    written = again.write_trees()
    assert written == _fresh_trees(pages)
    assert len(encoded) == len(encoded_scopes)
    for scope, tree in written.items():
        assert (tree == trees[scope]) is (scope not in encoded_scopes)


def test_an_object_seen_twice_makes_its_scope_encoded_again(monkeypatch):
    trees, writer, reader = _parent()
    pages = _pages(two={})
    pages.append(Page(CM, [_obj("one", "a")]))  # "one" twice, "two" missing: as many entries as the tree's rows
    again = _again(MemoryWriter(set(writer.added)), reader, pages)
    encoded = _count_encodes(monkeypatch)
    written = again.write_trees()
    assert len(encoded) == 1 and written["a"] != trees["a"]
    assert written["b"] == trees["b"]


def test_an_entry_from_another_scopes_tree_makes_the_scope_encoded_again(monkeypatch):
    trees, writer, reader = _parent()
    # The parent's "three" (scope b) listed under scope a instead of "two": same count, not the same rows.
    moved = _obj("three", "a", uid="uid-b-three")
    again = _again(MemoryWriter(set(writer.added)), reader, _pages(two=moved, three={}))
    encoded = _count_encodes(monkeypatch)
    written = again.write_trees()
    assert len(encoded) == 2
    assert written["a"] != trees["a"] and written["b"] != trees["b"]


def test_a_parent_tree_the_repository_lost_is_written_again():
    trees, writer, reader = _parent()
    lost = trees["a"]
    held = MemoryWriter({bid for bid in writer.added if bid != lost})
    again = _again(held, reader, _pages())
    assert again.write_trees() == trees
    assert list(held.added) == [lost] and held.added[lost] == writer.added[lost]


def test_reused_trees_still_offer_their_blobs_to_the_sample():
    trees, writer, reader = _parent()
    blobs = sorted(bid for bid in writer.added if bid not in trees.values())
    index = {b: IndexEntry(f"pack-{i % 2}", "data", 0, 1, 1, 0, 1) for i, b in enumerate(blobs)}
    again = _again(MemoryWriter(set(writer.added)), reader, _pages(), index=index, rng=random.Random(3))
    assert again.write_trees() == trees
    # Packs this small are one window each: every reused blob is in the sample.
    assert again.reused_sample() == blobs
    assert all(blob_id(writer.added[b]) == b for b in blobs)


class RecordingIndex(dict):
    """An index that records which blobs were looked up for their frame."""

    def __init__(self, *args: Any) -> None:
        super().__init__(*args)
        self.asked: list[str] = []

    def get(self, blob: str, default: Any = None) -> Any:
        self.asked.append(blob)
        return super().get(blob, default)


def test_only_blobs_held_before_the_run_are_looked_up_for_the_sample():
    _, writer, _ = _parent()
    held = [next(bid for bid, data in writer.added.items() if b'"one"' in data and b'"type":"tree"' not in data)]
    index = RecordingIndex({held[0]: IndexEntry("pack-0", "data", 0, 1, 1, 0, 1)})
    collector = CompactCollector(BackupScope(), ["a", "b"], MemoryWriter(set(held)), index=index)
    for page in _pages():
        collector.handle_page(page, None)
    collector.write_trees()
    assert index.asked == held
    assert collector.reused_sample() == held


class EarlyStub:
    """An early check whose sample holds ``sampled`` (None: its offers failed)."""

    def __init__(self, sampled: frozenset[bytes] | None) -> None:
        self._sampled = sampled

    def starts(self) -> dict[str, int | None]:
        return {}

    def sampled(self) -> frozenset[bytes] | None:
        return self._sampled


def test_with_an_early_check_the_reused_parent_blobs_in_its_sample_are_the_sample():
    trees, writer, reader = _parent()
    blobs = sorted(bid for bid in writer.added if bid not in trees.values())
    index = {b: IndexEntry("pack-0", "data", 0, 1, 1, 0, 1) for b in blobs}
    two = next(bid for bid, data in writer.added.items() if b'"two"' in data and b'"type":"tree"' not in data)
    pages = _pages(two=_obj("two", "a", rv="2", data="y"))  # changed: its parent blob is not reused
    early = frozenset(bytes.fromhex(b) for b in blobs[::2]) | {bytes.fromhex(two)}

    again = _again(MemoryWriter(set(writer.added)), reader, pages, index=index, early=EarlyStub(early))
    again.write_trees()
    # The parent blobs it reuses that the early sample holds; not the changed object's old blob, which it holds too.
    assert again.reused_sample() == sorted(b.hex() for b in early if b.hex() != two)

    # An early check whose offers failed leaves the sample to the collector: every reused blob (one small pack).
    fallback = _again(MemoryWriter(set(writer.added)), reader, pages, index=index, early=EarlyStub(None))
    fallback.write_trees()
    assert fallback.reused_sample() == [b for b in blobs if b != two]
