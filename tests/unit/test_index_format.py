"""Index files: round trip, content address, determinism and refusal of malformed files."""

from __future__ import annotations

import hashlib
import struct

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


def test_the_file_has_the_documented_binary_layout() -> None:
    _, data = encode_index({PACK_A: [_blob(1, 0), _blob(2, 1 << 33, 11, "tree")]}, supersedes=["c" * 64])

    raw = zstandard.ZstdDecompressor().decompress(data)

    expected = b"".join(
        [
            struct.pack("<4sIII", b"LBIX", 2, 1, 1),
            bytes.fromhex("c" * 64),
            bytes.fromhex(PACK_A),
            struct.pack("<I", 2),
            bytes.fromhex(f"{1:064x}") + bytes.fromhex(f"{2:064x}"),
            bytes([0, 1]),  # types
            struct.pack("<2Q", 0, 1 << 33),  # frame offsets
            struct.pack("<2I", 30, 30),  # frame lengths
            struct.pack("<2I", 100, 100),  # frame raw lengths
            struct.pack("<2I", 0, 11),  # offsets
            struct.pack("<2I", 11, 12),  # raw lengths
        ]
    )
    assert raw == expected


def _json_index(packs: dict[str, list[PackedBlob]], supersedes: list[str] | None = None) -> bytes:
    """A version 1 index file, as the code before binary index files wrote it."""
    doc = {
        "version": 1,
        "packs": [{"id": pack, "blobs": [list(b) for b in blobs]} for pack, blobs in sorted(packs.items())],
        "supersedes": sorted(supersedes or []),
    }
    return zstandard.ZstdCompressor(level=1).compress(orjson.dumps(doc))


def test_a_json_index_file_of_version_1_still_decodes_to_the_same_packs() -> None:
    packs = {PACK_B: [_blob(1, 0), _blob(2, 0, 11, "tree")], PACK_A: [_blob(3, 0)]}

    old = decode_index(_json_index(packs, ["c" * 64]))
    new = decode_index(encode_index(packs, supersedes=["c" * 64])[1])

    assert old.sections is None and new.sections is not None
    assert old.packs == new.packs == packs
    assert old.supersedes == new.supersedes == ["c" * 64]
    assert old.entries() == new.entries()


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


def _binary(*parts: bytes) -> bytes:
    return zstandard.ZstdCompressor().compress(b"".join(parts))


def _pack(pack: str, *rows: tuple[int, int, int, int, int, int], count: int | None = None) -> bytes:
    """A pack's part of a binary index file: its id, count, blob ids, then each field's column."""
    digests = b"".join(bytes([n]) * 32 for n in range(1, len(rows) + 1))
    columns = list(zip(*rows, strict=True)) or [()] * 6
    n = len(rows)
    fields = [bytes(columns[0]), struct.pack(f"<{n}Q", *columns[1])]
    fields += [struct.pack(f"<{n}I", *column) for column in columns[2:]]
    return bytes.fromhex(pack) + struct.pack("<I", n if count is None else count) + digests + b"".join(fields)


_GOOD_ROW = (0, 0, 30, 100, 0, 10)


@pytest.mark.parametrize(
    ("data", "says"),
    [
        pytest.param(_binary(struct.pack("<4sIII", b"LBIX", 3, 0, 0)), "version 3", id="unknown-version"),
        pytest.param(_binary(b"LBIX\x02\x00"), "shorter than its header", id="short-header"),
        pytest.param(_binary(struct.pack("<4sIII", b"LBIX", 2, 0, 2), b"c" * 32), "supersedes", id="short-supersedes"),
        pytest.param(
            _binary(struct.pack("<4sIII", b"LBIX", 2, 2, 0), _pack(PACK_A, _GOOD_ROW)), "pack's id", id="few-packs"
        ),
        pytest.param(
            _binary(struct.pack("<4sIII", b"LBIX", 2, 1, 0), _pack(PACK_A, _GOOD_ROW, count=3)),
            "3 blobs",
            id="short-rows",
        ),
        pytest.param(
            _binary(struct.pack("<4sIII", b"LBIX", 2, 1, 0), _pack(PACK_A, _GOOD_ROW), b"x"), "after", id="trailing"
        ),
        pytest.param(_binary(struct.pack("<4sIII", b"LBIX", 2, 1, 0), _pack(PACK_A)), "without any blob", id="empty"),
        pytest.param(
            _binary(struct.pack("<4sIII", b"LBIX", 2, 2, 0), _pack(PACK_B, _GOOD_ROW), _pack(PACK_A, _GOOD_ROW)),
            "increasing",
            id="unsorted-packs",
        ),
        pytest.param(
            _binary(struct.pack("<4sIII", b"LBIX", 2, 1, 0), _pack(PACK_A, _GOOD_ROW, (2, 0, 30, 100, 0, 10))),
            "unknown type code 2",
            id="unknown-type",
        ),
        pytest.param(
            _binary(struct.pack("<4sIII", b"LBIX", 2, 1, 0), _pack(PACK_A, _GOOD_ROW, (0, 0, 9, 8, 4, 5))),
            "impossible range",
            id="blob-beyond-its-frame",
        ),
        pytest.param(
            _binary(struct.pack("<4sIII", b"LBIX", 2, 1, 0), _pack(PACK_A, (0, 0, 1 << 30, 8, 0, 8))),
            "impossible range",
            id="frame-longer-than-zstd-can-emit",
        ),
        pytest.param(
            _binary(struct.pack("<4sIII", b"LBIX", 2, 1, 0), _pack(PACK_A, (0, 0, 1, (512 << 20) + 1, 0, 1))),
            "impossible range",
            id="frame-beyond-the-cap",
        ),
        pytest.param(
            _binary(struct.pack("<4sIII", b"LBIX", 2, 1, 0), _pack(PACK_A, (0, 0, 0, 8, 0, 8))),
            "impossible range",
            id="empty-frame",
        ),
    ],
)
def test_malformed_binary_index_files_are_format_errors_naming_what(data: bytes, says: str) -> None:
    with pytest.raises(FormatError, match=says):
        decode_index(data)


def test_a_bad_row_is_named_by_its_blob_and_pack() -> None:
    data = _binary(struct.pack("<4sIII", b"LBIX", 2, 1, 0), _pack(PACK_A, _GOOD_ROW, (0, 0, 9, 8, 4, 5)))
    with pytest.raises(FormatError, match=f"blob {'02' * 32} of pack {PACK_A}"):
        decode_index(data)


def test_an_index_from_encoded_rows_is_the_one_encode_index_writes() -> None:
    from chalicelib.core.index_format import encode_blob_rows, encode_index_rows

    packs = {
        "b" * 64: [PackedBlob("1" * 64, "data", 0, 10, 20, 0, 20), PackedBlob("2" * 64, "tree", 10, 5, 9, 0, 9)],
        "a" * 64: [PackedBlob("3" * 64, "data", 0, 7, 7, 0, 7)],
    }
    index, data = encode_index_rows({p: encode_blob_rows(b) for p, b in packs.items()}, ["d" * 64, "c" * 64, "d" * 64])
    assert index == hashlib.sha256(data).hexdigest()
    assert encode_index(packs, ["c" * 64, "d" * 64]) == (index, data)
    decoded = decode_index(data)
    assert decoded.packs == {p: list(b) for p, b in sorted(packs.items())}
    assert decoded.supersedes == ["c" * 64, "d" * 64]
    with pytest.raises(ValueError, match="without blobs"):
        encode_blob_rows([])
