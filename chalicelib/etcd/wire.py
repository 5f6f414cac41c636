"""The few etcd v3 protobuf messages Lifeboat uses, encoded and decoded by hand (no protobuf runtime needed)."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

from chalicelib.etcd.errors import WireError

# Service methods (etcdserverpb, api/etcdserverpb/rpc.proto).
SNAPSHOT_METHOD = "/etcdserverpb.Maintenance/Snapshot"
STATUS_METHOD = "/etcdserverpb.Maintenance/Status"
RANGE_METHOD = "/etcdserverpb.KV/Range"

_VARINT, _I64, _LEN, _I32 = 0, 1, 2, 5


@dataclass(frozen=True)
class Header:
    """ResponseHeader: cluster_id=1, member_id=2, revision=3, raft_term=4."""

    cluster_id: int = 0
    member_id: int = 0
    revision: int = 0
    raft_term: int = 0


@dataclass(frozen=True)
class SnapshotChunk:
    """SnapshotResponse: header=1, remaining_bytes=2, blob=3, version=4 (the version only from etcd 3.6 on)."""

    remaining_bytes: int
    blob: bytes
    header: Header | None = None
    version: str = ""


@dataclass(frozen=True)
class MemberStatus:
    """StatusResponse: header=1, version=2, dbSize=3, leader=4, raftIndex=5, raftTerm=6, errors=8, isLearner=10."""

    header: Header
    version: str
    db_size: int
    leader: int
    raft_index: int
    raft_term: int
    errors: tuple[str, ...] = ()
    is_learner: bool = False

    @property
    def member_id(self) -> str:
        """Member ids as etcdctl prints them (hex)."""
        return f"{self.header.member_id:x}"


@dataclass(frozen=True)
class KeyCount:
    """What a count-only Range over the whole keyspace tells: how many keys, at which revision."""

    count: int
    revision: int


def fields(data: bytes) -> Iterator[tuple[int, int, int | bytes]]:
    """(field number, wire type, value) of each field of one message; varints as int, length-delimited as bytes."""
    pos, end = 0, len(data)
    while pos < end:
        key, pos = _varint(data, pos)
        number, wire = key >> 3, key & 7
        if wire == _VARINT:
            value, pos = _varint(data, pos)
            yield number, wire, value
        elif wire == _LEN:
            length, pos = _varint(data, pos)
            if pos + length > end:
                raise WireError(f"field {number}: length {length} runs past the message")
            yield number, wire, data[pos : pos + length]
            pos += length
        elif wire == _I64:
            pos += 8
        elif wire == _I32:
            pos += 4
        else:
            raise WireError(f"field {number}: unsupported wire type {wire}")
    if pos != end:
        raise WireError("message ends inside a fixed-width field")


def _varint(data: bytes, pos: int) -> tuple[int, int]:
    result = shift = 0
    while True:
        if pos >= len(data):
            raise WireError("message ends inside a varint")
        byte = data[pos]
        pos += 1
        result |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return result, pos
        shift += 7
        if shift > 63:
            raise WireError("varint longer than 64 bits")


def encode_varint(value: int) -> bytes:
    if value < 0:
        value += 1 << 64  # int64 negatives are ten-byte two's complement on the wire
    out = bytearray()
    while True:
        byte = value & 0x7F
        value >>= 7
        if value:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def _field_bytes(number: int, value: bytes) -> bytes:
    return encode_varint(number << 3 | _LEN) + encode_varint(len(value)) + value


def _field_varint(number: int, value: int) -> bytes:
    return encode_varint(number << 3 | _VARINT) + encode_varint(value)


def _signed(value: int) -> int:
    return value - (1 << 64) if value >= 1 << 63 else value


def encode_empty(_: object = None) -> bytes:
    """SnapshotRequest and StatusRequest have no fields."""
    return b""


def encode_count_all(_: object = None) -> bytes:
    """RangeRequest{key="\\0", range_end="\\0", count_only=true}: every key, counted by the server."""
    return _field_bytes(1, b"\x00") + _field_bytes(2, b"\x00") + _field_varint(9, 1)


def decode_header(data: bytes) -> Header:
    values: dict[int, int] = {}
    for number, wire, value in fields(data):
        if wire == _VARINT and isinstance(value, int):
            values[number] = value
    return Header(
        cluster_id=values.get(1, 0),
        member_id=values.get(2, 0),
        revision=_signed(values.get(3, 0)),
        raft_term=values.get(4, 0),
    )


def decode_snapshot_chunk(data: bytes) -> SnapshotChunk:
    remaining, blob, version = 0, b"", ""
    header: Header | None = None
    for number, _wire, value in fields(data):
        if number == 1 and isinstance(value, bytes):
            header = decode_header(value)
        elif number == 2 and isinstance(value, int):
            remaining = value
        elif number == 3 and isinstance(value, bytes):
            blob = value
        elif number == 4 and isinstance(value, bytes):
            version = value.decode("utf-8", "replace")
    return SnapshotChunk(remaining_bytes=remaining, blob=blob, header=header, version=version)


def encode_snapshot_chunk(chunk: SnapshotChunk) -> bytes:
    """For tests that stand in for etcd: the inverse of ``decode_snapshot_chunk``."""
    out = b""
    if chunk.header is not None:
        out += _field_bytes(1, _field_varint(2, chunk.header.member_id) + _field_varint(3, chunk.header.revision))
    if chunk.remaining_bytes:
        out += _field_varint(2, chunk.remaining_bytes)
    if chunk.blob:
        out += _field_bytes(3, chunk.blob)
    if chunk.version:
        out += _field_bytes(4, chunk.version.encode())
    return out


def decode_status(data: bytes) -> MemberStatus:
    header = Header()
    ints: dict[int, int] = {}
    version = ""
    errors: list[str] = []
    for number, _wire, value in fields(data):
        if number == 1 and isinstance(value, bytes):
            header = decode_header(value)
        elif number == 2 and isinstance(value, bytes):
            version = value.decode("utf-8", "replace")
        elif number == 8 and isinstance(value, bytes):
            errors.append(value.decode("utf-8", "replace"))
        elif isinstance(value, int):
            ints[number] = value
    return MemberStatus(
        header=header,
        version=version,
        db_size=_signed(ints.get(3, 0)),
        leader=ints.get(4, 0),
        raft_index=ints.get(5, 0),
        raft_term=ints.get(6, 0),
        errors=tuple(errors),
        is_learner=bool(ints.get(10, 0)),
    )


def decode_count(data: bytes) -> KeyCount:
    """RangeResponse: header=1, kvs=2, more=3, count=4."""
    header = Header()
    count = 0
    for number, _wire, value in fields(data):
        if number == 1 and isinstance(value, bytes):
            header = decode_header(value)
        elif number == 4 and isinstance(value, int):
            count = _signed(value)
    return KeyCount(count=count, revision=header.revision)
