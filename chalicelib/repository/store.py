"""The narrow object-store interface the repository needs, an S3 backend and an in-memory one for tests."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from typing import Any, NamedTuple, Protocol

from chalicelib.repository.errors import (
    AccessDenied,
    BucketNotFound,
    ObjectExists,
    ObjectNotFound,
    StorageError,
)

DEFAULT_PREFIX = "lifeboat/v1/"
_NOT_FOUND_KEY = frozenset({"NoSuchKey", "404", "NotFound"})
_DENIED = frozenset({"AccessDenied", "403", "Forbidden", "AllAccessDisabled", "KMS.AccessDeniedException"})
# S3 answers 409 when two conditional writes of one key race; the loser may retry and then sees 412.
_CONFLICT_RETRIES = 3


class ObjectInfo(NamedTuple):
    """A listed key with its size and last-modified time (garbage collection's safety margin needs the age)."""

    key: str
    size: int
    last_modified: datetime


class ObjectStore(Protocol):
    """Keys are relative to the store's prefix. Every method raises ``StorageError`` subclasses only."""

    def put(self, key: str, data: bytes, *, create_only: bool = True) -> None:
        """Write ``key``; with ``create_only`` raise ``ObjectExists`` if it is already there."""
        ...

    def get(self, key: str) -> bytes: ...

    def get_range(self, key: str, start: int, end_inclusive: int) -> bytes: ...

    def get_tail(self, key: str, length: int) -> bytes:
        """The last ``length`` bytes (all of it when the object is shorter)."""
        ...

    def exists(self, key: str) -> bool: ...

    def list(self, prefix: str = "") -> Iterator[str]: ...

    def list_info(self, prefix: str = "") -> Iterator[ObjectInfo]: ...

    def delete(self, key: str) -> None: ...


class S3ObjectStore:
    """An ``ObjectStore`` on one S3 bucket under ``prefix``; only translates calls and errors."""

    def __init__(
        self, s3_client: Any, bucket: str, prefix: str = DEFAULT_PREFIX, kms_key_id: str | None = None
    ) -> None:
        if prefix and not prefix.endswith("/"):
            prefix += "/"
        self._s3 = s3_client
        self.bucket = bucket
        self.prefix = prefix
        self._kms_key_id = kms_key_id

    def __repr__(self) -> str:
        return f"S3ObjectStore(s3://{self.bucket}/{self.prefix})"

    @property
    def identity(self) -> str:
        """Which repository this is, for what a process keeps of it between invocations (the last index loaded)."""
        return f"s3://{self.bucket}/{self.prefix}"

    def put(self, key: str, data: bytes, *, create_only: bool = True) -> None:
        params: dict[str, Any] = {
            "Bucket": self.bucket,
            "Key": self.prefix + key,
            "Body": data,
            # S3 verifies the body against this and stores it, so replication can compare checksums later.
            "ChecksumAlgorithm": "SHA256",
        }
        if create_only:
            params["IfNoneMatch"] = "*"
        if self._kms_key_id:
            params["ServerSideEncryption"] = "aws:kms"
            params["SSEKMSKeyId"] = self._kms_key_id
        for attempt in range(_CONFLICT_RETRIES + 1):
            try:
                self._call("put", key, self._s3.put_object, **params)
                return
            except _ConditionalConflict:
                if attempt == _CONFLICT_RETRIES:
                    raise StorageError(
                        f"put s3://{self.bucket}/{self.prefix}{key}: concurrent conditional writes kept conflicting",
                        operation="put",
                        bucket=self.bucket,
                        key=key,
                    ) from None
                time.sleep(0.2 * (attempt + 1))

    def get(self, key: str) -> bytes:
        resp = self._call("get", key, self._s3.get_object, Bucket=self.bucket, Key=self.prefix + key)
        return self._read_body("get", key, resp)

    def get_range(self, key: str, start: int, end_inclusive: int) -> bytes:
        if start < 0 or end_inclusive < start:
            raise ValueError(f"invalid byte range {start}-{end_inclusive}")
        resp = self._call(
            "get_range",
            key,
            self._s3.get_object,
            Bucket=self.bucket,
            Key=self.prefix + key,
            Range=f"bytes={start}-{end_inclusive}",
        )
        return self._read_body("get_range", key, resp)

    def get_tail(self, key: str, length: int) -> bytes:
        if length <= 0:
            raise ValueError(f"invalid tail length {length}")
        resp = self._call(
            "get_tail", key, self._s3.get_object, Bucket=self.bucket, Key=self.prefix + key, Range=f"bytes=-{length}"
        )
        return self._read_body("get_tail", key, resp)

    def exists(self, key: str) -> bool:
        # HEAD has no error body: a missing bucket also reads as 404 here, and a later put or get names it.
        try:
            self._call("exists", key, self._s3.head_object, Bucket=self.bucket, Key=self.prefix + key)
        except ObjectNotFound:
            return False
        return True

    def list(self, prefix: str = "") -> Iterator[str]:
        cut = len(self.prefix)
        for page in self._pages(prefix):
            for item in page.get("Contents", []):
                yield item["Key"][cut:]

    def list_info(self, prefix: str = "") -> Iterator[ObjectInfo]:
        cut = len(self.prefix)
        for page in self._pages(prefix):
            for item in page.get("Contents", []):
                yield ObjectInfo(item["Key"][cut:], int(item["Size"]), item["LastModified"])

    def _pages(self, prefix: str) -> Iterator[dict[str, Any]]:
        """ListObjectsV2 pages, one request each, errors translated like any other call. Called directly rather
        than through a botocore paginator: the paginator loads its model from disk on first use, which every
        backup's index load paid in a fresh process."""
        params: dict[str, Any] = {"Bucket": self.bucket, "Prefix": self.prefix + prefix}
        while True:
            page = self._call("list", prefix, self._s3.list_objects_v2, **params)
            yield page
            token = page.get("NextContinuationToken")
            if not page.get("IsTruncated") or not token:
                return
            params["ContinuationToken"] = token

    def delete(self, key: str) -> None:
        self._call("delete", key, self._s3.delete_object, Bucket=self.bucket, Key=self.prefix + key)

    def _read_body(self, operation: str, key: str, resp: dict[str, Any]) -> bytes:
        try:
            return bytes(resp["Body"].read())
        except Exception as exc:  # a dropped connection mid-body surfaces from urllib3 or botocore
            raise self._storage_error(StorageError, operation, key, f"reading the body failed: {exc}") from exc

    def _call(self, operation: str, key: str, fn: Any, *args: Any, **kwargs: Any) -> Any:
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            return fn(*args, **kwargs)
        except ClientError as exc:
            raise self._translate(operation, key, exc) from exc
        except BotoCoreError as exc:
            raise self._storage_error(StorageError, operation, key, str(exc)) from exc

    def _translate(self, operation: str, key: str, exc: Any) -> Exception:
        error = exc.response.get("Error", {})
        code = str(error.get("Code", ""))
        message = error.get("Message") or code
        if code == "NoSuchBucket":
            return BucketNotFound(
                f"bucket {self.bucket!r} does not exist ({operation} {key!r})",
                operation=operation,
                bucket=self.bucket,
                key=key,
            )
        if code in _NOT_FOUND_KEY:
            return self._storage_error(ObjectNotFound, operation, key, "no such key")
        if code in _DENIED:
            return self._storage_error(AccessDenied, operation, key, f"access denied: {message}")
        if code == "PreconditionFailed" and operation == "put":
            return self._storage_error(ObjectExists, operation, key, "key already exists")
        if code == "ConditionalRequestConflict":
            return _ConditionalConflict()
        return self._storage_error(StorageError, operation, key, f"{code}: {message}")

    def _storage_error(self, cls: type[StorageError], operation: str, key: str, cause: str) -> StorageError:
        where = f"s3://{self.bucket}/{self.prefix}{key}"
        return cls(f"{operation} {where}: {cause}", operation=operation, bucket=self.bucket, key=key)


class _ConditionalConflict(Exception):
    """Internal: a conditional put raced another one; retried by ``put``."""


class MemoryObjectStore:
    """An ``ObjectStore`` in a dict, safe across threads; for unit tests and dry runs."""

    def __init__(self, clock: Callable[[], datetime] | None = None) -> None:
        self.objects: dict[str, bytes] = {}
        self.modified: dict[str, datetime] = {}  # tests may age objects by editing this
        self._clock = clock or (lambda: datetime.now(UTC))
        self._lock = threading.Lock()

    def put(self, key: str, data: bytes, *, create_only: bool = True) -> None:
        with self._lock:
            if create_only and key in self.objects:
                raise ObjectExists(f"put {key}: key already exists", operation="put", key=key)
            self.objects[key] = bytes(data)
            self.modified[key] = self._clock()

    def get(self, key: str) -> bytes:
        with self._lock:
            try:
                return self.objects[key]
            except KeyError:
                raise ObjectNotFound(f"get {key}: no such key", operation="get", key=key) from None

    def get_range(self, key: str, start: int, end_inclusive: int) -> bytes:
        if start < 0 or end_inclusive < start:
            raise ValueError(f"invalid byte range {start}-{end_inclusive}")
        return self.get(key)[start : end_inclusive + 1]

    def get_tail(self, key: str, length: int) -> bytes:
        if length <= 0:
            raise ValueError(f"invalid tail length {length}")
        return self.get(key)[-length:]

    def exists(self, key: str) -> bool:
        with self._lock:
            return key in self.objects

    def list(self, prefix: str = "") -> Iterator[str]:
        with self._lock:
            keys = sorted(k for k in self.objects if k.startswith(prefix))
        yield from keys

    def list_info(self, prefix: str = "") -> Iterator[ObjectInfo]:
        with self._lock:
            # A key written straight into ``objects`` (tests) has no time: it counts as new, which GC never deletes.
            now = self._clock()
            infos = [ObjectInfo(k, len(v), self.modified.get(k, now)) for k, v in self.objects.items()]
        infos = [info for info in infos if info.key.startswith(prefix)]
        yield from sorted(infos)

    def delete(self, key: str) -> None:
        with self._lock:
            self.objects.pop(key, None)
            self.modified.pop(key, None)
