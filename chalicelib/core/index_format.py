"""Index files: which pack holds each blob, and where.

An index file (version 2) is one zstd frame of little-endian binary::

    "LBIX" | version (uint32, 2) | pack count (uint32) | supersedes count (uint32)
    supersedes: one 32-byte index id per file it replaces, sorted
    per pack, sorted by id: pack id (32 bytes) | blob count n (uint32) | n blob ids (32 bytes each)
                            | n types (uint8: 0 data, 1 tree) | n frame offsets (uint64)
                            | n frame lengths | n frame raw lengths | n offsets in the frame | n raw lengths (uint32)

the pack header's rows (``core/packs.py``) in binary, a column at a time. It is named by the SHA-256 of its
(compressed) bytes, so a reader can tell a damaged file from a good one.

Version 1 files, one zstd frame of JSON, are still read::

    {"version": 1,
     "packs": [{"id": <pack id>,
                "blobs": [[blob id, type, frame offset, frame length, frame raw length, offset, raw length], ...]}],
     "supersedes": [<index id>, ...]}

A binary file's columns are read into ``array`` objects and checked with C functions, and its rows go into an
``IndexMap`` without a Python object per row (``PackSection``), so nothing of a load is work for the cyclic garbage
collector: loading a JSON file built a Python list and strings for every row, and checked each in Python (~3 µs a
row, ~370 bytes a row while it was decoded).
"""

from __future__ import annotations

import hashlib
import struct
import sys
from array import array
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from itertools import repeat
from operator import add, le, rshift
from typing import Any, NamedTuple

import orjson
import zstandard

from chalicelib.core.errors import FormatError
from chalicelib.core.ids import BlobId, PackId
from chalicelib.core.packs import MAX_FRAME_BYTES, METADATA_LEVEL, PackedBlob, is_hex_id

INDEX_FORMAT_VERSION = 2  # what this code writes
JSON_INDEX_VERSION = 1  # the JSON index files written before, still read
INDEX_MAGIC = b"LBIX"
_HEAD = struct.Struct("<4sIII")  # magic, version, pack count, supersedes count
_COUNT = struct.Struct("<I")
# A pack's columns after its blob ids: type codes, then the array typecodes of frame offsets, frame lengths, frame
# raw lengths, offsets and raw lengths (little-endian; 1 + 8 + 4 * 4 = 25 bytes a blob).
_NUMBER_TYPES = ("Q", "I", "I", "I", "I")
_ROW_BYTES = 1 + sum(array(t).itemsize for t in _NUMBER_TYPES)
if _ROW_BYTES != 25:  # pragma: no cover - array's "Q" and "I" are 8 and 4 bytes on every platform Lambda runs
    raise ImportError(f"index rows need 8- and 4-byte array items, this platform gives a {_ROW_BYTES}-byte row")
BLOB_TYPE_CODES = ("data", "tree")  # a row's type byte is the type's place here
_TYPE_CODE = {name: code for code, name in enumerate(BLOB_TYPE_CODES)}
_ID = 32  # bytes of a pack, blob or index id
# An index names at most a few hundred thousand blobs (~100 bytes each); anything far larger is damage.
MAX_INDEX_BYTES = 1 << 30
_new_tuple = tuple.__new__


class IndexEntry(NamedTuple):
    """Where a blob lives: its pack, its frame's byte range there, and its range in the decompressed frame.

    A NamedTuple, as ``PackedBlob``: the same fields with the pack in place of the blob id.
    """

    pack: PackId
    type: str
    frame_offset: int
    frame_length: int
    frame_raw_length: int
    offset: int
    raw_length: int

    @classmethod
    def of(cls, pack: PackId, blob: PackedBlob) -> IndexEntry:
        return _new_tuple(cls, (pack, *blob[1:]))


class PackSection(NamedTuple):
    """One pack's blobs as a binary index file holds them, checked: the blob ids (32 bytes each, concatenated), the
    type codes, and the frame offsets, frame lengths, frame raw lengths, offsets and raw lengths as arrays."""

    digests: bytes
    codes: bytes
    numbers: tuple[array[int], ...]

    @property
    def columns(self) -> tuple[Any, ...]:
        """(type codes, frame offsets, frame lengths, frame raw lengths, offsets, raw lengths)."""
        return (self.codes, *self.numbers)

    def blobs(self) -> list[PackedBlob]:
        digests = self.digests
        ids = [digests[i : i + _ID].hex() for i in range(0, len(digests), _ID)]
        rows = zip(ids, map(BLOB_TYPE_CODES.__getitem__, self.codes), *self.numbers, strict=True)
        return list(map(_new_tuple, repeat(PackedBlob), rows))


class _SectionBlobs(Mapping[PackId, list[PackedBlob]]):
    """The packs of a binary index file as ``IndexFile.packs`` gives them: each pack's ``PackedBlob`` rows made
    when asked for (a reader loading the index takes the sections as they are)."""

    def __init__(self, sections: Mapping[PackId, PackSection]) -> None:
        self._sections = sections

    def __getitem__(self, pack: PackId) -> list[PackedBlob]:
        return self._sections[pack].blobs()

    def __iter__(self) -> Iterator[PackId]:
        return iter(self._sections)

    def __len__(self) -> int:
        return len(self._sections)


@dataclass(frozen=True)
class IndexFile:
    """A decoded index file: packs in file order, each with its blobs; ``sections``: a binary file's packs as it
    holds them (None for a JSON file), what ``IndexMap.add_section`` takes."""

    packs: Mapping[PackId, list[PackedBlob]]
    supersedes: list[str] = field(default_factory=list)
    sections: Mapping[PackId, PackSection] | None = None

    def entries(self) -> dict[BlobId, IndexEntry]:
        """Blob id -> entry. A blob stored in two packs (concurrent writers) keeps the first one listed."""
        out: dict[BlobId, IndexEntry] = {}
        for pack, blobs in self.packs.items():
            for blob, kind, frame_offset, frame_length, frame_raw_length, offset, raw_length in blobs:
                if blob not in out:
                    row = (pack, kind, frame_offset, frame_length, frame_raw_length, offset, raw_length)
                    out[blob] = _new_tuple(IndexEntry, row)
        return out


def index_id(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def encode_index(packs: Mapping[PackId, Iterable[PackedBlob]], supersedes: Iterable[str] = ()) -> tuple[str, bytes]:
    """The id and bytes of an index file naming ``packs``; packs are sorted so equal content gives equal bytes."""
    return encode_index_rows({pack: encode_blob_rows(blobs) for pack, blobs in packs.items()}, supersedes)


def encode_blob_rows(blobs: Iterable[PackedBlob]) -> bytes:
    """One pack's blobs as an index file spells them (blob count, ids, rows): what a writer keeps of a pack it
    uploaded (57 bytes a blob). Built a column at a time, without Python per row."""
    rows = list(blobs)
    if not rows:
        raise ValueError("an index never names a pack without blobs")
    ids, kinds, *numbers = zip(*rows, strict=True)
    parts = [_COUNT.pack(len(rows)), bytes.fromhex("".join(ids)), bytes(map(_TYPE_CODE.__getitem__, kinds))]
    for typecode, column in zip(_NUMBER_TYPES, numbers, strict=True):
        values = array(typecode, column)
        if sys.byteorder != "little":
            values.byteswap()
        parts.append(values.tobytes())
    return b"".join(parts)


def encode_index_rows(packs: Mapping[PackId, bytes], supersedes: Iterable[str] = ()) -> tuple[str, bytes]:
    """``encode_index`` from each pack's ``encode_blob_rows``: the same bytes."""
    replaced = sorted(set(supersedes))
    parts = [_HEAD.pack(INDEX_MAGIC, INDEX_FORMAT_VERSION, len(packs), len(replaced))]
    parts += [bytes.fromhex(name) for name in replaced]
    for pack, rows in sorted(packs.items()):
        parts += [bytes.fromhex(pack), rows]
    data = zstandard.ZstdCompressor(level=METADATA_LEVEL).compress(b"".join(parts))
    return index_id(data), data


def decode_index(data: bytes) -> IndexFile:
    try:
        claimed = zstandard.frame_content_size(data)
        if claimed > MAX_INDEX_BYTES:
            raise FormatError(f"index file claims {claimed} bytes uncompressed")
        raw = zstandard.ZstdDecompressor().decompress(data, max_output_size=MAX_INDEX_BYTES, allow_extra_data=False)
    except zstandard.ZstdError as exc:
        raise FormatError(f"index file does not decompress: {exc}") from exc
    if raw[: len(INDEX_MAGIC)] == INDEX_MAGIC:
        return _decode_binary(raw)
    try:
        doc = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise FormatError(f"index file is neither a binary index nor valid JSON: {exc}") from exc
    if not isinstance(doc, dict):
        raise FormatError("index file is not a JSON object")
    if doc.get("version") != JSON_INDEX_VERSION:
        raise FormatError(
            f"JSON index format version {doc.get('version')!r} is not supported (JSON index files are version"
            f" {JSON_INDEX_VERSION}; version {INDEX_FORMAT_VERSION} files are binary)"
        )
    packs: dict[PackId, list[PackedBlob]] = {}
    for item in _list_field(doc, "packs"):
        if not isinstance(item, dict) or not is_hex_id(item.get("id")):
            raise FormatError(f"index pack entry has no valid id: {item!r:.120}")
        rows = _list_field(item, "blobs")
        if not rows:
            raise FormatError(f"index names pack {item['id']} without any blob")
        packs.setdefault(PackId(item["id"]), []).extend(PackedBlob.from_rows(rows))
    supersedes = _list_field(doc, "supersedes")
    if not all(is_hex_id(s) for s in supersedes):
        raise FormatError("index 'supersedes' holds something that is not an index id")
    return IndexFile(packs=packs, supersedes=list(supersedes))


def _list_field(doc: dict[str, Any], name: str) -> list[Any]:
    value = doc.get(name)
    if not isinstance(value, list):
        raise FormatError(f"index field {name!r} must be a list")
    return value


def _decode_binary(raw: bytes) -> IndexFile:
    if len(raw) < _HEAD.size:
        raise FormatError("index file is shorter than its header")
    _, version, pack_count, replaced = _HEAD.unpack_from(raw)
    if version != INDEX_FORMAT_VERSION:
        raise FormatError(
            f"index format version {version} is not supported (this reader knows {JSON_INDEX_VERSION} and"
            f" {INDEX_FORMAT_VERSION})"
        )
    view = memoryview(raw)
    at = _HEAD.size + _ID * replaced
    _need(raw, at, "the index ids it supersedes")
    supersedes = [raw[i : i + _ID].hex() for i in range(_HEAD.size, at, _ID)]
    sections: dict[PackId, PackSection] = {}
    previous = b""
    for _ in range(pack_count):
        _need(raw, at + _ID + _COUNT.size, "a pack's id and blob count")
        pack = raw[at : at + _ID]
        (count,) = _COUNT.unpack_from(raw, at + _ID)
        if pack <= previous:
            raise FormatError(f"index packs are not in strictly increasing order at pack {pack.hex()}")
        if count == 0:
            raise FormatError(f"index names pack {pack.hex()} without any blob")
        digests_at = at + _ID + _COUNT.size
        codes_at = digests_at + _ID * count
        _need(raw, codes_at + _ROW_BYTES * count, f"the {count} blobs of pack {pack.hex()}")
        at = codes_at + count
        numbers = []
        for typecode in _NUMBER_TYPES:
            column = array(typecode)
            column.frombytes(view[at : at + column.itemsize * count])
            if sys.byteorder != "little":
                column.byteswap()
            numbers.append(column)
            at += column.itemsize * count
        section = PackSection(raw[digests_at:codes_at], raw[codes_at : codes_at + count], tuple(numbers))
        _check_columns(pack.hex(), section.digests, section.columns)
        sections[PackId(pack.hex())] = section
        previous = pack
    if at != len(raw):
        raise FormatError(f"index file has {len(raw) - at} bytes after its last pack")
    return IndexFile(packs=_SectionBlobs(sections), supersedes=supersedes, sections=sections)


def _need(raw: bytes, end: int, what: str) -> None:
    if end > len(raw):
        raise FormatError(f"index file ends before {what}")


def _check_columns(pack: str, digests: bytes, columns: tuple[Any, ...]) -> None:
    """The checks ``PackedBlob.from_rows`` makes of a JSON row, a column at a time with ``map`` over C functions;
    ``FormatError`` names the first bad row. A binary field cannot be negative, nor a blob id malformed."""
    codes, _, frame_lengths, frame_raw_lengths, offsets, raw_lengths = columns
    bounds = map(add, map(add, frame_raw_lengths, map(rshift, frame_raw_lengths, repeat(7))), repeat(1024))
    if (
        max(codes) < len(BLOB_TYPE_CODES)
        and max(frame_raw_lengths) <= MAX_FRAME_BYTES
        and min(frame_lengths) > 0
        and all(map(le, frame_lengths, bounds))  # frame_bound()
        and all(map(le, map(add, offsets, raw_lengths), frame_raw_lengths))
    ):
        return
    rows = zip(*columns, strict=True)
    for i, (code, frame_offset, frame_length, frame_raw_length, offset, raw_length) in enumerate(rows):
        blob = digests[i * _ID : (i + 1) * _ID].hex()
        if code >= len(BLOB_TYPE_CODES):
            raise FormatError(f"blob {blob} of pack {pack} has unknown type code {code}")
        if not (
            frame_raw_length <= MAX_FRAME_BYTES
            and 0 < frame_length <= frame_raw_length + (frame_raw_length >> 7) + 1024
            and offset + raw_length <= frame_raw_length
        ):
            row = [frame_offset, frame_length, frame_raw_length, offset, raw_length]
            raise FormatError(f"blob {blob} of pack {pack} has an impossible range or size: {row}")
    raise AssertionError("a column check failed that no row fails")  # pragma: no cover
