"""Large artifacts beside a manifest (etcd snapshots): streamed to S3 as create-only multipart uploads."""

from __future__ import annotations

import contextlib
import hashlib
import threading
import weakref
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any, Protocol

from chalicelib.repository.errors import ObjectExists, ObjectNotFound, StorageError
from chalicelib.repository.store import MemoryObjectStore, S3ObjectStore

# S3's smallest part but the last is 5 MiB; 16 MiB parts keep a 10,000-part upload good for 160 GB.
DEFAULT_PART_SIZE = 16 << 20
MIN_PART_SIZE = 5 << 20


@dataclass(frozen=True)
class StoredArtifact:
    """An artifact as stored: its key, size, SHA-256 of every byte (hex) and the metadata written with it."""

    key: str
    size: int
    sha256: str
    metadata: dict[str, str] = field(default_factory=dict)


class ArtifactUpload(Protocol):
    def write(self, data: bytes) -> None: ...

    def complete(self) -> StoredArtifact:
        """Make the artifact visible (create-only: ``ObjectExists`` if the key is already there)."""
        ...

    def abort(self) -> None:
        """Drop every part: nothing becomes visible."""
        ...


def upload_artifact(
    store: Any, key: str, chunks: Iterable[bytes], *, metadata: dict[str, str] | None = None, part_size: int = 0
) -> StoredArtifact:
    """Stream ``chunks`` to ``key``; the artifact becomes visible only if the iteration ends without an error.

    Whatever the iteration raises (a stream cut short, a checksum mismatch) aborts the upload and propagates.
    ``metadata`` (S3 user metadata, known before the first byte) can be read back with ``stat_artifact``, so a
    later attempt finds the artifact instead of uploading it twice; the SHA-256 over every byte is returned.
    """
    upload = open_upload(store, key, metadata=metadata, part_size=part_size)
    try:
        for chunk in chunks:
            upload.write(chunk)
        return upload.complete()
    except BaseException:
        upload.abort()
        raise


def open_upload(store: Any, key: str, *, metadata: dict[str, str] | None = None, part_size: int = 0) -> ArtifactUpload:
    if isinstance(store, S3ObjectStore):
        return _S3Upload(store, key, dict(metadata or {}), max(part_size or DEFAULT_PART_SIZE, MIN_PART_SIZE))
    if isinstance(store, MemoryObjectStore):
        return _MemoryUpload(store, key, dict(metadata or {}))
    raise StorageError(f"{store!r} cannot hold artifacts", operation="upload", key=key)


def stat_artifact(store: Any, key: str) -> StoredArtifact | None:
    """The stored artifact at ``key`` with its metadata, or None when there is none."""
    if isinstance(store, S3ObjectStore):
        try:
            head = store._call("stat", key, store._s3.head_object, Bucket=store.bucket, Key=store.prefix + key)
        except ObjectNotFound:
            return None
        meta = {k.lower(): str(v) for k, v in (head.get("Metadata") or {}).items()}
        return StoredArtifact(key, int(head.get("ContentLength", 0)), "", meta)
    if isinstance(store, MemoryObjectStore):
        if not store.exists(key):
            return None
        return StoredArtifact(key, len(store.get(key)), "", dict(_memory_metadata(store).get(key, {})))
    raise StorageError(f"{store!r} cannot hold artifacts", operation="stat", key=key)


class _S3Upload:
    def __init__(self, store: S3ObjectStore, key: str, metadata: dict[str, str], part_size: int) -> None:
        self._store = store
        self._key = key
        self._full = store.prefix + key
        self._metadata = metadata
        self._part_size = part_size
        self._buffer = bytearray()
        self._parts: list[dict[str, Any]] = []
        self._digest = hashlib.sha256()
        self._size = 0
        params: dict[str, Any] = {"Bucket": store.bucket, "Key": self._full, "ChecksumAlgorithm": "SHA256"}
        if store._kms_key_id:
            params.update(ServerSideEncryption="aws:kms", SSEKMSKeyId=store._kms_key_id)
        if metadata:
            params["Metadata"] = metadata
        self._params = params
        self._upload_id: str | None = None

    def write(self, data: bytes) -> None:
        self._digest.update(data)
        self._size += len(data)
        self._buffer += data
        while len(self._buffer) >= self._part_size:
            part = bytes(self._buffer[: self._part_size])
            del self._buffer[: self._part_size]
            self._send(part)

    def complete(self) -> StoredArtifact:
        if self._buffer or not self._parts:
            self._send(bytes(self._buffer))
            self._buffer.clear()
        s = self._store
        try:
            s._call(
                "put",
                self._key,
                s._s3.complete_multipart_upload,
                **self._target(),
                UploadId=self._upload_id,
                MultipartUpload={"Parts": self._parts},
                IfNoneMatch="*",  # create-only, like every other key of the repository
            )
        except ObjectExists:
            self.abort()
            raise
        self._upload_id = None
        return StoredArtifact(self._key, self._size, self._digest.hexdigest(), dict(self._metadata))

    def abort(self) -> None:
        if self._upload_id is None:
            return
        upload_id, self._upload_id = self._upload_id, None
        s = self._store
        # If this fails too, the bucket's AbortIncompleteMultipartUpload rule removes the parts. Uploads left by a
        # worker that died are not aborted by the next attempt: it cannot tell them from a live duplicate's.
        with contextlib.suppress(StorageError):
            s._call("abort_upload", self._key, s._s3.abort_multipart_upload, **self._target(), UploadId=upload_id)

    def _target(self) -> dict[str, Any]:
        return {"Bucket": self._store.bucket, "Key": self._full}

    def _send(self, part: bytes) -> None:
        s = self._store
        if self._upload_id is None:
            resp = s._call("create_upload", self._key, s._s3.create_multipart_upload, **self._params)
            self._upload_id = str(resp["UploadId"])
        number = len(self._parts) + 1
        resp = s._call(
            "upload_part",
            self._key,
            s._s3.upload_part,
            **self._target(),
            UploadId=self._upload_id,
            PartNumber=number,
            Body=part,
            ChecksumAlgorithm="SHA256",
        )
        entry = {"PartNumber": number, "ETag": resp["ETag"]}
        if resp.get("ChecksumSHA256"):
            entry["ChecksumSHA256"] = resp["ChecksumSHA256"]
        self._parts.append(entry)


def read_artifact(store: Any, key: str, *, size: int, chunk_size: int = DEFAULT_PART_SIZE) -> Iterable[bytes]:
    """The bytes of ``key`` in ranged reads of ``chunk_size``: memory stays bounded for a snapshot of many GB."""
    for start in range(0, size, chunk_size):
        yield store.get_range(key, start, min(size, start + chunk_size) - 1)


class _MemoryUpload:
    def __init__(self, store: MemoryObjectStore, key: str, metadata: dict[str, str]) -> None:
        self._store = store
        self._key = key
        self._metadata = metadata
        self._buffer = bytearray()

    def write(self, data: bytes) -> None:
        self._buffer += data

    def complete(self) -> StoredArtifact:
        data = bytes(self._buffer)
        self._store.put(self._key, data, create_only=True)
        with _memory_lock:
            _memory_metadata(self._store)[self._key] = dict(self._metadata)
        return StoredArtifact(self._key, len(data), hashlib.sha256(data).hexdigest(), dict(self._metadata))

    def abort(self) -> None:
        self._buffer.clear()


# MemoryObjectStore has no user metadata; artifacts written through this module keep theirs here, per store.
_memory_lock = threading.Lock()
_memory_meta: weakref.WeakKeyDictionary[MemoryObjectStore, dict[str, dict[str, str]]] = weakref.WeakKeyDictionary()


def _memory_metadata(store: MemoryObjectStore) -> dict[str, dict[str, str]]:
    return _memory_meta.setdefault(store, {})
