"""Reading etcd's snapshot stream: the database bytes, then the SHA-256 of them that etcd appends as a last message."""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Iterator

from chalicelib.etcd.errors import SnapshotCorrupt, SnapshotIncomplete
from chalicelib.etcd.wire import SnapshotChunk

# etcd's server sends sha256(db) as one more message after the last data chunk (remaining_bytes 0), and
# `etcdctl snapshot save` keeps it at the end of the file: `etcdutl snapshot restore` checks it there.
TRAILER_SIZE = hashlib.sha256().digest_size


class SnapshotReader:
    """Iterates the bytes of a snapshot file (database then trailing SHA-256) out of a stream of chunks.

    Raises ``SnapshotIncomplete`` if the stream ends early and ``SnapshotCorrupt`` if the trailer does not match
    the data, before the trailer itself is yielded: a consumer that commits only after the iteration ends without
    an error never commits a snapshot etcd would not restore. After it, ``db_size``, ``db_sha256`` (the trailer),
    ``version`` and ``revision`` (when the server sent a header, etcd 3.6+) describe the snapshot.
    """

    def __init__(self, chunks: Iterable[SnapshotChunk], *, where: str = "etcd") -> None:
        self._chunks = chunks
        self._where = where
        self.db_size = 0
        self.db_sha256 = ""
        self.version = ""
        self.revision: int | None = None
        self.member_id: int | None = None

    def __iter__(self) -> Iterator[bytes]:
        digest = hashlib.sha256()
        total: int | None = None
        trailer: bytes | None = None
        for chunk in self._chunks:
            if trailer is not None:
                raise SnapshotCorrupt(f"{self._where}: snapshot stream went on after its checksum")
            self._note(chunk)
            if total is not None and self.db_size == total:
                trailer = chunk.blob  # data complete: this message is the checksum
                continue
            if total is None:
                total = chunk.remaining_bytes + len(chunk.blob)
            self.db_size += len(chunk.blob)
            if chunk.remaining_bytes != total - self.db_size:
                raise SnapshotCorrupt(
                    f"{self._where}: snapshot stream says {chunk.remaining_bytes} bytes remain after "
                    f"{self.db_size} of {total}"
                )
            digest.update(chunk.blob)
            yield chunk.blob
        if total is None or self.db_size != total or trailer is None:
            raise SnapshotIncomplete(
                f"{self._where}: snapshot stream ended after {self.db_size} of {total or '?'} bytes"
                + ("" if total is None or self.db_size != total else ", before its checksum")
            )
        if len(trailer) != TRAILER_SIZE or trailer != digest.digest():
            raise SnapshotCorrupt(
                f"{self._where}: snapshot checksum mismatch: etcd sent {trailer.hex() or 'nothing'}, "
                f"the {self.db_size} bytes received hash to {digest.hexdigest()}"
            )
        self.db_sha256 = trailer.hex()
        yield trailer

    def _note(self, chunk: SnapshotChunk) -> None:
        if chunk.version and not self.version:
            self.version = chunk.version
        if chunk.header is not None and self.revision is None and chunk.header.revision:
            self.revision = chunk.header.revision
            self.member_id = chunk.header.member_id or None
