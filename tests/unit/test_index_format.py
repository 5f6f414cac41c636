"""Index files: round trip, content address, determinism and refusal of malformed files."""

from __future__ import annotations

import hashlib

import orjson
import pytest
import zstandard

from chalicelib.core.errors import FormatError
from chalicelib.core.index_format import IndexEntry, decode_index, encode_index
from chalicelib.core.packs import PackedBlob

PACK_A = "a" * 64
PACK_B = "b" * 64


def _blob(n: int, frame_offset: int, offset: int = 0, kind: str = "data") -> PackedBlob:
    return PackedBlob(f"{n:064x}", kind, frame_offset, 30, 100, offset, 10 + n)  # type: ignore[arg-type]


def test_round_trip_keeps_packs_blobs_and_supersedes() -> None:
    packs = {PACK_B: [_blob(1, 0), _blob(2, 0, 11, "tree")], PACK_A: [_blob(3, 0)]}

    name, data = encode_index(packs, supersedes=["c" * 64])
    decoded = decode_index(data)

    assert name == hashlib.sha256(data).hexdigest()
    assert decoded.packs == packs
    assert list(decoded.packs) == [PACK_A, PACK_B]  # sorted: equal content, equal bytes
    assert decoded.supersedes == ["c" * 64]


def test_entries_map_each_blob_to_its_pack_frame_and_range() -> None:
    _, data = encode_index({PACK_A: [_blob(1, 0), _blob(2, 0, 11, "tree"), _blob(3, 30)]})

    entries = decode_index(data).entries()

    assert entries[f"{2:064x}"] == IndexEntry(  # type: ignore[index]
        pack=PACK_A,  # type: ignore[arg-type]
        type="tree",
        frame_offset=0,
        frame_length=30,
        frame_raw_length=100,
        offset=11,
        raw_length=12,
    )
    assert entries[f"{3:064x}"][2:5] == (30, 30, 100)  # type: ignore[index]
    assert len(entries) == 3


def test_a_blob_in_two_packs_resolves_to_the_first_listed() -> None:
    _, data = encode_index({PACK_B: [_blob(1, 0)], PACK_A: [_blob(1, 0)]})

    assert decode_index(data).entries()[f"{1:064x}"].pack == PACK_A  # type: ignore[index]


def test_the_document_has_the_documented_shape() -> None:
    _, data = encode_index({PACK_A: [_blob(1, 0)]})

    doc = orjson.loads(zstandard.ZstdDecompressor().decompress(data))

    assert doc == {
        "version": 1,
        "packs": [{"id": PACK_A, "blobs": [[f"{1:064x}", "data", 0, 30, 100, 0, 11]]}],
        "supersedes": [],
    }


def _raw(doc: object) -> bytes:
    return zstandard.ZstdCompressor().compress(orjson.dumps(doc))


def _one_row(row: list[object]) -> bytes:
    return _raw({"version": 1, "packs": [{"id": PACK_A, "blobs": [row]}], "supersedes": []})


@pytest.mark.parametrize(
    "data",
    [
        pytest.param(b"not zstd at all", id="not-zstd"),
        pytest.param(zstandard.ZstdCompressor().compress(b"{nope"), id="not-json"),
        pytest.param(_raw([1, 2]), id="not-an-object"),
        pytest.param(_raw({"version": 2, "packs": [], "supersedes": []}), id="unknown-version"),
        pytest.param(_raw({"version": 1, "packs": {}, "supersedes": []}), id="packs-not-list"),
        pytest.param(_raw({"version": 1, "packs": [{"id": "xyz", "blobs": []}], "supersedes": []}), id="bad-pack-id"),
        pytest.param(_raw({"version": 1, "packs": [], "supersedes": ["../x"]}), id="bad-supersedes"),
        pytest.param(_raw({"version": 1, "packs": [{"id": PACK_A, "blobs": []}], "supersedes": []}), id="empty-pack"),
        pytest.param(_one_row(["x", "data", 0, 1, 1, 0, 1]), id="bad-blob-id"),
        pytest.param(_one_row(["a" * 64, "data", 0, 1, 1]), id="per-blob-row"),
        pytest.param(_one_row(["a" * 64, "data", 0, 9, 8, 4, 5]), id="blob-beyond-its-frame"),
        pytest.param(_one_row(["a" * 64, "data", 0, 1 << 30, 8, 0, 8]), id="frame-longer-than-zstd-can-emit"),
    ],
)
def test_malformed_index_files_are_format_errors(data: bytes) -> None:
    with pytest.raises(FormatError):
        decode_index(data)


def test_an_index_from_encoded_rows_is_the_one_orjson_writes_of_the_whole_document():
    from chalicelib.core.index_format import INDEX_FORMAT_VERSION, encode_blob_rows, encode_index_rows
    from chalicelib.core.packs import METADATA_LEVEL

    packs = {
        "b" * 64: [PackedBlob("1" * 64, "data", 0, 10, 20, 0, 20), PackedBlob("2" * 64, "tree", 10, 5, 9, 0, 9)],
        "a" * 64: [PackedBlob("3" * 64, "data", 0, 7, 7, 0, 7)],
    }
    doc = {
        "version": INDEX_FORMAT_VERSION,
        "packs": [{"id": pack, "blobs": [list(b) for b in blobs]} for pack, blobs in sorted(packs.items())],
        "supersedes": ["c" * 64, "d" * 64],
    }
    expected = zstandard.ZstdCompressor(level=METADATA_LEVEL).compress(orjson.dumps(doc))
    index, data = encode_index_rows({p: encode_blob_rows(b) for p, b in packs.items()}, ["d" * 64, "c" * 64, "d" * 64])
    assert data == expected and index == hashlib.sha256(expected).hexdigest()
    assert encode_index(packs, ["c" * 64, "d" * 64]) == (index, data)
    assert decode_index(data).packs == {p: list(b) for p, b in sorted(packs.items())}
