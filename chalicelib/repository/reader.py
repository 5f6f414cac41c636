"""Reading a repository: the index, verified blobs, trees and manifests, and rebuilding the index from packs."""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Iterable, Iterator
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from typing import Any

import orjson

from chalicelib.core.errors import FormatError
from chalicelib.core.ids import BlobId, PackId
from chalicelib.core.index_format import IndexEntry, IndexFile, decode_index, index_id
from chalicelib.core.manifest import FORMAT_VERSION, Manifest
from chalicelib.core.packs import TailTooShort, decompress_frame, is_hex_id, read_tail
from chalicelib.core.trees import CLUSTER_SCOPE, TreeEntry, decode_root, decode_tree
from chalicelib.repository.errors import (
    BackupNotFound,
    BlobCorrupt,
    BlobMissing,
    ObjectNotFound,
    RepositoryCorrupt,
    RepositoryError,
    UnsupportedFormat,
)
from chalicelib.repository.frame_cache import FrameCache
from chalicelib.repository.index_map import IndexMap
from chalicelib.repository.last_loaded import LAST_LOADED, Loaded
from chalicelib.repository.reach import reachable
from chalicelib.repository.repo import INDEX_DIR, PACKS_DIR, Repository

__all__ = ["CLUSTER_SCOPE", "RebuiltIndex", "RepositoryReader"]

# Fetch a pack's whole data area rather than ranges when the wanted frames cover this share of it...
_WHOLE_PACK_SHARE = 0.5
# ...and merge ranges closer than this: one GET's latency is worth far more than a few KiB of transfer.
_RANGE_GAP = 64 << 10
_TAIL_GUESS = 64 << 10  # most pack headers fit; a longer one costs a second, exact, read
FRAME_CACHE_BYTES = 16 << 20  # decompressed frames kept per reader: 256 frames of 64 KiB
# A backup's writer packs its scope trees last, then its root: a root read for its trees comes with this many bytes
# before it per object of the backup (a tree row's compressed share, and room to spare), at most TREES_AHEAD_MAX.
TREES_AHEAD_PER_OBJECT = 128
TREES_AHEAD_MAX = 4 << 20

_Frame = list[tuple[BlobId, IndexEntry]]  # the wanted blobs of one frame
_new_tuple = tuple.__new__


@dataclass(frozen=True)
class RebuiltIndex:
    """What the pack headers say, and the packs whose headers could not be read (pack key -> reason)."""

    entries: dict[BlobId, IndexEntry]
    unreadable: dict[str, str] = field(default_factory=dict)


class RepositoryReader:
    """Read side of a repository. The index is loaded once per instance (one Lambda invocation)."""

    def __init__(
        self,
        repo: Repository,
        *,
        threads: int = 4,
        frame_cache_bytes: int = FRAME_CACHE_BYTES,
        reuse_loaded_index: bool = False,
    ) -> None:
        """``reuse_loaded_index``: start from the index this process loaded last of the same repository, reading
        only the index files written since (``LastLoaded``); a backup's choice. Without it every file is read and
        checked against its name again, as a repository check needs."""
        self.repo = repo
        self._reuse_loaded = reuse_loaded_index
        self._store = repo.store
        self._threads = threads
        self._frames = FrameCache(frame_cache_bytes)
        self._index: IndexMap | None = None
        self._pack_ends: dict[PackId, int] = {}
        self._index_data: dict[str, bytes] = {}  # index id -> the file's (compressed) bytes, verified
        # (pack, start, bytes) fetched along with a root read for its trees: the next ``try_read_blobs`` takes it.
        self._span: tuple[PackId, int, bytes] | None = None
        self._lock = threading.Lock()

    # -- index ------------------------------------------------------------------------------------------------

    def load_index(self, *, refresh: bool = False) -> IndexMap:
        """Blob id -> where it lives, from every index file not superseded by another one.

        Kept compact (``IndexMap``: 32-byte digests and binary rows): the index names every blob of the repository,
        and a backup holds it for its whole run. Index files are decoded one at a time, and only their compressed
        bytes are kept, for ``index_files``.
        """
        with self._lock:
            if self._index is not None and not refresh:
                return self._index
            # Only hex names can be index files; anything else (a folder marker, a stray upload) is not ours.
            keys = [k for k in self._store.list(INDEX_DIR) if is_hex_id(k[len(INDEX_DIR) :])]
            names = frozenset(k[len(INDEX_DIR) :] for k in keys)
            identity = getattr(self._store, "identity", None) if self._reuse_loaded else None
            kept = LAST_LOADED.take(identity, names) if identity else None
            loaded = None
            data: dict[str, bytes] = {}
            if kept is not None:
                # Read and merge only the files added since this process last loaded the index.
                data = self._read_index_files(sorted(names - kept.data.keys()))
                loaded = self._extend(kept, data)
                data = {**kept.data, **data}  # if that would not do: every file, none read twice
            if loaded is None:
                data = {**data, **self._read_index_files(sorted(names - data.keys()))}
                index, ends, superseded = self._merge(data, frozenset())
                if superseded & data.keys():
                    # Rare (a consolidation not yet cleaned up): the files a later one supersedes were merged too.
                    index, ends, _ = self._merge(data, frozenset(superseded))
                loaded = Loaded(index.freeze(), ends, data, frozenset(superseded))
            if identity:
                LAST_LOADED.keep(identity, loaded)
            self._index_data = loaded.data
            self._index, self._pack_ends = loaded.index, loaded.ends
            return self._index

    def _read_index_files(self, names: list[str]) -> dict[str, bytes]:
        """The bytes of these index files, each checked against its name."""
        if not names:
            return {}
        with ThreadPoolExecutor(max_workers=self._threads) as pool:
            return dict(zip(names, pool.map(self._read_index_file, [INDEX_DIR + n for n in names]), strict=True))

    def _extend(self, loaded: Loaded, data: dict[str, bytes]) -> Loaded | None:
        """``loaded`` with the index files of ``data`` merged in, or None when that would not give what a merge of
        every file gives: a file added supersedes another or is superseded, or names a blob already located (the
        merge's sorted order decides which location wins)."""
        if not data:
            return loaded
        if loaded.superseded.intersection(data):
            return None
        index, ends = loaded.index.copy(), dict(loaded.ends)
        for name in sorted(data):
            index_file = _decode_index_file(name, data[name])
            if index_file.supersedes:
                return None
            for pack, known in _add_file(index, index_file):
                if known:
                    return None
                ends[pack] = index.pack_end(pack) or 0
        return Loaded(index.freeze(), ends, {**loaded.data, **data}, loaded.superseded)

    def _merge(self, data: dict[str, bytes], skip: frozenset[str]) -> tuple[IndexMap, dict[PackId, int], set[str]]:
        """The index of the files in ``data`` not in ``skip``, each pack's data end, and what those files supersede."""
        index = IndexMap()
        ends: dict[PackId, int] = {}
        superseded: set[str] = set()
        # Sorted so that a blob stored twice (two concurrent backups) resolves the same way every time.
        for name in sorted(data):
            if name in skip:
                continue
            index_file = _decode_index_file(name, data[name])
            superseded.update(index_file.supersedes)
            for pack, _ in _add_file(index, index_file):
                ends[pack] = index.pack_end(pack) or 0
            del index_file  # one decoded file at a time
        return index, ends, superseded

    def index_files(self) -> dict[str, IndexFile]:
        """Every index file by id (superseded ones included), as read by ``load_index``, decoded anew."""
        self.load_index()
        return {name: _decode_index_file(name, data) for name, data in self._index_data.items()}

    def has_blob(self, blob_id: BlobId) -> bool:
        return blob_id in self.load_index()

    def known_blob_ids(self) -> set[BlobId]:
        return set(self.load_index())

    def _read_index_file(self, key: str) -> bytes:
        data = self._store.get(key)
        if index_id(data) != key[len(INDEX_DIR) :]:
            raise RepositoryCorrupt(f"index file {key} does not hash to its name: damaged or altered")
        return data

    # -- blobs ------------------------------------------------------------------------------------------------

    def read_blob(self, blob_id: BlobId, *, where: str | None = None) -> bytes:
        """One blob's bytes, checked against its id: one range GET of its frame, unless the frame is cached."""
        entry = self._entry(blob_id, where)
        frame = self._frames.get((entry.pack, entry.frame_offset))
        if frame is None:
            start = entry.frame_offset
            try:
                data = self._store.get_range(self.repo.pack_key(entry.pack), start, start + entry.frame_length - 1)
            except ObjectNotFound:
                raise _pack_missing(blob_id, entry.pack, where) from None
            try:
                frame = self._decompress(entry, data)
            except FormatError as exc:
                raise _frame_corrupt(blob_id, entry, exc, where) from exc
        return _verify(blob_id, entry, frame, where)

    def read_blobs(self, ids: Iterable[BlobId], *, where: str | None = None) -> Iterator[tuple[BlobId, bytes]]:
        """Each wanted blob once, verified, in no particular order; raises on the first missing or corrupt one."""
        for blob, result in self.try_read_blobs(ids, where=where):
            if isinstance(result, RepositoryError):
                raise result
            yield blob, result

    def try_read_blobs(
        self, ids: Iterable[BlobId], *, where: str | None = None
    ) -> Iterator[tuple[BlobId, bytes | RepositoryError]]:
        """Like ``read_blobs``, but a missing or corrupt blob is yielded as its error and reading goes on.

        Blobs are grouped by pack and frame, and each frame is decompressed once. When the wanted frames cover
        much of a pack its whole data area is fetched in one GET, otherwise nearby frames are fetched together.
        At most ``threads`` GETs run at once, and as many more are queued.
        """
        index = self.load_index()
        span, self._span = self._span, None
        by_pack: dict[PackId, dict[int, _Frame]] = {}
        for blob in dict.fromkeys(ids):
            entry = index.get(blob)
            if entry is None:
                yield blob, _not_indexed(blob, where)
            else:
                by_pack.setdefault(entry.pack, {}).setdefault(entry.frame_offset, []).append((blob, entry))
        tasks: list[tuple[PackId, int, int, list[_Frame]]] = []
        for pack, frames in by_pack.items():
            to_fetch: list[_Frame] = []
            for wanted in frames.values():
                cached = self._frames.get((pack, wanted[0][1].frame_offset))
                if cached is not None:
                    yield from _verify_all(wanted, cached, where)
                    continue
                spanned = self._from_span(span, pack, wanted, where) if span is not None else None
                if spanned is None:
                    to_fetch.append(wanted)
                else:
                    yield from spanned
            if to_fetch:
                tasks.extend(self._plan(pack, to_fetch))
        with ThreadPoolExecutor(max_workers=self._threads) as pool:
            pending: set[Future[list[tuple[BlobId, bytes | RepositoryError]]]] = set()
            queue = iter(tasks)
            for task in queue:
                pending.add(pool.submit(self._fetch, *task, where))
                if len(pending) >= 2 * self._threads:
                    break
            while pending:
                done, pending = wait(pending, return_when=FIRST_COMPLETED)
                for future in done:
                    for task in queue:
                        pending.add(pool.submit(self._fetch, *task, where))
                        break
                    yield from future.result()

    def _plan(self, pack: PackId, frames: list[_Frame]) -> Iterator[tuple[PackId, int, int, list[_Frame]]]:
        """GETs for the wanted ``frames`` of one pack: (pack, start, end inclusive, frames in that range)."""
        frames.sort(key=lambda wanted: wanted[0][1].frame_offset)
        end_of_data = self._pack_ends.get(pack, 0)
        if sum(wanted[0][1].frame_length for wanted in frames) >= _WHOLE_PACK_SHARE * end_of_data:
            yield pack, 0, end_of_data - 1, frames
            return
        group = [frames[0]]
        for wanted in frames[1:]:
            last = group[-1][0][1]
            if wanted[0][1].frame_offset - (last.frame_offset + last.frame_length) <= _RANGE_GAP:
                group.append(wanted)
            else:
                yield pack, group[0][0][1].frame_offset, last.frame_offset + last.frame_length - 1, group
                group = [wanted]
        last = group[-1][0][1]
        yield pack, group[0][0][1].frame_offset, last.frame_offset + last.frame_length - 1, group

    def _fetch(
        self, pack: PackId, start: int, end: int, frames: list[_Frame], where: str | None
    ) -> list[tuple[BlobId, bytes | RepositoryError]]:
        out: list[tuple[BlobId, bytes | RepositoryError]] = []
        try:
            data = self._store.get_range(self.repo.pack_key(pack), start, end)
        except ObjectNotFound:
            for wanted in frames:
                out.extend((blob, _pack_missing(blob, pack, where)) for blob, _ in wanted)
            return out
        for wanted in frames:
            out.extend(self._read_frame(wanted, data, start, where))
        return out

    def _read_frame(
        self, wanted: _Frame, data: bytes, start: int, where: str | None
    ) -> list[tuple[BlobId, bytes | RepositoryError]]:
        """The wanted blobs of one frame, from ``data``: bytes of its pack fetched from offset ``start``."""
        entry = wanted[0][1]
        at = entry.frame_offset - start
        try:
            frame = self._decompress(entry, data[at : at + entry.frame_length])
        except FormatError as exc:
            return [(blob, _frame_corrupt(blob, e, exc, where)) for blob, e in wanted]
        return _verify_all(wanted, frame, where)

    def _from_span(
        self, span: tuple[PackId, int, bytes], pack: PackId, wanted: _Frame, where: str | None
    ) -> list[tuple[BlobId, bytes | RepositoryError]] | None:
        """The wanted blobs of one frame from ``span`` (fetched with a root), or None when it does not hold the frame
        whole."""
        span_pack, start, data = span
        entry = wanted[0][1]
        end = entry.frame_offset + entry.frame_length
        if span_pack != pack or entry.frame_offset < start or end > start + len(data):
            return None
        return self._read_frame(wanted, data, start, where)

    def _decompress(self, entry: IndexEntry, data: bytes) -> bytes:
        """The frame ``entry`` names, from its compressed bytes, kept in the frame cache; raises ``FormatError``."""
        if len(data) != entry.frame_length:
            raise FormatError(f"the store returned {len(data)} bytes of the frame, expected {entry.frame_length}")
        frame = decompress_frame(data, entry.frame_raw_length)
        self._frames.put((entry.pack, entry.frame_offset), frame)
        return frame

    def _entry(self, blob_id: BlobId, where: str | None) -> IndexEntry:
        entry = self.load_index().get(blob_id)
        if entry is None:
            raise _not_indexed(blob_id, where)
        return entry

    # -- backups ----------------------------------------------------------------------------------------------

    def _root_with_trees(self, manifest: Manifest, where: str) -> bytes:
        """The root tree's bytes, verified, fetched together with what precedes its frame (kept as the span)."""
        root = manifest.root_tree
        entry = self._entry(root, where)
        objects = manifest.counts.get("objects", 0)
        ahead = min(TREES_AHEAD_MAX, objects * TREES_AHEAD_PER_OBJECT) if isinstance(objects, int) else 0
        if self._frames.get((entry.pack, entry.frame_offset)) is not None or ahead <= 0:
            return self.read_blob(root, where=where)
        start, end = max(0, entry.frame_offset - ahead), entry.frame_offset + entry.frame_length - 1
        try:
            data = self._store.get_range(self.repo.pack_key(entry.pack), start, end)
        except ObjectNotFound:
            raise _pack_missing(root, entry.pack, where) from None
        self._span = (entry.pack, start, data)
        result = self._read_frame([(root, entry)], data, start, where)[0][1]
        if isinstance(result, RepositoryError):
            raise result
        return result

    def list_backups(self, cluster: str | None = None) -> list[tuple[str, str]]:
        """(cluster, backup id) of every committed backup (one with a manifest), sorted."""
        found = (Repository.parse_manifest_key(k) for k in self._store.list(Repository.backups_prefix(cluster)))
        return sorted(item for item in found if item is not None)

    def load_manifest(self, cluster: str, backup_id: str) -> Manifest:
        key = Repository.manifest_key(cluster, backup_id)
        try:
            data = self._store.get(key)
        except ObjectNotFound:
            raise BackupNotFound(f"backup {backup_id!r} of cluster {cluster!r} does not exist (no {key})") from None
        version = _manifest_version(data, key)
        if version != FORMAT_VERSION:
            raise UnsupportedFormat(f"manifest {key} has format version {version!r}; this code knows {FORMAT_VERSION}")
        try:
            manifest = Manifest.from_json(data)
        except FormatError as exc:
            raise RepositoryCorrupt(f"manifest {key}: {exc}") from exc
        if (manifest.cluster, manifest.backup_id) != (cluster, backup_id):
            raise RepositoryCorrupt(
                f"manifest {key} names backup {manifest.cluster}/{manifest.backup_id}: misplaced or altered"
            )
        return manifest

    def root(self, manifest: Manifest, *, with_trees: bool = False) -> dict[str, BlobId]:
        """Scope ("" for cluster-scoped objects, else the namespace) -> tree blob id.

        ``with_trees``: the scope trees are read next (``read_blobs``), so the root's frame is fetched with the bytes
        before it in its pack, where its backup's writer put the trees (``TREES_AHEAD_PER_OBJECT``): the next
        ``try_read_blobs`` takes the frames it holds whole from them, without a GET of its own."""
        where = f"root tree of backup {manifest.cluster}/{manifest.backup_id}"
        data = self._root_with_trees(manifest, where) if with_trees else self.read_blob(manifest.root_tree, where=where)
        try:
            return decode_root(data)
        except (FormatError, KeyError, TypeError, AttributeError) as exc:
            raise RepositoryCorrupt(f"blob {manifest.root_tree} ({where}) is not a root tree: {exc}") from exc

    def tree(self, tree_id: BlobId, *, where: str | None = None) -> list[TreeEntry]:
        return _decode_tree(tree_id, self.read_blob(tree_id, where=where), where)

    def walk(self, manifest: Manifest) -> Iterator[tuple[str, TreeEntry]]:
        """Every object entry of a backup as (scope, entry), scopes in sorted order; raises on a tree it cannot read.

        The same walk as garbage collection, check and replication (``reach.py``), keeping the trees' entries.
        """
        reach = reachable(self, [manifest], keep_entries=True)
        if reach.unreadable:
            raise reach.unreadable[0].error
        for scope, tree_id in sorted(reach.roots[manifest.root_tree].items()):
            yield from ((scope, entry) for entry in reach.entries[tree_id])

    # -- recovery ---------------------------------------------------------------------------------------------

    def rebuild_index_from_packs(self) -> RebuiltIndex:
        """The index as the pack headers describe it; reads only each pack's last bytes."""
        keys = [k for k in self._store.list(PACKS_DIR) if is_hex_id(k.rsplit("/", 1)[-1])]
        entries: dict[BlobId, IndexEntry] = {}
        unreadable: dict[str, str] = {}
        with ThreadPoolExecutor(max_workers=self._threads) as pool:
            for key, result in zip(keys, pool.map(self._pack_header, keys), strict=True):
                if isinstance(result, str):
                    unreadable[key] = result
                    continue
                pack = PackId(key.rsplit("/", 1)[-1])
                for blob in result:
                    entries.setdefault(blob.blob_id, IndexEntry.of(pack, blob))
        return RebuiltIndex(entries=entries, unreadable=unreadable)

    def _pack_header(self, key: str) -> Any:
        try:
            tail = self._store.get_tail(key, _TAIL_GUESS)
            try:
                return read_tail(tail)
            except TailTooShort as short:
                return read_tail(self._store.get_tail(key, short.needed))
        except FormatError as exc:
            return str(exc)
        except ObjectNotFound:
            return "pack vanished while rebuilding"


def _verify(blob_id: BlobId, entry: IndexEntry, frame: bytes, where: str | None) -> bytes:
    data = frame[entry.offset : entry.offset + entry.raw_length]
    if hashlib.sha256(data).hexdigest() != blob_id:
        context = f" ({where})" if where else ""
        raise BlobCorrupt(
            f"blob {blob_id}{context} in pack {entry.pack} (frame at {entry.frame_offset}) does not hash to its id:"
            " damaged or altered",
            blob_id=blob_id,
            where=where,
        )
    return data


def _verify_all(wanted: _Frame, frame: bytes, where: str | None) -> list[tuple[BlobId, bytes | RepositoryError]]:
    out: list[tuple[BlobId, bytes | RepositoryError]] = []
    for blob, entry in wanted:
        try:
            out.append((blob, _verify(blob, entry, frame, where)))
        except BlobCorrupt as exc:
            out.append((blob, exc))
    return out


def _frame_corrupt(blob_id: BlobId, entry: IndexEntry, exc: FormatError, where: str | None) -> BlobCorrupt:
    context = f" ({where})" if where else ""
    return BlobCorrupt(
        f"blob {blob_id}{context} in pack {entry.pack}: its frame at {entry.frame_offset} is damaged: {exc}",
        blob_id=blob_id,
        where=where,
    )


def _not_indexed(blob_id: BlobId, where: str | None) -> BlobMissing:
    context = f" (needed by {where})" if where else ""
    return BlobMissing(f"blob {blob_id}{context} is in no index file", blob_id=blob_id, where=where)


def _pack_missing(blob_id: BlobId, pack: PackId, where: str | None) -> BlobMissing:
    context = f" (needed by {where})" if where else ""
    return BlobMissing(f"blob {blob_id}{context}: its pack {pack} is missing", blob_id=blob_id, where=where)


def _decode_tree(tree_id: BlobId, data: bytes, where: str | None) -> list[TreeEntry]:
    try:
        return decode_tree(data)
    except (FormatError, KeyError, TypeError, ValueError) as exc:
        context = f" ({where})" if where else ""
        raise RepositoryCorrupt(f"blob {tree_id}{context} is not a scope tree: {exc}") from exc


def _add_file(index: IndexMap, index_file: IndexFile) -> Iterator[tuple[PackId, int]]:
    """Each pack of ``index_file`` added to ``index``, with how many of its blobs had a location already: a binary
    file's packs as it holds them (``IndexMap.add_section``), a JSON file's rows one by one."""
    if index_file.sections is not None:
        for pack, section in index_file.sections.items():
            yield pack, index.add_section(pack, section)
        return
    for pack, blobs in index_file.packs.items():
        yield pack, index.add_pack(pack, blobs)


def _decode_index_file(name: str, data: bytes) -> IndexFile:
    try:
        return decode_index(data)
    except FormatError as exc:
        raise RepositoryCorrupt(f"index file {INDEX_DIR}{name}: {exc}") from exc


def _manifest_version(data: bytes, key: str) -> Any:
    try:
        doc = orjson.loads(data)
    except orjson.JSONDecodeError as exc:
        raise RepositoryCorrupt(f"manifest {key} is not valid JSON: {exc}") from exc
    return doc.get("format_version") if isinstance(doc, dict) else None
