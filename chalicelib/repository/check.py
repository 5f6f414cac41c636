"""Checking a repository: every backup reaches only blobs that exist, and (optionally) every blob re-hashes."""

from __future__ import annotations

import random
from collections.abc import Callable, Collection, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

from chalicelib.core.errors import FormatError
from chalicelib.core.ids import BlobId, PackId
from chalicelib.core.index_format import IndexEntry
from chalicelib.core.manifest import Manifest
from chalicelib.core.packs import TRAILER_SIZE, data_length, decode_header, parse_trailer
from chalicelib.repository.errors import BlobCorrupt, BlobMissing, ObjectNotFound, RepositoryError
from chalicelib.repository.reach import Reach, list_packs, reachable
from chalicelib.repository.reader import RepositoryReader
from chalicelib.repository.repo import PACKS_DIR
from chalicelib.repository.store import ObjectStore

Progress = Callable[[int, int], None]

# Problem kinds
INDEX_UNREADABLE = "index_unreadable"
MANIFEST_UNREADABLE = "manifest_unreadable"
INDEX_FILE_MISSING = "index_file_missing"
BLOB_MISSING = "blob_missing"  # reachable from a backup, in no index
PACK_MISSING = "pack_missing"  # named by the index, not in the store
BLOB_CORRUPT = "blob_corrupt"  # does not decompress or re-hash to its id
TREE_CORRUPT = "tree_corrupt"  # hashes fine but is not a tree
PACK_CORRUPT = "pack_corrupt"  # a pack's trailer or header does not read, or disagrees with the index or its size

_TAIL_GUESS = 64 << 10  # most pack headers fit; a longer one costs a second, exact, read
_HEADER_THREADS = 8


@dataclass(frozen=True)
class Problem:
    kind: str
    blob_id: str | None
    where: str
    detail: str


@dataclass(frozen=True)
class CheckReport:
    manifests_checked: int
    blobs_checked: int
    problems: list[Problem] = field(default_factory=list)
    # The walk the check made (scope tree entries kept): which backups reach a damaged blob, without a second walk.
    reach: Reach | None = field(default=None, compare=False, repr=False)

    @property
    def ok(self) -> bool:
        return not self.problems


def check_repository(
    reader: RepositoryReader,
    *,
    read_data: bool = True,
    progress: Progress | None = None,
    sample: int | None = None,
    rng: random.Random | None = None,
) -> CheckReport:
    """Walk every backup's root, trees and objects; with ``read_data``, read and re-hash every indexed blob, and
    read every indexed pack's header and trailer and compare them with the index rows and the pack's size.

    With ``sample`` only that many indexed blobs, chosen at random, are read, and only their packs' headers (the
    daily maintenance check: a bounded cost, the whole repository covered over many days).

    Trees are always read (they must be, to know which objects a backup reaches: ``reach.py``). Problems are
    collected, not raised, so one run reports everything that is wrong; only a storage failure stops it.
    """
    problems: list[Problem] = []
    try:
        index = reader.load_index()
        index_files = reader.index_files()
    except RepositoryError as exc:
        return CheckReport(0, 0, [Problem(INDEX_UNREADABLE, None, "index/", str(exc))])
    packs = list_packs(reader.repo.store)
    superseded = {s for f in index_files.values() for s in f.supersedes}

    manifests: list[Manifest] = []
    for cluster, backup_id in reader.list_backups():
        try:
            manifest = reader.load_manifest(cluster, backup_id)
        except RepositoryError as exc:
            problems.append(Problem(MANIFEST_UNREADABLE, None, f"backup {cluster}/{backup_id}", str(exc)))
            continue
        manifests.append(manifest)
        for name in manifest.index_files:
            # A consolidated index may replace a backup's own index file; only a name nothing accounts for is lost.
            if name not in index_files and name not in superseded:
                where = f"backup {cluster}/{backup_id}"
                problems.append(Problem(INDEX_FILE_MISSING, None, where, f"index file {name} is gone"))
    reach = reachable(reader, manifests, stored_packs=packs, keep_entries=True)
    problems.extend(_walk_problems(reach))

    missing_packs = (p for p in problems if p.kind == PACK_MISSING and p.blob_id and p.blob_id in index)
    reported = {index[BlobId(p.blob_id)].pack for p in missing_packs if p.blob_id}
    for pack in sorted({e.pack for e in index.values()} - packs - reported):
        problems.append(Problem(PACK_MISSING, None, f"pack {pack}", "named by the index, not in the store"))

    checked = set(reach.blobs)
    if read_data:
        wanted = [b for b, e in index.items() if e.pack in packs]
        if sample is not None and len(wanted) > sample:
            wanted = (rng or random.Random()).sample(sorted(wanted), sample)
        checked.update(wanted)
        for done, (blob, result) in enumerate(reader.try_read_blobs(wanted), start=1):
            if isinstance(result, BlobCorrupt | BlobMissing):
                kind = BLOB_CORRUPT if isinstance(result, BlobCorrupt) else PACK_MISSING
                where = reach.where(blob) if blob in reach.first else f"pack {index[blob].pack}"
                problems.append(Problem(kind, blob, where, str(result)))
            if progress is not None:
                progress(done, len(wanted))
        in_sample = index if sample is None else {b: index[b] for b in wanted}
        problems.extend(pack_problems(reader, index, packs={e.pack for e in in_sample.values()}))
    return CheckReport(
        manifests_checked=len(manifests), blobs_checked=len(checked), problems=_dedupe(problems), reach=reach
    )


def pack_problems(
    reader: RepositoryReader, index: Mapping[BlobId, IndexEntry], *, packs: Collection[PackId] | None = None
) -> list[Problem]:
    """Packs whose trailer or header does not read, disagrees with the index rows naming them, or does not account
    for the pack's size. The frames alone do not cover these bytes: a damaged header passes a blob re-hash, and
    would then break an index rebuild (which reads only the headers). ``packs`` limits the check to those."""
    rows: dict[PackId, dict[BlobId, IndexEntry]] = {}
    for blob, entry in index.items():
        rows.setdefault(entry.pack, {})[blob] = entry
    store = reader.repo.store
    sizes = {PackId(info.key.rsplit("/", 1)[-1]): info.size for info in store.list_info(PACKS_DIR)}
    checked = sorted(pack for pack in rows if pack in sizes and (packs is None or pack in packs))

    def one(pack: PackId) -> str | None:
        return _pack_disagreement(store, reader.repo.pack_key(pack), sizes[pack], rows[pack])

    with ThreadPoolExecutor(max_workers=_HEADER_THREADS, thread_name_prefix="lifeboat-check-packs") as pool:
        found = list(pool.map(one, checked))
    return [Problem(PACK_CORRUPT, None, f"pack {pack}", why) for pack, why in zip(checked, found, strict=True) if why]


def _pack_disagreement(store: ObjectStore, key: str, size: int, rows: Mapping[BlobId, IndexEntry]) -> str | None:
    """Why a pack's trailer/header is wrong (None when it agrees with ``rows`` and accounts for ``size`` bytes)."""
    try:
        tail = store.get_tail(key, min(size, _TAIL_GUESS))
        header_length = parse_trailer(tail)
        needed = header_length + TRAILER_SIZE
        if needed > size:
            return f"trailer names a {header_length}-byte header, more than the pack's {size} bytes"
        if len(tail) < needed:
            tail = store.get_tail(key, needed)
        entries = decode_header(tail[-needed:-TRAILER_SIZE])
    except FormatError as exc:
        return f"trailer or header does not read: {exc}"
    except ObjectNotFound:
        return None  # deleted since the listing (garbage collection): the walk reports what a backup misses
    if data_length(entries) + needed != size:
        return f"header accounts for {data_length(entries) + needed} bytes, the pack has {size}"
    header = {entry.blob_id: IndexEntry.of(PackId(key.rsplit("/", 1)[-1]), entry) for entry in entries}
    for blob, row in rows.items():
        if header.get(blob) != row:
            return f"header disagrees with the index about blob {blob}"
    return None


def _walk_problems(reach: Reach) -> list[Problem]:
    """Reached blobs that are in no index file or whose pack is gone, then trees that would not read or decode."""
    problems: list[Problem] = []
    for blob in reach.unindexed:
        problems.append(Problem(BLOB_MISSING, blob, reach.where(blob), "blob is in no index file"))
    missing = reach.missing_packs
    for blob, pack in missing.items():
        problems.append(Problem(PACK_MISSING, blob, reach.where(blob), f"pack {pack} does not exist"))
    for tree in reach.unreadable:
        if tree.blob in missing or tree.blob not in reach.index:
            continue  # reported above: a tree that is not there is missing, not corrupt
        problems.append(
            Problem(TREE_CORRUPT if tree.malformed else BLOB_CORRUPT, tree.blob, tree.where, str(tree.error))
        )
    return problems


def _dedupe(problems: list[Problem]) -> list[Problem]:
    """One problem per (kind, blob): a missing pack found by the walk is not reported again by the data read."""
    seen: set[tuple[str, str | None]] = set()
    out = []
    for p in problems:
        key = (p.kind, p.blob_id)
        if p.blob_id is None or key not in seen:
            seen.add(key)
            out.append(p)
    return out
