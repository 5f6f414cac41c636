"""PriorObjects kept compact: packed entries read back exactly, rows it cannot keep exactly left out, and small."""

from __future__ import annotations

import gc
import hashlib
import tracemalloc

import pytest

from chalicelib.backup.reuse import PriorObjects, load_prior
from chalicelib.core.resources import Resource
from chalicelib.core.trees import TreeEntry, encode_tree
from tests.unit.test_backup_reuse import FakeReader, MemoryWriter, ParentManifest, _cm, _collect, _entries

CM = Resource("", "v1", "ConfigMap", "configmaps", True, frozenset({"list"}))
CM_V2 = Resource("", "v2", "ConfigMap", "configmaps", True, frozenset({"list"}))
DEPLOY = Resource("apps", "v1", "Deployment", "deployments", True, frozenset({"list"}))


def _blob(i: int) -> str:
    return hashlib.sha256(str(i).encode()).hexdigest()


def _entry(i: int, *, version: str = "v1", name: str | None = None, rv: str | None = None) -> TreeEntry:
    return TreeEntry("", "configmaps", name or f"cm-{i}", version, "ConfigMap", _blob(i), 1000 + i, f"uid-{i}",
                     rv or str(i))


def test_entries_read_back_exactly_as_they_were_added():
    entries = [_entry(1), _entry(2, name="ünïcode-名前", rv="9" * 255), _entry(3, rv="rv-with-\x00-nul")]
    prior = PriorObjects(entries)
    table = prior.for_type(CM)
    assert len(prior) == len(table) == 3
    assert [table[e.uid] for e in entries] == entries
    assert table.get("uid-404") is None and "uid-404" not in table
    with pytest.raises(KeyError):
        table["uid-404"]
    assert sorted(table) == ["uid-1", "uid-2", "uid-3"]


def test_a_type_served_in_two_versions_hands_out_only_the_served_versions_entries():
    prior = PriorObjects([_entry(1), _entry(2, version="v2")])
    assert list(prior.for_type(CM)) == ["uid-1"]
    assert list(prior.for_type(CM_V2)) == ["uid-2"]
    assert prior.for_type(DEPLOY) == {}


@pytest.mark.parametrize(
    "row",
    [
        pytest.param(["", "v1", "ConfigMap", "configmaps", "a", _blob(1).upper(), 5, "u", "1"], id="upper-case blob"),
        pytest.param(["", "v1", "ConfigMap", "configmaps", "a", "ab" * 16, 5, "u", "1"], id="short blob"),
        pytest.param(["", "v1", "ConfigMap", "configmaps", "a", 7, 5, "u", "1"], id="blob not a string"),
        pytest.param(["", "v1", "ConfigMap", "configmaps", "a", _blob(1), 1 << 32, "u", "1"], id="size too large"),
        pytest.param(["", "v1", "ConfigMap", "configmaps", "a", _blob(1), -1, "u", "1"], id="negative size"),
        pytest.param(["", "v1", "ConfigMap", "configmaps", "a", _blob(1), "5", "u", "1"], id="size not an int"),
        pytest.param(["", "v1", "ConfigMap", "configmaps", "a", _blob(1), 5, "u", "1" * 256], id="rv too long"),
        pytest.param(["", "v1", "ConfigMap", "configmaps", "a", _blob(1), 5, "", "1"], id="no uid"),
        pytest.param(["", "v1", "ConfigMap", "configmaps", "a", _blob(1), 5, "u", ""], id="no rv"),
        pytest.param(["", "v1", "ConfigMap", "configmaps", "a", _blob(1), 5], id="v1 row"),
        pytest.param(["", "v1", "ConfigMap", "configmaps", 3, _blob(1), 5, "u", "1"], id="name not a string"),
        pytest.param("not a row", id="not a list"),
    ],
)
def test_a_row_it_cannot_keep_exactly_is_left_out(row):
    prior = PriorObjects()
    prior.add_rows([row, ["", "v1", "ConfigMap", "configmaps", "ok", _blob(2), 5, "u-ok", "1"]])
    assert list(prior.for_type(CM)) == ["u-ok"]


def test_an_unchanged_object_still_reuses_its_entry_through_the_packed_form():
    first_writer = MemoryWriter()
    first = _collect([_cm()], prior=None, writer=first_writer)
    tree = encode_tree(_entries(first))[1]
    prior = load_prior(FakeReader(tree), ParentManifest("cluster-a"), "cluster-a")
    writer = MemoryWriter(set(first_writer.added))
    again = _collect([_cm()], prior=prior, writer=writer)
    assert again.reused == 1 and writer.added == {}
    assert _entries(again) == _entries(first)


def test_a_parents_entries_cost_a_third_of_tree_entries():
    tree = encode_tree([_entry(i) for i in range(20_000)])[1]
    gc.collect()
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        prior = load_prior(FakeReader(tree), ParentManifest("cluster-a"), "cluster-a")
        gc.collect()
        held = tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()
    assert prior is not None and len(prior) == 20_000
    # TreeEntry values holding the decoded rows' strings, by uid, cost ~670 bytes an object.
    assert held / 20_000 < 260, f"{held / 20_000:.0f} bytes an object"
