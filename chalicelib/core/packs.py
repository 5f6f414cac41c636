"""Pack files: blobs in zstd frames of many blobs each, then a header listing them, then a fixed trailer.

Layout of a pack (format version 1)::

    frame 0 (blobs 0..k, one zstd frame) | frame 1 | ... | header (one zstd frame of JSON) | trailer (12 bytes)

Blobs are appended raw to the current frame until it holds ``frame_target`` bytes; then it is compressed. A blob
larger than the target gets a frame of its own. The header repeats what the index says about the pack's blobs, so
a lost or damaged index can be rebuilt from the packs alone by reading their last bytes. One blob is read by
fetching and decompressing its frame (at most about ``frame_target`` bytes); docs/repository-format.md gives the
measurements behind frames of 64 KiB at zstd level 1.
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
DEFAULT_LEVEL = 1  # blob frames: level 3 saves 2-7 % more bytes for ~45 % more CPU (docs/repository-format.md)
# Pack headers and index files: on rows of hex ids level 1 is both faster and smaller than level 3 (10,000 rows:
# 369 KB in 2.9 ms against 411 KB in 6.6 ms).
METADATA_LEVEL = 1
DEFAULT_FRAME_TARGET = 64 << 10

BLOB_DATA = "data"  # a sanitized Kubernetes object
BLOB_TREE = "tree"  # a scope tree or the root tree (core/trees.py)
BLOB_TYPES = frozenset({BLOB_DATA, BLOB_TREE})

# Caps that keep a damaged or hostile header from making a reader allocate or fetch without bound.
MAX_HEADER_BYTES = 64 << 20
MAX_BLOB_BYTES = 512 << 20
MAX_FRAME_BYTES = MAX_BLOB_BYTES  # a frame of small blobs stays near its target; a big blob is a frame alone

_HEX_ID = re.compile(r"[0-9a-f]{64}")
_new_tuple = tuple.__new__


def is_hex_id(value: object) -> bool:
    """True for a lowercase hex SHA-256 (how blobs, packs and index files are named)."""
    return type(value) is str and _HEX_ID.fullmatch(value) is not None


def pack_id(data: bytes) -> PackId:
    return PackId(hashlib.sha256(data).hexdigest())


def frame_bound(raw_length: int) -> int:
    """More than zstd can ever emit for ``raw_length`` input bytes (its bound is raw + raw/256 + 64)."""
    return raw_length + (raw_length >> 7) + 1024


class PackedBlob(NamedTuple):
    """Where one blob sits inside its pack: its frame's byte range, and the blob's range in the decompressed frame.

    A NamedTuple rather than a frozen dataclass: an index holds one per blob of the repository, and a tuple is
    built several times faster, which is most of the cost of loading an index.
    """

    blob_id: BlobId
    type: str
    frame_offset: int  # of the compressed frame, from the start of the pack
    frame_length: int  # compressed bytes of the frame
    frame_raw_length: int  # uncompressed bytes of the frame
    offset: int  # of the blob in the uncompressed frame
    raw_length: int  # uncompressed bytes of the blob

    def to_row(self) -> list[Any]:
        return list(self)

    @classmethod
    def from_row(cls, row: object) -> PackedBlob:
        return cls.from_rows([row])[0]

    @classmethod
    def from_rows(cls, rows: list[object]) -> list[PackedBlob]:
        """Every row checked and made an entry, in one loop: loading an index runs it once per blob of the
        repository, and a call per row cost as much as the checks. ``FormatError`` names the first bad row."""
        out: list[PackedBlob] = []
        append, fullmatch, types = out.append, _HEX_ID.fullmatch, BLOB_TYPES
        for row in rows:
            # type() rather than isinstance(): a JSON true is a bool, which isinstance() would accept as an int.
            if type(row) is list and len(row) == 7:
                blob, kind, frame_offset, frame_length, frame_raw_length, offset, raw_length = row
                if (
                    type(blob) is str
                    and fullmatch(blob) is not None
                    and kind in types
                    and type(frame_offset) is int
                    and type(frame_length) is int
                    and type(frame_raw_length) is int
                    and type(offset) is int
                    and type(raw_length) is int
                    and frame_offset >= 0
                    and 0 <= frame_raw_length <= MAX_FRAME_BYTES
                    and 0 < frame_length <= frame_raw_length + (frame_raw_length >> 7) + 1024  # frame_bound()
                    and offset >= 0
                    and raw_length >= 0
                    and offset + raw_length <= frame_raw_length
                ):
                    append(_new_tuple(cls, row))
                    continue
            raise _bad_row(row)
        return out


def _bad_row(row: object) -> FormatError:
    """What is wrong with a blob entry ``PackedBlob.from_rows`` refused."""
    if type(row) is not list or len(row) != 7:
        return FormatError(
            "blob entry must be [id, type, frame offset, frame length, frame raw length, offset, raw length],"
            f" got {row!r:.120}"
        )
    blob, kind, *numbers = row
    if type(blob) is not str or _HEX_ID.fullmatch(blob) is None:
        return FormatError(f"blob entry has an invalid blob id {blob!r:.80}")
    if kind not in BLOB_TYPES:
        return FormatError(f"blob {blob} has unknown type {kind!r:.40}")
    if not all(type(n) is int for n in numbers):
        return FormatError(f"blob {blob} has a non-integer offset or length: {row!r:.160}")
    return FormatError(f"blob {blob} has an impossible range or size: {row!r:.160}")


class PackBuilder:
    """Accumulates blobs into compressed frames and produces one pack. Not thread-safe: one builder per thread.

    ``add`` appends a blob's bytes to the open frame; once the frame holds ``frame_target`` bytes it is compressed
    (~2.5 µs per KiB at level 1, in the caller's thread: handing frames to another thread cost more in GIL
    hand-offs than it saved, docs/repository-format.md).
    """

    def __init__(self, level: int = DEFAULT_LEVEL, frame_target: int = DEFAULT_FRAME_TARGET) -> None:
        if frame_target <= 0:
            raise ValueError("frame_target must be positive")
        self._compressor = zstandard.ZstdCompressor(level=level)
        self._frame_target = frame_target
        self._frames: list[bytes] = []  # compressed
        self._entries: list[PackedBlob] = []
        self._size = 0  # compressed bytes of the frames so far
        self._open: list[bytes] = []  # raw blobs of the open frame
        self._open_blobs: list[tuple[BlobId, str, int, int]] = []  # (id, type, offset in frame, raw length)
        self._open_size = 0

    def __len__(self) -> int:
        return len(self._entries) + len(self._open_blobs)

    @property
    def size(self) -> int:
        """Compressed bytes of the finished frames plus raw bytes of the open one: what the data area may reach."""
        return self._size + self._open_size

    def add(self, blob_id: BlobId, data: bytes, type: str = BLOB_DATA) -> None:
        if type not in BLOB_TYPES:
            raise ValueError(f"unknown blob type {type!r}; expected one of {sorted(BLOB_TYPES)}")
        length = len(data)
        if length > self._frame_target and self._open_blobs:
            self._close_frame()  # a big blob goes into a frame of its own
        self._open.append(data)
        self._open_blobs.append((blob_id, type, self._open_size, length))
        self._open_size += length
        if self._open_size >= self._frame_target:
            self._close_frame()

    def finish(self) -> tuple[PackId, bytes, list[PackedBlob]]:
        """The pack's id, bytes and blob entries; the builder is empty afterwards."""
        if self._open_blobs:
            self._close_frame()
        if not self._entries:
            raise ValueError("an empty pack is never written")
        header = encode_header(self._entries)
        data = b"".join([*self._frames, header, TRAILER.pack(len(header), PACK_MAGIC, PACK_FORMAT_VERSION)])
        entries = self._entries
        self._frames, self._entries, self._size = [], [], 0
        return pack_id(data), data, entries

    def _close_frame(self) -> None:
        raw = b"".join(self._open) if len(self._open) > 1 else self._open[0]
        frame = self._compressor.compress(raw)
        start, length, raw_length = self._size, len(frame), len(raw)
        self._entries += [
            _new_tuple(PackedBlob, (blob, kind, start, length, raw_length, offset, size))
            for blob, kind, offset, size in self._open_blobs
        ]
        self._frames.append(frame)
        self._size += length
        self._open, self._open_blobs, self._open_size = [], [], 0


def encode_header(entries: list[PackedBlob]) -> bytes:
    # orjson does not write a NamedTuple itself; ``default=list`` converts each row as it goes, with no Python loop.
    doc = {"version": PACK_FORMAT_VERSION, "blobs": entries}
    return zstandard.ZstdCompressor(level=METADATA_LEVEL).compress(orjson.dumps(doc, default=list))


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
    """Entries of a pack header; checks that frames tile the data area and blobs tile each frame, without gaps."""
    doc = _decompress_json(header, "pack header")
    if not isinstance(doc, dict) or doc.get("version") != PACK_FORMAT_VERSION:
        raise FormatError(f"pack header version {_version_of(doc)!r} is not supported")
    rows = doc.get("blobs")
    if not isinstance(rows, list) or not rows:
        raise FormatError("pack header lists no blobs")
    entries = PackedBlob.from_rows(rows)
    frame: PackedBlob | None = None  # the first blob of the current frame
    next_frame = filled = 0  # where the next frame must start; raw bytes of the current one its blobs account for
    for entry in entries:
        if frame is None or entry.frame_offset != frame.frame_offset:
            _check_filled(frame, filled)
            if entry.frame_offset != next_frame:
                raise FormatError(f"blob {entry.blob_id} is in a frame at {entry.frame_offset}, expected {next_frame}")
            frame, next_frame, filled = entry, entry.frame_offset + entry.frame_length, 0
        elif (entry.frame_length, entry.frame_raw_length) != (frame.frame_length, frame.frame_raw_length):
            raise FormatError(f"blob {entry.blob_id} disagrees with its neighbours about frame {frame.frame_offset}")
        if entry.offset != filled:
            raise FormatError(f"blob {entry.blob_id} starts at {entry.offset} in its frame, expected {filled}")
        filled += entry.raw_length
    _check_filled(frame, filled)
    return entries


def _check_filled(frame: PackedBlob | None, filled: int) -> None:
    if frame is not None and filled != frame.frame_raw_length:
        raise FormatError(
            f"frame at {frame.frame_offset} holds {frame.frame_raw_length} raw bytes, its blobs account for {filled}"
        )


def data_length(entries: list[PackedBlob]) -> int:
    """Bytes of the data area (everything before the header)."""
    last = entries[-1]
    return last.frame_offset + last.frame_length


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
    """Each entry with its bytes, decompressing each frame once (not hash-checked: callers verify the blob id)."""
    start, frame = -1, b""
    for entry in entries:
        if entry.frame_offset != start:
            start = entry.frame_offset
            frame = decompress_frame(data[start : start + entry.frame_length], entry.frame_raw_length)
        yield entry, frame[entry.offset : entry.offset + entry.raw_length]


def decompress_frame(frame: bytes, raw_length: int) -> bytes:
    """A frame's uncompressed bytes; any damage, or a size other than ``raw_length``, surfaces as ``FormatError``."""
    out = _decompress(frame, raw_length, "frame")
    if len(out) != raw_length:
        raise FormatError(f"frame decompressed to {len(out)} bytes, expected {raw_length}")
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

    Creating one costs ~13 µs, more than decompressing a few KiB; a context must not be shared between threads.
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
