"""The unchanged-object shortcut: a provably unchanged object reuses its blob, anything else takes the full path."""

from __future__ import annotations

from typing import Any

import orjson
import pytest

from chalicelib.backup import items as items_module
from chalicelib.backup.items import ItemCollector
from chalicelib.backup.listing import Page
from chalicelib.backup.reuse import PriorObjects, load_prior
from chalicelib.core import sanitize as sanitize_module
from chalicelib.core.canonical import blob_id, canonical_json
from chalicelib.core.errors import FormatError
from chalicelib.core.resources import Resource
from chalicelib.core.sanitize import sanitize
from chalicelib.core.scope import BackupScope
from chalicelib.core.trees import TreeEntry, decode_tree, encode_root, encode_tree, read_tree, tree_blob_ids

CM = Resource("", "v1", "ConfigMap", "configmaps", True, frozenset({"list"}))
CM_V2 = Resource("", "v2", "ConfigMap", "configmaps", True, frozenset({"list"}))


class MemoryWriter:
    """What ItemCollector needs of a RepositoryWriter: add_bytes, add (False when already held) and holds."""

    def __init__(self, known: set[str] | None = None) -> None:
        self.known = set(known or ())
        self.added: dict[str, bytes] = {}

    def add(self, bid: str, data: bytes, type: str = "data") -> bool:
        if bid in self.known or bid in self.added:
            return False
        self.added[bid] = data
        return True

    def add_bytes(self, data: bytes, type: str = "data") -> tuple[str, bool]:
        bid = blob_id(data)
        return bid, self.add(bid, data, type)

    def holds(self, bid: str) -> bool:
        return bid in self.known or bid in self.added


def _cm(name: str = "app", *, uid: str = "u-1", rv: str = "10", data: str = "x") -> dict[str, Any]:
    return {
        "metadata": {"name": name, "namespace": "shop", "uid": uid, "resourceVersion": rv},
        "data": {"k": data},
    }


def _collect(objs: list[dict[str, Any]], *, prior: PriorObjects | None, writer: MemoryWriter | None = None,
             res: Resource = CM) -> ItemCollector:
    collector = ItemCollector(BackupScope(), ["shop"], writer or MemoryWriter(), prior=prior)
    collector.handle_page(Page(res, objs), None)
    return collector


def _entries(collector: ItemCollector) -> list[TreeEntry]:
    return [entry for rows in collector.entries.values() for _, entry in rows]


def _first_backup(obj: dict[str, Any]) -> tuple[MemoryWriter, PriorObjects]:
    writer = MemoryWriter()
    first = _collect([obj], prior=None, writer=writer)
    return MemoryWriter(set(writer.added)), PriorObjects(_entries(first))


def _refuse_sanitize(monkeypatch: pytest.MonkeyPatch) -> None:
    """A hit must not sanitize, serialize or hash the object again."""

    def refuse(*_: Any) -> Any:
        raise AssertionError("an unchanged object was sanitized again")

    monkeypatch.setattr(items_module, "sanitize_for_backup", refuse)


def test_entries_record_uid_and_resource_version():
    (entry,) = _entries(_collect([_cm()], prior=None))
    assert (entry.uid, entry.resource_version) == ("u-1", "10")
    assert entry.blob == blob_id(canonical_json(sanitize(_cm(), "ConfigMap", "v1")))


def test_same_uid_and_resource_version_reuse_the_blob(monkeypatch):
    writer, prior = _first_backup(_cm())
    full = _entries(_collect([_cm()], prior=None, writer=MemoryWriter()))[0]
    _refuse_sanitize(monkeypatch)
    again = _collect([_cm()], prior=prior, writer=writer)
    (entry,) = _entries(again)
    assert entry == full
    assert again.reused == 1 and writer.added == {}
    assert again.bytes_raw == again.bytes_dedup == entry.size


@pytest.mark.parametrize(
    "changed",
    [
        pytest.param(_cm(rv="11", data="y"), id="changed resourceVersion"),
        pytest.param(_cm(uid="u-2", rv="10", data="y"), id="recreated: new uid, same name"),
        pytest.param(_cm(name="other", data="y"), id="same uid under another name"),
        pytest.param({**_cm(data="y"), "metadata": {**_cm()["metadata"], "resourceVersion": ""}}, id="no rv"),
    ],
)
def test_anything_but_the_same_object_state_takes_the_full_path(changed):
    writer, prior = _first_backup(_cm())
    again = _collect([changed], prior=prior, writer=writer)
    (entry,) = _entries(again)
    assert again.reused == 0
    assert entry.blob == blob_id(canonical_json(sanitize(changed, "ConfigMap", "v1")))
    assert entry.blob in writer.added
    assert (entry.uid, entry.resource_version) == (changed["metadata"]["uid"], changed["metadata"]["resourceVersion"])


def test_a_blob_the_repository_no_longer_holds_takes_the_full_path():
    _, prior = _first_backup(_cm())
    writer = MemoryWriter()  # an index that no longer has the blob (collected since)
    again = _collect([_cm()], prior=prior, writer=writer)
    assert again.reused == 0 and len(writer.added) == 1


def test_another_served_version_takes_the_full_path():
    writer, prior = _first_backup(_cm())
    again = _collect([_cm()], prior=prior, writer=writer, res=CM_V2)
    (entry,) = _entries(again)
    assert again.reused == 0 and entry.version == "v2"
    assert entry.blob == blob_id(canonical_json(sanitize(_cm(), "ConfigMap", "v2")))


class FakeReader:
    """A parent backup of one scope tree, as RepositoryReader serves it."""

    def __init__(self, tree: bytes) -> None:
        self.tree_id = blob_id(tree)
        self.blobs = {self.tree_id: tree}

    def root(self, manifest: Any, *, with_trees: bool = False) -> dict[str, str]:
        return {"shop": self.tree_id}

    def read_blobs(self, ids: Any, *, where: str | None = None) -> Any:
        return ((bid, self.blobs[bid]) for bid in ids)


class ParentManifest:
    cluster = "c"
    backup_id = "b1"

    def __init__(self, cluster_uid: str | None) -> None:
        self.cluster_uid = cluster_uid


def _parent_tree() -> bytes:
    writer = MemoryWriter()
    return encode_tree(_entries(_collect([_cm()], prior=None, writer=writer)))[1]


def test_load_prior_from_the_same_cluster_finds_the_object():
    prior = load_prior(FakeReader(_parent_tree()), ParentManifest("cluster-a"), "cluster-a")
    assert prior is not None and len(prior) == 1
    assert prior.for_type(CM)["u-1"].resource_version == "10"


@pytest.mark.parametrize(("parent_uid", "current_uid"), [("cluster-a", "cluster-b"), (None, "cluster-a"),
                                                    ("cluster-a", None)])
def test_another_or_unknown_cluster_reuses_nothing(parent_uid, current_uid):
    assert load_prior(FakeReader(_parent_tree()), ParentManifest(parent_uid), current_uid) is None


def test_trees_of_another_sanitizer_version_reuse_nothing(monkeypatch):
    tree = _parent_tree()
    other = sanitize_module.SANITIZER_VERSION + 1
    monkeypatch.setattr(sanitize_module, "SANITIZER_VERSION", other)
    import chalicelib.backup.reuse as reuse_module

    monkeypatch.setattr(reuse_module, "SANITIZER_VERSION", other)
    prior = load_prior(FakeReader(tree), ParentManifest("cluster-a"), "cluster-a")
    assert prior is not None and len(prior) == 0
    writer = MemoryWriter()
    again = _collect([_cm()], prior=prior, writer=writer)
    assert again.reused == 0 and len(writer.added) == 1


def test_v1_trees_stay_readable_and_reuse_nothing():
    row = ["", "v1", "ConfigMap", "configmaps", "app", "ab" * 32, 10]
    v1 = orjson.dumps({"entries": [row], "type": "tree", "v": 1}, option=orjson.OPT_SORT_KEYS)
    tree = read_tree(v1)
    assert tree.sanitizer is None
    assert decode_tree(v1) == [TreeEntry("", "configmaps", "app", "v1", "ConfigMap", "ab" * 32, 10)]
    assert tree_blob_ids(v1) == ["ab" * 32]
    prior = load_prior(FakeReader(v1), ParentManifest("cluster-a"), "cluster-a")
    assert prior is not None and len(prior) == 0


def test_v2_tree_round_trip_and_unknown_versions_refused():
    entry = TreeEntry("", "configmaps", "app", "v1", "ConfigMap", "ab" * 32, 10, "u-1", "10")
    _, data = encode_tree([entry])
    tree = read_tree(data)
    assert tree.entries == [entry] and tree.sanitizer == sanitize_module.SANITIZER_VERSION
    doc = orjson.loads(data)
    assert doc["v"] == 2
    with pytest.raises(FormatError, match="version 3"):
        decode_tree(orjson.dumps({**doc, "v": 3}))
    with pytest.raises(FormatError):
        read_tree(encode_root({"shop": "1" * 64})[1])


def test_a_manifest_written_before_cluster_uid_still_loads():
    from chalicelib.core.manifest import Manifest

    doc = {"backup_id": "b1", "cluster": "c", "policy": None, "parent": None, "started_at": "s", "finished_at": "f",
           "kubernetes_version": "v1.31.0", "scope": {}, "root_tree": "r" * 64, "counts": {}, "kinds": {},
           "index_files": [], "stats": {}, "errors": [], "volume_snapshots": [], "etcd_snapshot": None,
           "format_version": 1}
    manifest = Manifest.from_json(orjson.dumps(doc))
    assert manifest.cluster_uid is None
    assert load_prior(FakeReader(_parent_tree()), manifest, "cluster-a") is None
