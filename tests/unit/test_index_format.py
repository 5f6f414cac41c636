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


def _blob(n: int, offset: int, kind: str = "data") -> PackedBlob:
    return PackedBlob(f"{n:064x}", kind, offset, 10 + n, 40 + n)  # type: ignore[arg-type]


def test_round_trip_keeps_packs_blobs_and_supersedes() -> None:
    packs = {PACK_B: [_blob(1, 0), _blob(2, 11, "tree")], PACK_A: [_blob(3, 0)]}

    name, data = encode_index(packs, supersedes=["c" * 64])
    decoded = decode_index(data)

    assert name == hashlib.sha256(data).hexdigest()
    assert decoded.packs == packs
    assert list(decoded.packs) == [PACK_A, PACK_B]  # sorted: equal content, equal bytes
    assert decoded.supersedes == ["c" * 64]


def test_entries_map_each_blob_to_its_pack_and_range() -> None:
    _, data = encode_index({PACK_A: [_blob(1, 0), _blob(2, 11, "tree")]})

    entries = decode_index(data).entries()

    assert entries[f"{2:064x}"] == IndexEntry(pack=PACK_A, type="tree", offset=11, length=12, raw_length=42)  # type: ignore[index,arg-type]
    assert len(entries) == 2


def test_a_blob_in_two_packs_resolves_to_the_first_listed() -> None:
    _, data = encode_index({PACK_B: [_blob(1, 0)], PACK_A: [_blob(1, 0)]})

    assert decode_index(data).entries()[f"{1:064x}"].pack == PACK_A  # type: ignore[index]


def test_the_document_has_the_documented_shape() -> None:
    _, data = encode_index({PACK_A: [_blob(1, 0)]})

    doc = orjson.loads(zstandard.ZstdDecompressor().decompress(data))

    assert doc == {
        "version": 1,
        "packs": [{"id": PACK_A, "blobs": [[f"{1:064x}", "data", 0, 11, 41]]}],
        "supersedes": [],
    }


def _raw(doc: object) -> bytes:
    return zstandard.ZstdCompressor().compress(orjson.dumps(doc))


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
        pytest.param(
            _raw({"version": 1, "packs": [{"id": PACK_A, "blobs": [["x", "data", 0, 1, 1]]}], "supersedes": []}),
            id="bad-blob-id",
        ),
    ],
)
def test_malformed_index_files_are_format_errors(data: bytes) -> None:
    with pytest.raises(FormatError):
        decode_index(data)
