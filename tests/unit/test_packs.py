"""Pack files: round trip, trailer and header parsing, and refusal of damaged packs."""

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
    decompress_blob,
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


def _pack(n: int = 5) -> tuple[str, bytes, list[PackedBlob], list[tuple[str, bytes]]]:
    blobs = _objects(n)
    builder = PackBuilder()
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


def test_single_blob_is_readable_from_its_byte_range_alone() -> None:
    _, data, entries, blobs = _pack(4)
    entry = entries[2]

    frame = data[entry.offset : entry.offset + entry.length]

    assert decompress_blob(frame, entry.raw_length) == blobs[2][1]


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


@pytest.mark.parametrize(
    "rows",
    [
        pytest.param([["a" * 64, "data", 5, 10, 10]], id="does-not-start-at-zero"),
        pytest.param([["a" * 64, "data", 0, 10, 10], ["b" * 64, "data", 11, 10, 10]], id="gap"),
        pytest.param([["A" * 64, "data", 0, 10, 10]], id="uppercase-id"),
        pytest.param([["a" * 63, "data", 0, 10, 10]], id="short-id"),
        pytest.param([["a" * 64, "blob", 0, 10, 10]], id="unknown-type"),
        pytest.param([["a" * 64, "data", 0, True, 10]], id="bool-length"),
        pytest.param([["a" * 64, "data", 0, -1, 10]], id="negative"),
        pytest.param([["a" * 64, "data", 0, 10]], id="four-fields"),
        pytest.param([], id="empty"),
    ],
)
def test_malformed_header_entries_are_format_errors(rows: list[list[object]]) -> None:
    with pytest.raises(FormatError):
        decode_header(_header(rows))


def test_header_of_unknown_version_is_refused() -> None:
    with pytest.raises(FormatError, match="version"):
        decode_header(_header([["a" * 64, "data", 0, 10, 10]], version=2))


def test_header_encoding_round_trips() -> None:
    entries = [PackedBlob("a" * 64, "data", 0, 10, 30), PackedBlob("b" * 64, "tree", 10, 4, 4)]  # type: ignore[arg-type]

    assert decode_header(encode_header(entries)) == entries


def test_damaged_blob_frame_is_a_format_error_not_garbage() -> None:
    _, data, entries, _ = _pack(2)
    entry = entries[1]
    frame = bytearray(data[entry.offset : entry.offset + entry.length])
    frame[0] ^= 0xFF  # the zstd magic number

    with pytest.raises(FormatError):
        decompress_blob(bytes(frame), entry.raw_length)


def test_frame_claiming_more_than_its_raw_length_is_refused_before_decompressing() -> None:
    frame = zstandard.ZstdCompressor().compress(b"x" * 1000)

    with pytest.raises(FormatError, match="claims 1000 bytes"):
        decompress_blob(frame, 10)


def test_builder_refuses_unknown_types_and_empty_packs_and_resets_after_finish() -> None:
    builder = PackBuilder()
    with pytest.raises(ValueError):
        builder.add("a" * 64, b"{}", "snapshot")  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        builder.finish()

    (bid, raw), *_ = _objects(1)
    builder.add(bid, raw)
    assert len(builder) == 1 and builder.size > 0
    builder.finish()
    assert len(builder) == 0 and builder.size == 0
