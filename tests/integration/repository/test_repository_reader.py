"""RepositoryReader on S3 (moto): verified reads, frame fetching and caching, damage and loss, index rebuild."""

from __future__ import annotations

from typing import Any

import pytest
import yaml

from chalicelib.core.canonical import canonical_blob
from chalicelib.core.manifest import Manifest
from chalicelib.core.trees import TreeEntry
from chalicelib.repository import (
    MemoryObjectStore,
    Repository,
    RepositoryReader,
    RepositoryWriter,
    S3ObjectStore,
    check_repository,
)
from chalicelib.repository import reader as reader_module
from chalicelib.repository.errors import BlobCorrupt, BlobMissing, RepositoryCorrupt
from tests.support.repository import (
    CLUSTER,
    PREFIX,
    FailingStore,
    frames_of,
    pack_keys,
    small_cluster,
    write_small_backup,
)


def test_reader_reads_and_verifies_every_object_and_walks_scopes_in_order(repo: Repository, written: Any) -> None:
    manifest, stored = written
    reader = RepositoryReader(repo)

    walked = list(reader.walk(manifest))

    assert [scope for scope, _ in walked] == sorted(scope for scope, _ in walked)
    assert {scope for scope, _ in walked} == {"", "billing", "shop"}
    assert len(walked) == len(small_cluster())
    for _scope, entry in walked:
        assert yaml.safe_load(reader.read_blob(entry.blob)) == stored[entry.blob]
    assert dict(reader.read_blobs([e.blob for _, e in walked])).keys() == set(stored)
    assert reader.list_backups() == [(CLUSTER, manifest.backup_id)]
    assert reader.list_backups("elsewhere") == []
    assert reader.load_manifest(CLUSTER, manifest.backup_id) == manifest


def test_read_blobs_takes_a_whole_pack_when_most_is_wanted_and_one_frame_otherwise(
    store: S3ObjectStore, written: Any
) -> None:
    counting = FailingStore(store, fail_under="\0")
    reader = RepositoryReader(Repository.open(counting), frame_cache_bytes=0)
    index = reader.load_index()
    frames = frames_of(index)
    pack = max({p for p, _ in frames}, key=lambda p: sum(1 for q, _ in frames if q == p))
    in_pack = [blob for (p, _), blobs in frames.items() if p == pack for blob in blobs]
    assert sum(1 for p, _ in frames if p == pack) >= 3

    assert len(dict(reader.read_blobs(in_pack))) == len(in_pack)
    assert len(counting.gets) == 1 and counting.gets[0][1] == 0

    counting.gets.clear()
    one = in_pack[-1]
    assert dict(reader.read_blobs([one])) == {one: reader.read_blob(one)}
    frame = index[one].frame_offset, index[one].frame_offset + index[one].frame_length - 1
    assert [get[1:] for get in counting.gets] == [frame, frame]  # the cache is off: each read fetches it


def test_nearby_frames_are_fetched_in_one_range_and_each_decompressed_once(
    monkeypatch: pytest.MonkeyPatch, store: S3ObjectStore, written: Any
) -> None:
    counting = FailingStore(store, fail_under="\0")
    reader = RepositoryReader(Repository.open(counting), frame_cache_bytes=0)
    frames = frames_of(reader.load_index())
    pack = max({p for p, _ in frames}, key=lambda p: sum(1 for q, _ in frames if q == p))
    first, *_, last = [(offset, blobs) for (p, offset), blobs in frames.items() if p == pack]
    wanted = [*first[1], *last[1]]
    decompressed: list[int] = []
    real = reader_module.decompress_frame
    monkeypatch.setattr(
        reader_module,
        "decompress_frame",
        lambda data, n: decompressed.append(n) or real(data, n),  # type: ignore[func-returns-value]
    )

    assert dict(reader.read_blobs(wanted)).keys() == set(wanted)
    assert len(counting.gets) == 1 and counting.gets[0][1] == first[0]  # one range, not the whole pack
    assert len(decompressed) == 2

    counting.gets.clear()
    monkeypatch.setattr(reader_module, "_RANGE_GAP", 0)
    assert dict(reader.read_blobs(wanted)).keys() == set(wanted)
    assert sorted(get[1] for get in counting.gets) == [first[0], last[0]]


def test_blobs_of_one_frame_cost_one_get_while_the_frame_is_cached(store: S3ObjectStore, written: Any) -> None:
    counting = FailingStore(store, fail_under="\0")
    reader = RepositoryReader(Repository.open(counting))
    frames = frames_of(reader.load_index())
    shared = next(blobs for blobs in frames.values() if len(blobs) >= 2)
    other = next(blobs for blobs in frames.values() if blobs is not shared)

    for blob in shared:
        reader.read_blob(blob)
    assert len(counting.gets) == 1
    assert dict(reader.read_blobs(shared)).keys() == set(shared)
    assert len(counting.gets) == 1
    reader.read_blob(other[0])
    assert len(counting.gets) == 2


def test_reading_a_backup_tree_by_tree_fetches_each_frame_once(store: S3ObjectStore, repo: Repository) -> None:
    manifest, _ = write_small_backup(repo, RepositoryWriter(repo))  # default frames: the trees share them
    counting = FailingStore(store, fail_under="\0")
    reader = RepositoryReader(Repository.open(counting))
    index = reader.load_index()

    scopes = reader.root(manifest)
    for tree_id in scopes.values():
        reader.tree(tree_id)

    frames = {(index[b].pack, index[b].frame_offset) for b in [manifest.root_tree, *scopes.values()]}
    assert len(counting.gets) == len(frames) < len(scopes) + 1


def test_frame_cache_stays_within_its_bound(store: S3ObjectStore, written: Any) -> None:
    counting = FailingStore(store, fail_under="\0")
    probe = RepositoryReader(Repository.open(counting))
    index = probe.load_index()
    frames = frames_of(index)
    sizes = [index[blobs[0]].frame_raw_length for blobs in frames.values()]
    bound = 4 * max(sizes)  # every frame may be kept (a quarter of the bound at most)...
    assert sum(sizes[1:]) > bound  # ...but not all of them at once
    reader = RepositoryReader(Repository.open(counting), frame_cache_bytes=bound)

    for blobs in frames.values():
        reader.read_blob(blobs[0])
    assert len(counting.gets) == len(frames)
    first, *_, last = frames.values()
    reader.read_blob(last[-1])
    assert len(counting.gets) == len(frames)  # the latest frame is still held
    reader.read_blob(first[-1])
    assert len(counting.gets) == len(frames) + 1  # the first one was dropped to stay within the bound


def _damage(s3: Any, bucket: str, key: str, offset: int) -> None:
    body = bytearray(s3.get_object(Bucket=bucket, Key=PREFIX + key)["Body"].read())
    body[offset] ^= 0x55
    s3.put_object(Bucket=bucket, Key=PREFIX + key, Body=bytes(body))


def _a_data_blob(reader: RepositoryReader, manifest: Manifest) -> TreeEntry:
    return next(e for scope, e in reader.walk(manifest) if scope == "shop")


def _trees_read(reader: RepositoryReader, manifest: Manifest, **root_options: Any) -> dict[Any, Any]:
    """A backup's root and scope trees as ``load_prior`` reads them: the root, then its trees in one call."""
    root = reader.root(manifest, **root_options)
    return dict(reader.try_read_blobs(root.values(), where="trees"))


def test_a_root_read_for_its_trees_brings_them_in_the_same_get(store: S3ObjectStore) -> None:
    # Written as a backup is (the trees packed last, then the root): one pack holds the trees and the root, in
    # frames of their own.
    repo = Repository.open(store, create=True)
    manifest, _ = write_small_backup(repo, RepositoryWriter(repo, frame_target_bytes=512))
    plain, spanned = FailingStore(store, fail_under="\0"), FailingStore(store, fail_under="\0")

    expected = _trees_read(RepositoryReader(Repository.open(plain)), manifest)
    trees = _trees_read(RepositoryReader(Repository.open(spanned)), manifest, with_trees=True)

    assert trees == expected and len(trees) == 3  # the cluster scope, billing and shop
    assert all(isinstance(data, bytes) for data in trees.values())
    assert len(plain.gets) == 2  # the root's frame, then the trees
    assert len(spanned.gets) == 1  # the root's frame and what precedes it
    (_, start, end), (_, root_start, root_end) = spanned.gets[0], plain.gets[0]
    assert start < root_start and end == root_end


def test_trees_the_root_was_not_fetched_with_are_read_as_before(
    store: S3ObjectStore, written: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    manifest, _ = written  # small packs: the trees are spread over several, the root's holds only the last ones
    expected = _trees_read(RepositoryReader(Repository.open(store)), manifest)

    spanned = FailingStore(store, fail_under="\0")
    assert _trees_read(RepositoryReader(Repository.open(spanned)), manifest, with_trees=True) == expected
    monkeypatch.setattr(reader_module, "TREES_AHEAD_MAX", 0)  # nothing ahead: the root alone
    alone = FailingStore(store, fail_under="\0")
    assert _trees_read(RepositoryReader(Repository.open(alone)), manifest, with_trees=True) == expected
    assert len(spanned.gets) < len(alone.gets)


def test_a_damaged_tree_fetched_with_the_root_is_refused(s3: Any, bucket: str, store: S3ObjectStore) -> None:
    repo = Repository.open(store, create=True)
    manifest, _ = write_small_backup(repo, RepositoryWriter(repo, frame_target_bytes=512))
    reader = RepositoryReader(repo)
    root_pack = reader.load_index()[manifest.root_tree].pack
    tree_id = next(t for t in reader.root(manifest).values() if reader.load_index()[t].pack == root_pack)
    _damage(s3, bucket, repo.pack_key(root_pack), reader.load_index()[tree_id].frame_offset)
    counting = FailingStore(store, fail_under="\0")

    trees = _trees_read(RepositoryReader(Repository.open(counting)), manifest, with_trees=True)

    assert len(counting.gets) == 1
    assert isinstance(trees[tree_id], BlobCorrupt) and tree_id in str(trees[tree_id])
    assert all(isinstance(data, bytes) for t, data in trees.items() if t != tree_id)


def test_damaged_frame_is_blob_corrupt_naming_each_of_its_blobs(
    s3: Any, bucket: str, repo: Repository, written: Any
) -> None:
    manifest, _ = written
    reader = RepositoryReader(repo)
    target = _a_data_blob(reader, manifest)
    entry = reader.load_index()[target.blob]
    in_frame = frames_of(reader.load_index())[(entry.pack, entry.frame_offset)]
    assert len(in_frame) >= 2
    _damage(s3, bucket, repo.pack_key(entry.pack), entry.frame_offset)  # the frame's zstd magic

    with pytest.raises(BlobCorrupt, match=target.blob) as info:
        RepositoryReader(repo).read_blob(target.blob, where="restore of shop")
    assert info.value.blob_id == target.blob and "restore of shop" in str(info.value)
    assert f"frame at {entry.frame_offset}" in str(info.value)
    results = dict(RepositoryReader(repo).try_read_blobs(in_frame))
    assert {blob: type(result) for blob, result in results.items()} == dict.fromkeys(in_frame, BlobCorrupt)
    assert all(blob in str(result) for blob, result in results.items())

    report = check_repository(RepositoryReader(repo))
    assert not report.ok
    assert sorted((p.kind, p.blob_id) for p in report.problems) == sorted(("blob_corrupt", b) for b in in_frame)
    assert "shop" in next(p.where for p in report.problems if p.blob_id == target.blob)


def test_deleted_pack_is_blob_missing_and_check_names_what_breaks(
    s3: Any, bucket: str, repo: Repository, written: Any
) -> None:
    manifest, _ = written
    reader = RepositoryReader(repo)
    target = _a_data_blob(reader, manifest)
    pack = reader.load_index()[target.blob].pack
    lost = {b for b, e in reader.load_index().items() if e.pack == pack}
    s3.delete_object(Bucket=bucket, Key=PREFIX + repo.pack_key(pack))

    with pytest.raises(BlobMissing, match=pack) as info:
        RepositoryReader(repo).read_blob(target.blob)
    assert info.value.blob_id == target.blob

    report = check_repository(RepositoryReader(repo), read_data=True)
    assert {p.kind for p in report.problems} == {"pack_missing"}
    assert {p.blob_id for p in report.problems} == lost
    assert all(manifest.backup_id in p.where for p in report.problems)


def test_unindexed_blob_is_blob_missing_naming_where(repo: Repository) -> None:
    with pytest.raises(BlobMissing, match="root tree of backup x/y") as info:
        RepositoryReader(repo).read_blob("e" * 64, where="root tree of backup x/y")  # type: ignore[arg-type]
    assert info.value.blob_id == "e" * 64


def test_altered_index_file_is_refused(s3: Any, bucket: str, repo: Repository, written: Any) -> None:
    manifest, _ = written
    _damage(s3, bucket, repo.index_key(manifest.index_files[0]), 10)

    with pytest.raises(RepositoryCorrupt, match="does not hash to its name"):
        RepositoryReader(repo).load_index()
    assert check_repository(RepositoryReader(repo)).problems[0].kind == "index_unreadable"


def test_a_well_formed_blob_under_the_wrong_name_is_caught_by_its_hash() -> None:
    from chalicelib.core.index_format import encode_index
    from chalicelib.core.packs import PackBuilder

    store = MemoryObjectStore()
    repo = Repository.open(store, create=True)
    claimed, _ = canonical_blob({"kind": "Secret", "data": {"password": "b3JpZ2luYWw="}})
    neighbour, neighbour_data = canonical_blob({"kind": "ConfigMap", "data": {"a": "b"}})
    builder = PackBuilder()
    builder.add(claimed, b'{"kind":"Secret","data":{"password":"Zm9yZ2VkIQ=="}}')  # a forgery, decompresses fine
    builder.add(neighbour, neighbour_data)  # same frame, intact
    pack, data, entries = builder.finish()
    assert entries[0].frame_offset == entries[1].frame_offset
    store.put(repo.pack_key(pack), data)
    index, index_data = encode_index({pack: entries})
    store.put(repo.index_key(index), index_data)

    with pytest.raises(BlobCorrupt, match="does not hash to its id"):
        RepositoryReader(repo).read_blob(claimed)
    assert RepositoryReader(repo).read_blob(neighbour) == neighbour_data
    assert [(p.kind, p.blob_id) for p in check_repository(RepositoryReader(repo)).problems] == [
        ("blob_corrupt", claimed)
    ]


@pytest.mark.parametrize("tail_guess", [64 << 10, 16], ids=["one-read", "header-longer-than-guess"])
def test_rebuilt_index_equals_the_written_one(
    monkeypatch: pytest.MonkeyPatch, repo: Repository, written: Any, tail_guess: int
) -> None:
    monkeypatch.setattr(reader_module, "_TAIL_GUESS", tail_guess)
    reader = RepositoryReader(repo)

    rebuilt = reader.rebuild_index_from_packs()

    assert rebuilt.unreadable == {}
    assert rebuilt.entries == reader.load_index()


def test_rebuild_lists_a_pack_with_a_broken_trailer_as_unreadable(
    s3: Any, bucket: str, repo: Repository, written: Any
) -> None:
    key = pack_keys(s3, bucket)[0]
    size = s3.head_object(Bucket=bucket, Key=PREFIX + key)["ContentLength"]
    _damage(s3, bucket, key, size - 6)  # inside the magic

    rebuilt = RepositoryReader(repo).rebuild_index_from_packs()

    assert list(rebuilt.unreadable) == [key] and "magic" in rebuilt.unreadable[key]
    assert len(rebuilt.entries) < len(RepositoryReader(repo).load_index())


def _json_blob_rows(blobs: Any) -> bytes:
    """A pack's rows as a version 1 (JSON) index file spelled them."""
    import orjson

    return orjson.dumps(list(blobs), default=list)


def _json_index_rows(packs: Any, supersedes: Any = ()) -> tuple[str, bytes]:
    """A version 1 index file, as the writer wrote it before index files were binary."""
    import hashlib

    import orjson
    import zstandard

    parts = [b'{"version":1,"packs":[']
    for i, (pack, rows) in enumerate(sorted(packs.items())):
        parts += [b"," if i else b"", b'{"id":', orjson.dumps(pack), b',"blobs":', rows, b"}"]
    parts += [b'],"supersedes":', orjson.dumps(sorted(set(supersedes))), b"}"]
    data = zstandard.ZstdCompressor(level=1).compress(b"".join(parts))
    return hashlib.sha256(data).hexdigest(), data


def test_a_repository_written_with_json_index_files_reads_the_same_beside_binary_ones(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from chalicelib.repository import writer as writer_module

    repo = Repository.open(MemoryObjectStore(), create=True)
    with monkeypatch.context() as patched:
        patched.setattr(writer_module, "encode_blob_rows", _json_blob_rows)
        patched.setattr(writer_module, "encode_index_rows", _json_index_rows)
        manifest, stored = write_small_backup(repo, RepositoryWriter(repo, pack_target_bytes=1200))
    (old_file,) = manifest.index_files
    import orjson
    import zstandard

    assert zstandard.ZstdDecompressor().decompress(repo.store.get(repo.index_key(old_file)))[:1] == b"{"
    json_only = dict(RepositoryReader(repo).load_index())

    # A later backup writes a binary index file beside it.
    writer = RepositoryWriter(repo)
    new_blob, fresh = writer.add_bytes(b'{"kind":"ConfigMap","metadata":{"name":"later"}}')
    assert fresh
    (new_file,) = writer.finish()
    assert zstandard.ZstdDecompressor().decompress(repo.store.get(repo.index_key(new_file)))[:4] == b"LBIX"

    reader = RepositoryReader(repo)
    index = reader.load_index()
    assert len(index) == len(json_only) + 1
    assert {blob: index[blob] for blob in json_only} == json_only
    walked = {entry.blob for _, entry in reader.walk(manifest)}
    objects = {blob: orjson.loads(data) for blob, data in reader.read_blobs(walked)}
    assert objects and all(objects[blob] == stored[blob] for blob in objects if blob in stored)
    assert len([blob for blob in objects if blob in stored]) == len(stored)
    assert reader.read_blob(new_blob).startswith(b'{"kind":"ConfigMap"')
    assert check_repository(RepositoryReader(repo)).problems == []
