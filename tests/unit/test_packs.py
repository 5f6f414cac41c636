"""Pack files: round trip, frames of many blobs, trailer and header parsing, and refusal of damaged packs."""

from __future__ import annotations

import hashlib
import struct

import orjson
import pytest
import zstandard

from chalicelib.core.canonical import canonical_blob
from chalicelib.core.errors import FormatError
from chalicelib.core.packs import (
    BLOB_DATA,
    BLOB_TREE,
    PACK_MAGIC,
    TRAILER,
    TRAILER_SIZE,
    PackBuilder,
    PackedBlob,
    TailTooShort,
    data_length,
    decode_header,
    decompress_frame,
    encode_header,
    iter_blobs,
    parse_trailer,
    read_pack,
    read_tail,
)


def _objects(n: int) -> list[tuple[str, bytes]]:
    blobs = []
    for i in range(n):
        obj = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": f"cm-{i}", "namespace": "shop"}}
        obj["data"] = {"key": "value " * (i % 7), "index": str(i)}
        blobs.append(canonical_blob(obj))
    return blobs


def _pack(n: int = 5, frame_target: int = 64 << 10) -> tuple[str, bytes, list[PackedBlob], list[tuple[str, bytes]]]:
    blobs = _objects(n)
    builder = PackBuilder(frame_target=frame_target)
    for i, (bid, data) in enumerate(blobs):
        builder.add(bid, data, BLOB_TREE if i == 0 else BLOB_DATA)
    pid, data, entries = builder.finish()
    return pid, data, entries, blobs


def test_round_trip_returns_every_blob_with_its_type_and_the_pack_is_named_by_its_hash() -> None:
    pid, data, entries, blobs = _pack(5)

    assert pid == hashlib.sha256(data).hexdigest()
    assert read_pack(data) == entries
    assert [(e.blob_id, raw) for e, raw in iter_blobs(data, entries)] == blobs
    assert entries[0].type == BLOB_TREE and {e.type for e in entries[1:]} == {BLOB_DATA}
    assert [e.raw_length for e in entries] == [len(raw) for _, raw in blobs]


def test_small_blobs_share_one_frame_at_the_default_target() -> None:
    _, data, entries, blobs = _pack(5)

    assert {(e.frame_offset, e.frame_length) for e in entries} == {(0, data_length(entries))}
    assert [e.offset for e in entries] == [sum(len(raw) for _, raw in blobs[:i]) for i in range(5)]
    assert entries[0].frame_raw_length == sum(len(raw) for _, raw in blobs)


def test_single_blob_is_readable_from_its_frame_alone() -> None:
    _, data, entries, blobs = _pack(12, frame_target=300)
    entry = entries[7]

    frame = decompress_frame(data[entry.frame_offset : entry.frame_offset + entry.frame_length], entry.frame_raw_length)

    assert frame[entry.offset : entry.offset + entry.raw_length] == blobs[7][1]


def test_frames_close_at_the_target_and_tile_the_pack() -> None:
    _, data, entries, blobs = _pack(40, frame_target=1024)
    frames: dict[int, list[PackedBlob]] = {}
    for entry in entries:
        frames.setdefault(entry.frame_offset, []).append(entry)

    assert len(frames) >= 5
    assert all(len(members) > 1 for members in frames.values())
    *full, last = frames.values()
    assert all(f[0].frame_raw_length >= 1024 and f[0].frame_raw_length - f[-1].raw_length < 1024 for f in full)
    assert last[0].frame_raw_length == sum(e.raw_length for e in last)
    ends = [0] + [f[0].frame_offset + f[0].frame_length for f in frames.values()]
    assert list(frames) == ends[:-1]  # each frame starts where the one before ends
    assert read_pack(data) == entries
    assert [(e.blob_id, raw) for e, raw in iter_blobs(data, entries)] == blobs


def test_a_blob_larger_than_the_frame_target_gets_a_frame_of_its_own() -> None:
    small = _objects(3)
    big = canonical_blob({"kind": "ConfigMap", "data": {"blob": "x" * 5000}})
    builder = PackBuilder(frame_target=1024)
    for bid, raw in [small[0], big, small[1], small[2]]:
        builder.add(bid, raw)

    _, data, entries = builder.finish()

    first, alone, *rest = entries
    assert first.frame_raw_length == first.raw_length  # closed early to make room, not padded
    assert (alone.blob_id, alone.offset, alone.frame_raw_length) == (big[0], 0, len(big[1]))
    assert alone.frame_offset == first.frame_offset + first.frame_length
    assert {e.frame_offset for e in rest} == {alone.frame_offset + alone.frame_length}
    assert dict((e.blob_id, raw) for e, raw in iter_blobs(data, read_pack(data)))[big[0]] == big[1]


def test_trailer_names_header_length_and_tail_alone_gives_the_entries() -> None:
    _, data, entries, _ = _pack(3)
    header_length, magic, version = struct.unpack("<I4sI", data[-TRAILER_SIZE:])

    assert magic == PACK_MAGIC and version == 1
    assert parse_trailer(data) == header_length
    assert data_length(entries) + header_length + TRAILER_SIZE == len(data)
    assert read_tail(data[-(header_length + TRAILER_SIZE) :]) == entries


def test_short_tail_says_how_many_bytes_are_needed() -> None:
    _, data, entries, _ = _pack(3)
    needed = parse_trailer(data) + TRAILER_SIZE

    with pytest.raises(TailTooShort) as info:
        read_tail(data[-(needed - 1) :])

    assert info.value.needed == needed
    assert read_tail(data[-info.value.needed :]) == entries


@pytest.mark.parametrize(
    "damage",
    [
        pytest.param(lambda d: d[:-TRAILER_SIZE] + TRAILER.pack(10, b"XXXX", 1), id="bad-magic"),
        pytest.param(lambda d: d[:-TRAILER_SIZE] + TRAILER.pack(10, PACK_MAGIC, 2), id="unknown-version"),
        pytest.param(lambda d: d[:-TRAILER_SIZE] + TRAILER.pack(0, PACK_MAGIC, 1), id="zero-header"),
        pytest.param(lambda d: d[:-1], id="truncated"),
        pytest.param(lambda d: d[:5], id="shorter-than-trailer"),
        pytest.param(lambda d: d[:-TRAILER_SIZE] + TRAILER.pack(len(d) * 2, PACK_MAGIC, 1), id="header-too-long"),
    ],
)
def test_corrupt_trailer_is_a_format_error(damage) -> None:  # type: ignore[no-untyped-def]
    _, data, _, _ = _pack(3)

    with pytest.raises(FormatError):
        read_pack(damage(data))


def test_flipped_byte_in_header_is_a_format_error() -> None:
    _, data, _, _ = _pack(3)
    header_start = len(data) - TRAILER_SIZE - parse_trailer(data)
    damaged = bytearray(data)
    damaged[header_start + 4] ^= 0xFF

    with pytest.raises(FormatError):
        read_pack(bytes(damaged))


def test_extra_bytes_before_the_header_are_refused() -> None:
    _, data, _, _ = _pack(2)
    header_length = parse_trailer(data)
    split = len(data) - TRAILER_SIZE - header_length
    padded = data[:split] + b"\x00" * 7 + data[split:]

    with pytest.raises(FormatError, match="accounts for a different size"):
        read_pack(padded)


def _header(rows: list[list[object]], version: int = 1) -> bytes:
    return zstandard.ZstdCompressor().compress(orjson.dumps({"version": version, "blobs": rows}))


A, B, C = "a" * 64, "b" * 64, "c" * 64


@pytest.mark.parametrize(
    "rows",
    [
        pytest.param([[A, "data", 5, 10, 10, 0, 10]], id="frame-does-not-start-at-zero"),
        pytest.param([[A, "data", 0, 10, 10, 0, 10], [B, "data", 11, 10, 10, 0, 10]], id="gap-between-frames"),
        pytest.param([[A, "data", 0, 10, 20, 0, 10], [B, "data", 0, 10, 20, 11, 9]], id="gap-inside-a-frame"),
        pytest.param([[A, "data", 0, 10, 20, 0, 10]], id="frame-not-filled"),
        pytest.param([[A, "data", 0, 10, 10, 0, 10], [B, "data", 5, 10, 10, 0, 10]], id="overlapping-frames"),
        pytest.param([[A, "data", 0, 10, 20, 0, 10], [B, "data", 0, 11, 20, 10, 10]], id="frame-sizes-disagree"),
        pytest.param([[A, "data", 0, 10, 20, 5, 10], [B, "data", 0, 10, 20, 0, 5]], id="out-of-order"),
        pytest.param([[A, "data", 0, 10, 10, 0, 11]], id="blob-beyond-its-frame"),
        pytest.param([[A, "data", 0, 5000, 10, 0, 10]], id="frame-longer-than-zstd-can-emit"),
        pytest.param([[A, "data", 0, 10, (512 << 20) + 1, 0, 10]], id="frame-over-the-cap"),
        pytest.param([["A" * 64, "data", 0, 10, 10, 0, 10]], id="uppercase-id"),
        pytest.param([["a" * 63, "data", 0, 10, 10, 0, 10]], id="short-id"),
        pytest.param([[A, "blob", 0, 10, 10, 0, 10]], id="unknown-type"),
        pytest.param([[A, "data", 0, True, 10, 0, 10]], id="bool-length"),
        pytest.param([[A, "data", 0, -1, 10, 0, 10]], id="negative"),
        pytest.param([[A, "data", 0, 0, 10, 0, 10]], id="empty-frame"),
        pytest.param([[A, "data", 0, 10, 10, 10]], id="six-fields"),
        pytest.param([], id="empty"),
    ],
)
def test_malformed_header_entries_are_format_errors(rows: list[list[object]]) -> None:
    with pytest.raises(FormatError):
        decode_header(_header(rows))


def test_well_formed_frames_decode() -> None:
    rows: list[list[object]] = [
        [A, "data", 0, 10, 30, 0, 20],
        [B, "tree", 0, 10, 30, 20, 10],
        [C, "data", 10, 4, 0, 0, 0],  # an empty blob alone in its frame
    ]

    assert [list(e) for e in decode_header(_header(rows))] == rows


def test_header_of_unknown_version_is_refused() -> None:
    with pytest.raises(FormatError, match="version"):
        decode_header(_header([[A, "data", 0, 10, 10, 0, 10]], version=2))


def test_header_encoding_round_trips_and_has_the_documented_rows() -> None:
    entries = [
        PackedBlob(A, "data", 0, 10, 30, 0, 26),  # type: ignore[arg-type]
        PackedBlob(B, "tree", 0, 10, 30, 26, 4),  # type: ignore[arg-type]
        PackedBlob(C, "data", 10, 4, 4, 0, 4),  # type: ignore[arg-type]
    ]
    header = encode_header(entries)

    assert decode_header(header) == entries
    assert orjson.loads(zstandard.ZstdDecompressor().decompress(header)) == {
        "version": 1,
        "blobs": [[A, "data", 0, 10, 30, 0, 26], [B, "tree", 0, 10, 30, 26, 4], [C, "data", 10, 4, 4, 0, 4]],
    }


def test_damaged_frame_is_a_format_error_not_garbage() -> None:
    _, data, entries, _ = _pack(2)
    entry = entries[1]
    frame = bytearray(data[entry.frame_offset : entry.frame_offset + entry.frame_length])
    frame[0] ^= 0xFF  # the zstd magic number

    with pytest.raises(FormatError):
        decompress_frame(bytes(frame), entry.frame_raw_length)


def test_frame_claiming_more_than_its_raw_length_is_refused_before_decompressing() -> None:
    frame = zstandard.ZstdCompressor().compress(b"x" * 1000)

    with pytest.raises(FormatError, match="claims 1000 bytes"):
        decompress_frame(frame, 10)


def test_frame_shorter_than_its_raw_length_is_refused() -> None:
    frame = zstandard.ZstdCompressor().compress(b"x" * 1000)

    with pytest.raises(FormatError, match="expected 2000"):
        decompress_frame(frame, 2000)


def test_builder_refuses_unknown_types_and_empty_packs_and_resets_after_finish() -> None:
    builder = PackBuilder()
    with pytest.raises(ValueError, match="unknown blob type"):
        builder.add("a" * 64, b"{}", "snapshot")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="an empty pack is never written"):
        builder.finish()

    (bid, raw), *_ = _objects(1)
    builder.add(bid, raw)
    assert len(builder) == 1 and builder.size == len(raw)  # the open frame counts raw
    builder.finish()
    assert len(builder) == 0 and builder.size == 0
    with pytest.raises(ValueError, match="frame_target must be positive"):
        PackBuilder(frame_target=0)


_GOOD_ROW = ["ab" * 32, "data", 0, 100, 1000, 10, 20]


@pytest.mark.parametrize(
    ("row", "message"),
    [
        pytest.param(["ab" * 32, "data", 0, 100, 1000, 10], "must be \\[id, type", id="six fields"),
        pytest.param("not a row", "must be \\[id, type", id="not a list"),
        pytest.param(["AB" * 32, "data", 0, 100, 1000, 10, 20], "invalid blob id", id="upper-case id"),
        pytest.param(["ab" * 32, "blob", 0, 100, 1000, 10, 20], "unknown type", id="unknown type"),
        pytest.param(["ab" * 32, "data", 0, True, 1000, 10, 20], "non-integer", id="a bool for a length"),
        pytest.param(["ab" * 32, "data", 0, 100, 1000, 990, 20], "impossible range", id="past its frame"),
        pytest.param(["ab" * 32, "data", -1, 100, 1000, 10, 20], "impossible range", id="negative offset"),
        pytest.param(["ab" * 32, "data", 0, 3000, 1000, 10, 20], "impossible range", id="frame beyond bound"),
    ],
)
def test_from_rows_refuses_a_bad_row_anywhere_and_names_what_is_wrong(row, message):
    with pytest.raises(FormatError, match=message):
        PackedBlob.from_rows([_GOOD_ROW, row, _GOOD_ROW])
    with pytest.raises(FormatError, match=message):
        PackedBlob.from_row(row)


def test_from_rows_makes_the_entries_from_row_makes():
    rows = [_GOOD_ROW, ["cd" * 32, "tree", 100, 50, 64, 0, 64]]
    assert PackedBlob.from_rows(rows) == [PackedBlob.from_row(r) for r in rows] == [tuple(r) for r in rows]
