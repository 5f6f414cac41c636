"""The hand-written etcd protobuf codec and the snapshot stream reader (trailing SHA-256, framing)."""

from __future__ import annotations

import hashlib

import pytest

from chalicelib.etcd import SnapshotChunk, SnapshotCorrupt, SnapshotIncomplete
from chalicelib.etcd.snapshot import SnapshotReader
from chalicelib.etcd.wire import (
    Header,
    WireError,
    decode_count,
    decode_snapshot_chunk,
    decode_status,
    encode_count_all,
    encode_snapshot_chunk,
    encode_varint,
    fields,
)


def stream(data: bytes, size: int = 7) -> list[SnapshotChunk]:
    """Chunks the way etcd's server sends them: data with the bytes remaining, then sha256(data) alone."""
    out, sent = [], 0
    while sent < len(data):
        blob = data[sent : sent + size]
        sent += len(blob)
        out.append(SnapshotChunk(remaining_bytes=len(data) - sent, blob=blob))
    out.append(SnapshotChunk(remaining_bytes=0, blob=hashlib.sha256(data).digest()))
    return out


def test_varints_round_trip() -> None:
    for value in (0, 1, 127, 128, 300, 2**32, 2**63 - 1):
        encoded = encode_varint(value)
        assert list(fields(encode_varint(1 << 3) + encoded)) == [(1, 0, value)]
    assert len(encode_varint(-1)) == 10


def test_snapshot_chunk_round_trip() -> None:
    chunk = SnapshotChunk(remaining_bytes=12345, blob=b"\x00\x01data", header=Header(member_id=7, revision=42))
    decoded = decode_snapshot_chunk(encode_snapshot_chunk(chunk))
    assert decoded.remaining_bytes == 12345 and decoded.blob == b"\x00\x01data"
    assert decoded.header == Header(member_id=7, revision=42)
    assert decode_snapshot_chunk(encode_snapshot_chunk(SnapshotChunk(0, b"", version="3.6.0"))).version == "3.6.0"


def test_status_and_range_responses() -> None:
    header = b"\x08\x01\x10\x02\x18\x1f\x20\x03"  # cluster 1, member 2, revision 31, term 3
    status = b"\x0a" + bytes([len(header)]) + header + b"\x12\x053.5.1\x18\x80\x80\x10\x20\x02\x42\x03bad\x50\x01"
    decoded = decode_status(status)
    assert (decoded.version, decoded.db_size, decoded.leader, decoded.errors, decoded.is_learner) == (
        "3.5.1",
        262144,
        2,
        ("bad",),
        True,
    )
    assert decoded.header.revision == 31 and decoded.member_id == "2"
    count = decode_count(b"\x0a" + bytes([len(header)]) + header + b"\x20\xb8\x17")
    assert (count.count, count.revision) == (3000, 31)
    assert list(fields(encode_count_all())) == [(1, 2, b"\x00"), (2, 2, b"\x00"), (9, 0, 1)]


def test_truncated_messages_are_wire_errors() -> None:
    with pytest.raises(WireError):
        list(fields(b"\x1a\x05ab"))
    with pytest.raises(WireError):
        list(fields(b"\x10\x80"))


def test_reader_yields_data_then_trailer() -> None:
    data = bytes(range(256)) * 3
    reader = SnapshotReader(stream(data))
    out = b"".join(reader)
    assert out == data + hashlib.sha256(data).digest()
    assert reader.db_size == len(data) and reader.db_sha256 == hashlib.sha256(data).hexdigest()


def test_reader_keeps_a_last_data_chunk_that_fills_its_buffer() -> None:
    data = b"x" * 21  # three full chunks: the last data message says 0 remaining, the checksum follows
    assert b"".join(SnapshotReader(stream(data, size=7))) == data + hashlib.sha256(data).digest()


@pytest.mark.parametrize("cut", [1, 3, -1], ids=["first-chunk-only", "mid-data", "checksum-missing"])
def test_a_stream_cut_short_is_incomplete(cut: int) -> None:
    chunks = stream(b"0123456789" * 5)[:cut]
    with pytest.raises(SnapshotIncomplete):
        b"".join(SnapshotReader(chunks))


def test_an_empty_stream_is_incomplete() -> None:
    with pytest.raises(SnapshotIncomplete):
        list(SnapshotReader([]))


def test_a_flipped_byte_is_corrupt_and_the_trailer_is_never_yielded() -> None:
    data = b"0123456789" * 5
    chunks = stream(data)
    bad = bytearray(chunks[2].blob)
    bad[0] ^= 0x01
    chunks[2] = SnapshotChunk(chunks[2].remaining_bytes, bytes(bad))
    got: list[bytes] = []
    with pytest.raises(SnapshotCorrupt, match="checksum mismatch"):  # noqa: PT012 -- raised mid-stream
        for piece in SnapshotReader(chunks):
            got.append(piece)
    assert b"".join(got) == data[:14] + bytes([data[14] ^ 1]) + data[15:]


def test_framing_errors_are_corrupt() -> None:
    chunks = stream(b"abcdefghijklmn")
    with pytest.raises(SnapshotCorrupt, match="went on after"):
        list(SnapshotReader([*chunks, SnapshotChunk(0, b"more")]))
    wrong = [SnapshotChunk(7, b"abcdefg"), SnapshotChunk(3, b"hijklmn"), *chunks[2:]]
    with pytest.raises(SnapshotCorrupt, match="remain"):
        list(SnapshotReader(wrong))
