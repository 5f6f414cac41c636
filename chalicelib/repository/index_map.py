"""The loaded repository index kept compact: 32-byte blob digests mapped to packed binary locations."""

from __future__ import annotations

import struct
from collections.abc import Iterable, Iterator, Mapping
from itertools import repeat
from operator import add

from chalicelib.core.ids import BlobId, PackId
from chalicelib.core.index_format import BLOB_TYPE_CODES, IndexEntry, PackSection

# pack (its number in ``_packs``), type (its place in _TYPES), frame offset, frame length, frame raw length, offset,
# raw length: 25 bytes, where an IndexEntry with its own hex blob id costs ~550 bytes a blob.
_ROW = struct.Struct("<IB5I")
_FRAME = struct.Struct("<IxI")  # a row's pack number and frame offset
_TYPES = BLOB_TYPE_CODES  # a row's type number is the binary index file's type code
_TYPE_NUMBERS = {name: number for number, name in enumerate(_TYPES)}
_new_tuple = tuple.__new__


def blob_digest(blob_id: str) -> bytes | None:
    """The 32 bytes a blob id spells, or None when it is not a blob id's canonical spelling (64 lower-case hex)."""
    try:
        digest = bytes.fromhex(blob_id)
    except (TypeError, ValueError):
        return None
    # fromhex also reads upper case and spaces: only the canonical spelling names a blob.
    if len(digest) != 32 or digest.hex() != blob_id:
        return None
    return digest


class IndexMap(Mapping[BlobId, IndexEntry]):
    """Blob id -> ``IndexEntry``, as ``RepositoryReader.load_index`` returns it, holding ~110 bytes a blob.

    Keys are the 32-byte digests and values fixed-size binary rows, decoded into an ``IndexEntry`` only when one is
    looked up. The first location added for a blob wins (``add`` ignores the later ones), as in the reader's
    sorted walk over index files. A value that does not fit a row's 32-bit fields (no pack this code writes comes
    near) is kept as the ``IndexEntry`` itself.
    """

    def __init__(self) -> None:
        self._rows: dict[bytes, bytes | IndexEntry] = {}
        self._packs: list[PackId] = []
        self._pack_numbers: dict[PackId, int] = {}
        self._ends: dict[PackId, int] = {}  # pack -> where its last indexed frame ends
        self._frozen = False

    def freeze(self) -> IndexMap:
        """Refuse every later ``add``: a loaded index is shared (readers of one process), never changed."""
        self._frozen = True
        return self

    def _check_open(self) -> None:
        if self._frozen:
            raise RuntimeError("a loaded index is not changed: add to a copy")

    def add(self, blob: str, entry: IndexEntry) -> bool:
        """Record where ``blob`` lives unless a location is known already; False when it was (or is no blob id)."""
        self._check_open()
        digest = blob_digest(blob)
        if digest is None or digest in self._rows:
            return False
        self._rows[digest] = self._row(entry)
        self._ends[entry.pack] = max(self._ends.get(entry.pack, 0), entry.frame_offset + entry.frame_length)
        return True

    def copy(self) -> IndexMap:
        """An independent map holding the same locations, open to ``add`` (the rows are immutable and shared)."""
        other = IndexMap()
        other._rows = dict(self._rows)
        other._packs = list(self._packs)
        other._pack_numbers = dict(self._pack_numbers)
        other._ends = dict(self._ends)
        return other

    def add_pack(self, pack: PackId, blobs: Iterable[tuple[str, str, int, int, int, int, int]]) -> int:
        """Every (blob, type, frame offset, frame length, frame raw length, offset, raw length) of one pack; returns
        how many of its blobs had a location already (which they keep).

        The loop a load runs once per blob: no call per row beyond the row's encoding.
        """
        self._check_open()
        rows, number, pack_row, types = self._rows, self._pack_number(pack), _ROW.pack, _TYPE_NUMBERS
        fromhex = bytes.fromhex
        end = self._ends.get(pack, 0)
        known = 0
        for blob, kind, frame_offset, frame_length, frame_raw_length, offset, raw_length in blobs:
            if frame_offset + frame_length > end:
                end = frame_offset + frame_length
            # Rows come from a decoded index file (PackedBlob.from_row checked the id is 64 lower-case hex).
            digest = fromhex(blob)
            if digest in rows:
                known += 1
                continue
            try:
                rows[digest] = pack_row(
                    number, types[kind], frame_offset, frame_length, frame_raw_length, offset, raw_length
                )
            except (struct.error, KeyError):
                row = (pack, kind, frame_offset, frame_length, frame_raw_length, offset, raw_length)
                rows[digest] = _new_tuple(IndexEntry, row)
        self._ends[pack] = end
        return known

    def add_section(self, pack: PackId, section: PackSection) -> int:
        """``add_pack`` for a pack of a binary index file as it holds it: its rows go in a column at a time, with no
        Python per row, unless a blob of it has a location already or a value does not fit a row (then row by
        row, as ``add_pack``)."""
        self._check_open()
        digests, columns = section.digests, section.columns
        keys = [digests[i : i + 32] for i in range(0, len(digests), 32)]
        frame_offsets, frame_lengths = columns[1], columns[2]
        end = max(map(add, frame_offsets, frame_lengths))
        try:
            values = list(map(_ROW.pack, repeat(self._pack_number(pack)), *columns))
        except struct.error:
            values = []
        fresh = dict(zip(keys, values, strict=False))
        rows = self._rows
        if len(values) == len(keys) == len(fresh) and rows.keys().isdisjoint(fresh):
            rows.update(fresh)
            self._ends[pack] = max(self._ends.get(pack, 0), end)
            return 0
        return self.add_pack(pack, section.blobs())

    def _pack_number(self, pack: PackId) -> int:
        number = self._pack_numbers.get(pack)
        if number is None:
            number = self._pack_numbers[pack] = len(self._packs)
            self._packs.append(pack)
        return number

    def _row(self, entry: IndexEntry) -> bytes | IndexEntry:
        try:
            return _ROW.pack(self._pack_number(entry.pack), _TYPE_NUMBERS[entry.type], *entry[2:])
        except (struct.error, KeyError):
            return entry

    def _entry(self, row: bytes | IndexEntry) -> IndexEntry:
        if type(row) is not bytes:
            return row  # type: ignore[return-value]
        pack, kind, *rest = _ROW.unpack(row)
        return _new_tuple(IndexEntry, (self._packs[pack], _TYPES[kind], *rest))

    def frame_of_digest(self, digest: bytes) -> tuple[PackId, int] | None:
        """The pack and frame offset of the blob of this 32-byte digest, or None: what sampling frames needs."""
        row = self._rows.get(digest)
        if row is None:
            return None
        if type(row) is not bytes:
            return row.pack, row.frame_offset  # type: ignore[union-attr]
        number, frame_offset = _FRAME.unpack_from(row)
        return self._packs[number], frame_offset

    def frames_of_digests(self, digests: Iterable[bytes]) -> Iterator[tuple[bytes, PackId, int]]:
        """(digest, pack, frame offset) of each of ``digests`` the index holds, in one loop: a backup asks it for
        every blob it reuses."""
        rows, packs, unpack = self._rows, self._packs, _FRAME.unpack_from
        for digest in digests:
            row = rows.get(digest)
            if row is None:
                continue
            if type(row) is bytes:
                number, frame_offset = unpack(row)
                yield digest, packs[number], frame_offset
            else:
                yield digest, row.pack, row.frame_offset  # type: ignore[union-attr]

    def pack_end(self, pack: PackId) -> int | None:
        """Where the last frame the index names in ``pack`` ends (its data area, as far as the index tells)."""
        return self._ends.get(pack)

    def holds_digest(self, digest: bytes) -> bool:
        """Whether the blob of this 32-byte digest is indexed: the writer's check, without a hex id."""
        return digest in self._rows

    def __getitem__(self, blob: BlobId) -> IndexEntry:
        digest = blob_digest(blob)
        row = self._rows.get(digest) if digest is not None else None
        if row is None:
            raise KeyError(blob)
        return self._entry(row)

    def get(self, blob: BlobId, default: IndexEntry | None = None) -> IndexEntry | None:  # type: ignore[override]
        digest = blob_digest(blob)
        row = self._rows.get(digest) if digest is not None else None
        return default if row is None else self._entry(row)

    def __contains__(self, blob: object) -> bool:
        if not isinstance(blob, str):
            return False
        digest = blob_digest(blob)
        return digest is not None and digest in self._rows

    def __iter__(self) -> Iterator[BlobId]:
        return (BlobId(digest.hex()) for digest in self._rows)

    def __len__(self) -> int:
        return len(self._rows)

    def packs(self) -> list[PackId]:
        """Every pack some blob is indexed in, in the order first seen."""
        return list(self._packs)
