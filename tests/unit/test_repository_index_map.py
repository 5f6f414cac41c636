"""IndexMap: the loaded index as digests and binary rows, read like the dict of IndexEntry it replaces, and small."""

from __future__ import annotations

import gc
import hashlib
import tracemalloc

import pytest

from chalicelib.core.index_format import IndexEntry, encode_index
from chalicelib.core.packs import PackedBlob
from chalicelib.repository import MemoryObjectStore, Repository, RepositoryReader, RepositoryWriter
from chalicelib.repository.index_map import IndexMap, blob_digest

PACK_A, PACK_B = "a" * 64, "b" * 64


def _blob(i: int) -> str:
    return hashlib.sha256(str(i).encode()).hexdigest()


def _rows(pack: str, first: int, count: int) -> list[PackedBlob]:
    return [PackedBlob(_blob(i), "data", (i // 10) * 9000, 9000, 65536, (i % 10) * 1000, 1000) for i in
            range(first, first + count)]


def test_lookups_are_the_dicts_and_the_first_location_wins():
    index = IndexMap()
    index.add_pack(PACK_A, _rows(PACK_A, 0, 30))
    index.add_pack(PACK_B, _rows(PACK_B, 20, 20))  # blobs 20..29 again: the first pack keeps them
    expected: dict[str, IndexEntry] = {}
    for pack, rows in ((PACK_A, _rows(PACK_A, 0, 30)), (PACK_B, _rows(PACK_B, 20, 20))):
        for row in rows:
            expected.setdefault(row.blob_id, IndexEntry.of(pack, row))
    assert len(index) == len(expected) == 40
    assert dict(index) == expected and index == expected
    assert sorted(index) == sorted(expected)
    assert index[_blob(25)].pack == PACK_A and index[_blob(35)].pack == PACK_B
    assert index.get(_blob(3)) == expected[_blob(3)] and _blob(3) in index
    assert index.holds_digest(bytes.fromhex(_blob(3)))
    assert index.packs() == [PACK_A, PACK_B]
    assert not index.add(_blob(3), IndexEntry(PACK_B, "tree", 0, 1, 1, 0, 1))
    assert index[_blob(3)].pack == PACK_A


@pytest.mark.parametrize("blob", [_blob(99), _blob(1).upper(), " " + _blob(1)[1:], "zz", "", None, 7])
def test_what_is_not_an_indexed_blob_id_is_not_found(blob):
    index = IndexMap()
    index.add_pack(PACK_A, _rows(PACK_A, 0, 5))
    assert blob not in index
    assert index.get(blob) is None
    with pytest.raises(KeyError):
        index[blob]


def test_a_location_beyond_32_bits_is_kept_whole():
    index = IndexMap()
    far = IndexEntry(PACK_A, "tree", 5 << 32, 10, 20, 3, 4)
    assert index.add(_blob(1), far)
    assert index[_blob(1)] == far
    assert blob_digest(_blob(1)) == bytes.fromhex(_blob(1)) and blob_digest(_blob(1).upper()) is None


def _repository_with_index(blobs: int) -> Repository:
    repo = Repository.open(MemoryObjectStore(), create=True)
    packs = {hashlib.sha256(str(p).encode()).hexdigest(): _rows("", p * 1000, 1000) for p in range(blobs // 1000)}
    name, data = encode_index(packs)
    repo.store.put(repo.index_key(name), data)
    return repo


def test_a_loaded_index_holds_little_more_than_its_digests_and_rows():
    repo = _repository_with_index(20_000)
    reader = RepositoryReader(repo)
    gc.collect()
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        index = reader.load_index()
        gc.collect()
        held = tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()
    assert len(index) == 20_000
    # A dict of hex ids to IndexEntry tuples, with the decoded index file kept for index_files(), held ~550 B.
    assert held / 20_000 < 200, f"{held / 20_000:.0f} bytes a blob"
    assert sum(len(f.packs) for f in reader.index_files().values()) == 20


def test_the_writer_asks_the_loaded_index_by_digest_and_packs_only_what_it_lacks():
    repo = _repository_with_index(1_000)
    index = RepositoryReader(repo).load_index()
    writer = RepositoryWriter(repo, known=index)
    data = b'{"k":"new"}'
    held = _rows("", 0, 1)[0].blob_id
    assert writer.holds(held) and writer.holds_digest(bytes.fromhex(held))
    assert writer.add_bytes(data) == (hashlib.sha256(data).hexdigest(), True)
    assert writer.holds_digest(hashlib.sha256(data).digest())
    assert not writer.holds_digest(hashlib.sha256(b"other").digest())
    assert writer.stats["blobs_new"] == 1


def test_a_frame_is_named_without_the_rest_of_the_location():
    index = IndexMap()
    index.add_pack(PACK_A, _rows(PACK_A, 0, 3))
    index.add(_blob(7), IndexEntry(PACK_B, "tree", 5 << 32, 10, 20, 3, 4))  # kept whole: beyond 32 bits
    assert index.frame_of_digest(bytes.fromhex(_blob(1))) == (PACK_A, 0)
    assert index.frame_of_digest(bytes.fromhex(_blob(7))) == (PACK_B, 5 << 32)
    digests = [bytes.fromhex(_blob(i)) for i in (1, 99, 7)]
    assert list(index.frames_of_digests(digests)) == [(digests[0], PACK_A, 0), (digests[2], PACK_B, 5 << 32)]


def test_frames_and_pack_ends_are_answered_from_the_rows():
    index = IndexMap()
    index.add_pack(PACK_A, _rows(PACK_A, 0, 30))  # frames at 0, 9000, 18000, each 9000 long
    index.add(_blob(50), IndexEntry(PACK_B, "data", 4000, 100, 200, 0, 200))
    index.add(_blob(51), IndexEntry(PACK_B, "data", 0, 4000, 200, 0, 200))
    assert index.frame_of_digest(bytes.fromhex(_blob(25))) == (PACK_A, 18000)
    assert index.frame_of_digest(bytes.fromhex(_blob(50))) == (PACK_B, 4000)
    assert index.frame_of_digest(bytes.fromhex(_blob(99))) is None
    assert index.pack_end(PACK_A) == 27000 and index.pack_end(PACK_B) == 4100
    assert index.pack_end("c" * 64) is None


def _section(pack: str, rows: list[PackedBlob]) -> object:
    from chalicelib.core.index_format import decode_index

    sections = decode_index(encode_index({pack: rows})[1]).sections
    assert sections is not None
    return sections[pack]


def test_a_binary_file_s_packs_go_in_whole_and_read_as_row_by_row():
    by_rows, by_sections = IndexMap(), IndexMap()
    packs = [(PACK_A, _rows(PACK_A, 0, 30)), (PACK_B, _rows(PACK_B, 20, 20))]  # blobs 20..29 twice
    known = []
    for pack, rows in packs:
        by_rows.add_pack(pack, rows)
        known.append(by_sections.add_section(pack, _section(pack, rows)))  # type: ignore[arg-type]
    assert known == [0, 10]  # the second pack's overlap goes row by row: the first location wins
    assert dict(by_sections) == dict(by_rows) and len(by_sections) == 40
    assert by_sections.pack_end(PACK_A) == by_rows.pack_end(PACK_A) == 3 * 9000
    assert by_sections[_blob(25)].pack == PACK_A
    with pytest.raises(RuntimeError):
        by_sections.freeze().add_section(PACK_A, _section(PACK_A, _rows(PACK_A, 50, 1)))  # type: ignore[arg-type]


def test_a_binary_row_beyond_32_bits_is_kept_whole():
    far = [PackedBlob(_blob(1), "tree", 5 << 32, 10, 20, 3, 4), PackedBlob(_blob(2), "data", 0, 10, 20, 0, 4)]
    index = IndexMap()
    assert index.add_section(PACK_A, _section(PACK_A, far)) == 0  # type: ignore[arg-type]
    assert index[_blob(1)] == IndexEntry(PACK_A, "tree", 5 << 32, 10, 20, 3, 4)  # type: ignore[arg-type]
    assert index[_blob(2)] == IndexEntry(PACK_A, "data", 0, 10, 20, 0, 4)  # type: ignore[arg-type]
    assert index.pack_end(PACK_A) == (5 << 32) + 10
