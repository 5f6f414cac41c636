"""Writing a backup: blobs into packs (uploaded in the background), then one index file, then the manifest."""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Callable, Collection, Iterable, Iterator, Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, fields

from chalicelib.core.ids import BlobId, PackId
from chalicelib.core.index_format import encode_blob_rows, encode_index_rows
from chalicelib.core.manifest import Manifest
from chalicelib.core.packs import BLOB_DATA, BLOB_TYPES, DEFAULT_FRAME_TARGET, DEFAULT_LEVEL, PackBuilder, PackedBlob
from chalicelib.repository.backup_log import LogEntry, entries_of, write_log
from chalicelib.repository.errors import (
    BlobIdMismatch,
    ManifestExists,
    ManifestIncomplete,
    ObjectExists,
    StorageError,
    WriterStateError,
)
from chalicelib.repository.index_map import IndexMap
from chalicelib.repository.repo import Repository

MiB = 1 << 20


@dataclass(frozen=True)
class WriteStats(Mapping[str, int]):
    """Counters of one writer; also a read-only mapping, so ``dict(writer.stats)`` merges into backup stats."""

    blobs_new: int = 0  # blobs packed by this writer
    bytes_raw_new: int = 0  # their uncompressed size
    bytes_uploaded: int = 0  # pack, index and manifest bytes sent
    puts: int = 0  # PUT requests: packs, index, manifest

    def __getitem__(self, key: str) -> int:
        if key not in _STAT_FIELDS:
            raise KeyError(key)
        return int(getattr(self, key))

    def __iter__(self) -> Iterator[str]:
        return iter(_STAT_FIELDS)

    def __len__(self) -> int:
        return len(_STAT_FIELDS)


_STAT_FIELDS = tuple(f.name for f in fields(WriteStats))


class RepositoryWriter:
    """Adds blobs that the repository does not hold yet; ``finish`` then ``write_manifest`` commit the backup.

    Memory stays bounded: at most ``max_pending_packs`` finished packs wait for or are in upload, and ``add``
    blocks while that many are outstanding. The first failed upload fails every later ``add`` and ``finish``,
    so a backup whose packs are not all stored never gets an index or a manifest.

    ``add_bytes`` runs once per new or changed object of a backup and is kept cheap: one SHA-256, plain counters
    (``stats`` builds its snapshot when read) and frames compressed in the caller's thread as they fill
    (docs/repository-format.md).
    """

    def __init__(
        self,
        repo: Repository,
        *,
        known: Collection[BlobId] | Callable[[BlobId], bool] | None = None,
        pack_target_bytes: int = 4 * MiB,
        frame_target_bytes: int = DEFAULT_FRAME_TARGET,
        upload_threads: int = 2,
        max_pending_packs: int = 2,
        compression_level: int = DEFAULT_LEVEL,
    ) -> None:
        if min(pack_target_bytes, frame_target_bytes, upload_threads, max_pending_packs) <= 0:
            raise ValueError(
                "pack_target_bytes, frame_target_bytes, upload_threads and max_pending_packs must be positive"
            )
        self._repo = repo
        # The reader's loaded index is used as it is, never copied: it names every blob of the repository. An
        # ``IndexMap`` is asked by digest, so the per-object path makes no hex id to look one up.
        self._known_digest: Callable[[bytes], bool] | None = None
        if known is None:
            self._known: Callable[[BlobId], bool] = _never
        elif isinstance(known, IndexMap):
            self._known, self._known_digest = known.__contains__, known.holds_digest
        elif callable(known):
            self._known = known
        else:
            self._known = known.__contains__
        self._target = pack_target_bytes
        self._builder = PackBuilder(level=compression_level, frame_target=frame_target_bytes)
        # What this run packed, as 32-byte digests (65 bytes each, not a 113-byte hex string), and each uploaded
        # pack's index rows as fixed-size binary records (73 bytes a blob, not a tuple of seven values): a writer
        # holds both for every new blob of a backup, so they set its memory per object (docs/architecture.md).
        self._added: set[bytes] = set()
        self._packs: dict[PackId, bytes] = {}
        self._slots = threading.BoundedSemaphore(max_pending_packs)
        self._executor = ThreadPoolExecutor(max_workers=upload_threads, thread_name_prefix="lifeboat-pack-upload")
        self._futures: list[Future[None]] = []
        self._lock = threading.Lock()
        self._error: BaseException | None = None
        # Counters: the first two only ever change in the caller's thread, the others under ``_lock``.
        self._blobs_new = 0
        self._bytes_raw_new = 0
        self._bytes_uploaded = 0
        self._puts = 0
        self._index_ids: list[str] | None = None  # set by a successful finish()
        self._closed = False

    @property
    def stats(self) -> WriteStats:
        with self._lock:
            return WriteStats(
                blobs_new=self._blobs_new,
                bytes_raw_new=self._bytes_raw_new,
                bytes_uploaded=self._bytes_uploaded,
                puts=self._puts,
            )

    def add(self, blob_id: BlobId, data: bytes, type: str = BLOB_DATA) -> bool:
        """Pack ``data`` unless the repository or this run already has it; True when it will be uploaded."""
        if self._closed:
            raise WriterStateError("add() after finish()")
        if self._error is not None:
            self._raise_upload_error()
        if type not in BLOB_TYPES:
            raise ValueError(f"unknown blob type {type!r}; expected one of {sorted(BLOB_TYPES)}")
        if self.holds(blob_id):
            return False
        # A wrong id would store bytes under a name they do not have: every later read would call it corrupt.
        # Hashing again costs ~1.5 µs for a 1 KiB blob, about 5 % of backing up an object (parse, sanitize, pack).
        digest = hashlib.sha256(data).hexdigest()
        if digest != blob_id:
            raise BlobIdMismatch(f"blob given as {blob_id} hashes to {digest}")
        self._pack(blob_id, data, type)
        return True

    def _pack(self, blob_id: BlobId, data: bytes, type: str, digest: bytes | None = None) -> None:
        self._builder.add(blob_id, data, type)
        self._added.add(bytes.fromhex(blob_id) if digest is None else digest)
        self._blobs_new += 1
        self._bytes_raw_new += len(data)
        if self._builder.size >= self._target:
            self._flush_pack()

    def add_bytes(self, data: bytes, type: str = BLOB_DATA) -> tuple[BlobId, bool]:
        """Name ``data`` by its SHA-256 and pack it unless it is held already: (blob id, True when it will be uploaded).

        The writer computes the id itself, so there is no given id to check again: one hash per blob instead of two
        on the per-object path of a backup.
        """
        if self._closed:
            raise WriterStateError("add() after finish()")
        if self._error is not None:
            self._raise_upload_error()
        if type not in BLOB_TYPES:
            raise ValueError(f"unknown blob type {type!r}; expected one of {sorted(BLOB_TYPES)}")
        digest = hashlib.sha256(data).digest()
        blob_id = BlobId(digest.hex())
        if digest in self._added or self._known_by(digest, blob_id):
            return blob_id, False
        self._pack(blob_id, data, type, digest)
        return blob_id, True

    def holds(self, blob_id: BlobId) -> bool:
        """Whether the repository's index (as loaded for this writer) or this run already has ``blob_id``."""
        try:
            digest = bytes.fromhex(blob_id)
        except (TypeError, ValueError):
            return False  # not a blob id (a damaged tree entry): nothing holds it
        if len(digest) != 32 or digest.hex() != blob_id:
            return False  # fromhex also reads upper case and spaces: only the canonical spelling names a blob
        return digest in self._added or self._known_by(digest, blob_id)

    def holds_digest(self, digest: bytes) -> bool:
        """``holds`` for a blob given by its 32-byte digest."""
        if digest in self._added:
            return True
        known = self._known_digest
        return known(digest) if known is not None else self._known(BlobId(digest.hex()))

    def _known_by(self, digest: bytes, blob_id: BlobId) -> bool:
        known = self._known_digest
        return known(digest) if known is not None else self._known(blob_id)

    def finish(self) -> list[str]:
        """Upload the last pack, wait for all uploads, write one index file; returns the index ids written."""
        if self._closed:
            raise WriterStateError("finish() called twice")
        self._closed = True
        try:
            if len(self._builder):
                self._flush_pack()
            for future in self._futures:
                future.exception()  # wait; _upload records the first error
            self._raise_upload_error()
        finally:
            self._executor.shutdown(wait=True)
        if not self._packs:
            self._index_ids = []
            return []
        index, data = encode_index_rows(self._packs)
        self._put_content_addressed(self._repo.index_key(index), data)
        self._index_ids = [index]
        return [index]

    def write_manifest(self, manifest: Manifest, log: Iterable[LogEntry] = ()) -> str:
        """The commit point: write the backup's log, then the manifest (never overwriting one); returns its key.

        The log holds the manifest's per-type errors and ``log``'s entries; nothing to log writes no log object.
        """
        if self._index_ids is None:
            raise WriterStateError("write_manifest() before a successful finish(): packs and index come first")
        missing = set(self._index_ids) - set(manifest.index_files)
        if missing:
            raise ManifestIncomplete(
                f"manifest of backup {manifest.cluster}/{manifest.backup_id} does not name index files "
                f"{sorted(missing)} written for it"
            )
        try:
            logged = write_log(self._repo.store, manifest, entries_of(manifest, log))
        except ObjectExists:
            logged = 0  # a retried commit: the first attempt's log is there and the manifest decides below
        if logged:
            self._count_put(logged)
        key = self._repo.manifest_key(manifest.cluster, manifest.backup_id)
        data = manifest.to_json()
        try:
            self._repo.store.put(key, data, create_only=True)
        except ObjectExists as exc:
            raise ManifestExists(
                f"backup {manifest.cluster}/{manifest.backup_id} already has a manifest at {key}"
            ) from exc
        finally:
            self._count_put(len(data))
        return key

    def _flush_pack(self) -> None:
        pack, data, entries = self._builder.finish()
        # Blocks while max_pending_packs packs are outstanding: the backpressure that bounds memory.
        self._slots.acquire()
        try:
            future = self._executor.submit(self._upload, pack, data, entries)
        except BaseException:
            self._slots.release()
            raise
        self._futures.append(future)

    def _upload(self, pack: PackId, data: bytes, entries: list[PackedBlob]) -> None:
        try:
            self._put_content_addressed(self._repo.pack_key(pack), data)
            # Kept as the index file will spell them: one bytes object of ~106 B a blob, written from C, where
            # binary records (73 B) cost ~3.5 µs a blob to make and to turn back into JSON.
            rows = encode_blob_rows(entries)
            with self._lock:
                self._packs[pack] = rows
        except BaseException as exc:
            with self._lock:
                if self._error is None:
                    self._error = exc
            raise
        finally:
            self._slots.release()

    def _put_content_addressed(self, key: str, data: bytes) -> None:
        try:
            self._repo.store.put(key, data, create_only=True)
        except ObjectExists:
            pass  # the name is the SHA-256 of the bytes: whoever wrote it first wrote these very bytes
        finally:
            self._count_put(len(data))

    def _raise_upload_error(self) -> None:
        with self._lock:
            error = self._error
        if error is None:
            return
        if isinstance(error, StorageError):
            raise error
        raise StorageError(f"uploading a pack failed: {error!r}", operation="put") from error

    def _count_put(self, size: int) -> None:
        with self._lock:
            self._puts += 1
            self._bytes_uploaded += size


def _never(_: BlobId) -> bool:
    return False
