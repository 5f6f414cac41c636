"""Index files: which pack holds each blob, and where.

An index file is one zstd frame of JSON::

    {"version": 1,
     "packs": [{"id": <pack id>,
                "blobs": [[blob id, type, frame offset, frame length, frame raw length, offset, raw length], ...]}],
     "supersedes": [<index id>, ...]}

with blob rows exactly as in pack headers (``core/packs.py``), and is named by the SHA-256 of those (compressed)
bytes, so a reader can tell a damaged file from a good one.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, NamedTuple

import orjson
import zstandard

from chalicelib.core.errors import FormatError
from chalicelib.core.ids import BlobId, PackId
from chalicelib.core.packs import METADATA_LEVEL, PackedBlob, is_hex_id

INDEX_FORMAT_VERSION = 1
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


@dataclass(frozen=True)
class IndexFile:
    """A decoded index file: packs in file order, each with its blobs."""

    packs: dict[PackId, list[PackedBlob]]
    supersedes: list[str] = field(default_factory=list)

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
    """One pack's ``blobs`` array as an index file spells it: what a writer keeps of a pack it uploaded (one bytes
    object instead of a tuple and six values per blob)."""
    # ``default=list`` writes each PackedBlob row from C, as ``encode_header`` does.
    return orjson.dumps(list(blobs), default=list)


def encode_index_rows(packs: Mapping[PackId, bytes], supersedes: Iterable[str] = ()) -> tuple[str, bytes]:
    """``encode_index`` from each pack's ``encode_blob_rows``: the same document, key for key, as orjson writes it."""
    parts = [b'{"version":', orjson.dumps(INDEX_FORMAT_VERSION), b',"packs":[']
    for i, (pack, rows) in enumerate(sorted(packs.items())):
        parts += [b"," if i else b"", b'{"id":', orjson.dumps(pack), b',"blobs":', rows, b"}"]
    parts += [b'],"supersedes":', orjson.dumps(sorted(set(supersedes))), b"}"]
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
    try:
        doc = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise FormatError(f"index file is not valid JSON: {exc}") from exc
    if not isinstance(doc, dict):
        raise FormatError("index file is not a JSON object")
    if doc.get("version") != INDEX_FORMAT_VERSION:
        raise FormatError(
            f"index format version {doc.get('version')!r} is not supported (this reader knows {INDEX_FORMAT_VERSION})"
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
