"""Pack files: many zstd-compressed blobs, then a header listing them, then a fixed trailer.

Layout of a pack (format version 1)::

    blob 0 (one zstd frame) | blob 1 | ... | header (one zstd frame of JSON) | trailer (12 bytes)

The header repeats what the index says about the pack's blobs, so a lost or damaged index can be rebuilt from
the packs alone by reading their last bytes. Each blob is its own frame, so a single blob can be range-read and
decompressed without touching its neighbours (docs/repository-format.md gives the measurements behind this).
"""

from __future__ import annotations

import hashlib
import re
import struct
import threading
from collections.abc import Iterator
from typing import Any, NamedTuple

import orjson
import zstandard

from chalicelib.core.errors import FormatError
from chalicelib.core.ids import BlobId, PackId

PACK_FORMAT_VERSION = 1
PACK_MAGIC = b"LBPK"
# header length (uint32), magic, pack format version (uint32); little-endian, fixed size.
TRAILER = struct.Struct("<I4sI")
TRAILER_SIZE = TRAILER.size
DEFAULT_LEVEL = 3

BLOB_DATA = "data"  # a sanitized Kubernetes object
BLOB_TREE = "tree"  # a scope tree or the root tree (core/trees.py)
BLOB_TYPES = frozenset({BLOB_DATA, BLOB_TREE})

# Caps that keep a damaged or hostile header from making a reader allocate without bound.
MAX_HEADER_BYTES = 64 << 20
MAX_BLOB_BYTES = 512 << 20

_HEX_ID = re.compile(r"[0-9a-f]{64}")


def is_hex_id(value: object) -> bool:
    """True for a lowercase hex SHA-256 (how blobs, packs and index files are named)."""
    return type(value) is str and _HEX_ID.fullmatch(value) is not None


def pack_id(data: bytes) -> PackId:
    return PackId(hashlib.sha256(data).hexdigest())


class PackedBlob(NamedTuple):
    """Where one blob sits inside its pack.

    A NamedTuple rather than a frozen dataclass: an index holds one per blob of the repository, and a tuple is
    built several times faster, which is most of the cost of loading an index.
    """

    blob_id: BlobId
    type: str
    offset: int  # of the compressed frame, from the start of the pack
    length: int  # compressed bytes
    raw_length: int  # uncompressed bytes

    def to_row(self) -> list[Any]:
        return [self.blob_id, self.type, self.offset, self.length, self.raw_length]

    @classmethod
    def from_row(cls, row: object) -> PackedBlob:
        # An index names every blob of a repository, hundreds of thousands of rows: checks are kept cheap.
        if type(row) is not list or len(row) != 5:
            raise FormatError(f"blob entry must be [id, type, offset, length, raw_length], got {row!r:.120}")
        blob, kind, offset, length, raw_length = row
        if type(blob) is not str or _HEX_ID.fullmatch(blob) is None:
            raise FormatError(f"blob entry has an invalid blob id {blob!r:.80}")
        if kind not in BLOB_TYPES:
            raise FormatError(f"blob {blob} has unknown type {kind!r:.40}")
        # type() rather than isinstance(): a JSON true is a bool, which isinstance() would accept as an int.
        if type(offset) is not int or type(length) is not int or type(raw_length) is not int:
            raise FormatError(f"blob {blob} has a non-integer offset or length: {row!r:.160}")
        if offset < 0 or length <= 0 or not 0 <= raw_length <= MAX_BLOB_BYTES:
            raise FormatError(f"blob {blob} has an impossible range or size: {row!r:.160}")
        return cls(BlobId(blob), kind, offset, length, raw_length)


class PackBuilder:
    """Accumulates compressed blobs and produces one pack. Not thread-safe: one builder per writer thread."""

    def __init__(self, level: int = DEFAULT_LEVEL) -> None:
        self._compressor = zstandard.ZstdCompressor(level=level)
        self._chunks: list[bytes] = []
        self._entries: list[PackedBlob] = []
        self._size = 0

    def __len__(self) -> int:
        return len(self._entries)

    @property
    def size(self) -> int:
        """Compressed bytes so far (without header and trailer)."""
        return self._size

    def add(self, blob_id: BlobId, data: bytes, type: str = BLOB_DATA) -> PackedBlob:
        if type not in BLOB_TYPES:
            raise ValueError(f"unknown blob type {type!r}; expected one of {sorted(BLOB_TYPES)}")
        frame = self._compressor.compress(data)
        entry = PackedBlob(blob_id=blob_id, type=type, offset=self._size, length=len(frame), raw_length=len(data))
        self._chunks.append(frame)
        self._entries.append(entry)
        self._size += len(frame)
        return entry

    def finish(self) -> tuple[PackId, bytes, list[PackedBlob]]:
        """The pack's id, bytes and blob entries; the builder is empty afterwards."""
        if not self._entries:
            raise ValueError("an empty pack is never written")
        header = encode_header(self._entries)
        data = b"".join([*self._chunks, header, TRAILER.pack(len(header), PACK_MAGIC, PACK_FORMAT_VERSION)])
        entries = self._entries
        self._chunks, self._entries, self._size = [], [], 0
        return pack_id(data), data, entries


def encode_header(entries: list[PackedBlob]) -> bytes:
    doc = {"version": PACK_FORMAT_VERSION, "blobs": [e.to_row() for e in entries]}
    return zstandard.ZstdCompressor(level=DEFAULT_LEVEL).compress(orjson.dumps(doc))


def parse_trailer(tail: bytes) -> int:
    """The header length named by a pack's last ``TRAILER_SIZE`` bytes (``tail`` may be longer)."""
    if len(tail) < TRAILER_SIZE:
        raise FormatError(f"pack is too short for a trailer ({len(tail)} bytes)")
    header_length, magic, version = TRAILER.unpack(tail[-TRAILER_SIZE:])
    if magic != PACK_MAGIC:
        raise FormatError(f"pack trailer has magic {magic!r}, expected {PACK_MAGIC!r}: not a pack or truncated")
    if version != PACK_FORMAT_VERSION:
        raise FormatError(f"pack format version {version} is not supported (this reader knows {PACK_FORMAT_VERSION})")
    if header_length == 0 or header_length > MAX_HEADER_BYTES:
        raise FormatError(f"pack trailer names an impossible header length {header_length}")
    return int(header_length)


def decode_header(header: bytes) -> list[PackedBlob]:
    """Entries of a pack header; checks that the blobs tile the data area from offset 0 without gaps."""
    doc = _decompress_json(header, "pack header")
    if not isinstance(doc, dict) or doc.get("version") != PACK_FORMAT_VERSION:
        raise FormatError(f"pack header version {_version_of(doc)!r} is not supported")
    rows = doc.get("blobs")
    if not isinstance(rows, list) or not rows:
        raise FormatError("pack header lists no blobs")
    entries = [PackedBlob.from_row(row) for row in rows]
    expected = 0
    for entry in entries:
        if entry.offset != expected:
            raise FormatError(f"blob {entry.blob_id} starts at {entry.offset}, expected {expected}")
        expected += entry.length
    return entries


def data_length(entries: list[PackedBlob]) -> int:
    """Bytes of the data area (everything before the header)."""
    last = entries[-1]
    return last.offset + last.length


def read_tail(tail: bytes) -> list[PackedBlob]:
    """Entries from the last bytes of a pack; ``tail`` must hold at least header + trailer.

    Raises ``FormatError`` (bad trailer or header) or ``TailTooShort`` (read more bytes and retry).
    """
    header_length = parse_trailer(tail)
    needed = header_length + TRAILER_SIZE
    if len(tail) < needed:
        raise TailTooShort(needed)
    return decode_header(tail[-needed:-TRAILER_SIZE])


def read_pack(data: bytes) -> list[PackedBlob]:
    """Entries of a complete pack, checking that header and data area account for every byte."""
    header_length = parse_trailer(data)
    if header_length + TRAILER_SIZE > len(data):
        raise FormatError(f"pack is {len(data)} bytes, too short for its {header_length}-byte header")
    entries = decode_header(data[-(header_length + TRAILER_SIZE) : -TRAILER_SIZE])
    if data_length(entries) + header_length + TRAILER_SIZE != len(data):
        raise FormatError(f"pack is {len(data)} bytes, but its header accounts for a different size")
    return entries


def iter_blobs(data: bytes, entries: list[PackedBlob]) -> Iterator[tuple[PackedBlob, bytes]]:
    """Each entry with its decompressed bytes (not hash-checked: callers verify against the blob id)."""
    for entry in entries:
        yield entry, decompress_blob(data[entry.offset : entry.offset + entry.length], entry.raw_length)


def decompress_blob(frame: bytes, raw_length: int) -> bytes:
    """One blob's bytes from its zstd frame; any damage surfaces as ``FormatError``."""
    out = _decompress(frame, raw_length, "blob frame")
    if len(out) != raw_length:
        raise FormatError(f"blob decompressed to {len(out)} bytes, expected {raw_length}")
    return out


class TailTooShort(FormatError):
    """The bytes read from a pack's end do not hold the whole header; ``needed`` says how many do."""

    def __init__(self, needed: int) -> None:
        super().__init__(f"pack header needs the last {needed} bytes")
        self.needed = needed


def _decompress(frame: bytes, limit: int, what: str) -> bytes:
    """Exactly one zstd frame, refusing one that claims more than ``limit`` bytes before allocating for it."""
    try:
        claimed = zstandard.frame_content_size(frame)
        if claimed > limit:
            raise FormatError(f"{what} claims {claimed} bytes, more than the {limit} expected")
        return _decompressor().decompress(frame, max_output_size=limit, allow_extra_data=False)
    except zstandard.ZstdError as exc:
        raise FormatError(f"{what} does not decompress: {exc}") from exc


_local = threading.local()


def _decompressor() -> zstandard.ZstdDecompressor:
    """This thread's decompression context.

    Creating one costs ~13 µs, three times the work of decompressing a 1 KiB blob; a context must not be shared
    between threads.
    """
    found: zstandard.ZstdDecompressor | None = getattr(_local, "decompressor", None)
    if found is None:
        found = _local.decompressor = zstandard.ZstdDecompressor()
    return found


def _decompress_json(data: bytes, what: str) -> Any:
    raw = _decompress(data, MAX_HEADER_BYTES, what)
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise FormatError(f"{what} is not valid JSON: {exc}") from exc


def _version_of(doc: Any) -> Any:
    return doc.get("version") if isinstance(doc, dict) else None
