"""The two buckets replication works between: server-side copies into the replica, checksums without downloads."""

from __future__ import annotations

import base64
import contextlib
import hashlib
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from chalicelib.replication.errors import ReplicationStorageError, SourceMissing

GiB = 1 << 30
MiB = 1 << 20
# CopyObject copies at most 5 GiB; larger objects go part by part with UploadPartCopy.
COPY_LIMIT = 5 * GiB
PART_SIZE = 512 * MiB  # 10,000 parts max: enough for 5 TiB objects
_HASH_CHUNK = 8 * MiB
_PART_THREADS = 4
_NOT_FOUND = frozenset({"NoSuchKey", "404", "NotFound"})


@dataclass(frozen=True)
class ObjectInfo:
    size: int
    # S3's SHA-256 of the whole object (base64), when it has one: single-part objects written or copied with
    # ChecksumAlgorithm=SHA256. Multipart objects carry a checksum of part checksums instead, which says nothing
    # comparable, so it is left out and callers hash the bytes.
    sha256_b64: str | None
    last_modified: datetime | None = None
    multipart: bool = False
    kms_key_id: str | None = None


def hex_to_b64(hex_digest: str) -> str:
    return base64.b64encode(bytes.fromhex(hex_digest)).decode()


def b64_to_hex(b64_digest: str) -> str:
    return base64.b64decode(b64_digest).hex()


class ReplicaBuckets:
    """The primary bucket (read) and the replica bucket in another region (written), under one repository prefix.

    Only translates calls and errors. ``replica_client`` is a client of the replica's region: copies are requests
    to the destination, which pulls the bytes from the source bucket server side.
    """

    def __init__(
        self,
        source_client: Any,
        source_bucket: str,
        replica_client: Any,
        replica_bucket: str,
        *,
        prefix: str = "lifeboat/v1/",
        kms_key_id: str | None = None,
        copy_limit: int = COPY_LIMIT,
        part_size: int = PART_SIZE,
    ) -> None:
        if prefix and not prefix.endswith("/"):
            prefix += "/"
        self._source = source_client
        self._replica = replica_client
        self.source_bucket = source_bucket
        self.replica_bucket = replica_bucket
        self.prefix = prefix
        self._kms_key_id = kms_key_id
        self._copy_limit = copy_limit
        self._part_size = part_size

    def __repr__(self) -> str:
        return f"ReplicaBuckets(s3://{self.source_bucket}/{self.prefix} -> s3://{self.replica_bucket}/{self.prefix})"

    # -- reads --------------------------------------------------------------------------------------------------

    def source_head(self, key: str) -> ObjectInfo:
        info = self._head(self._source, self.source_bucket, key)
        if info is None:
            raise SourceMissing(
                f"s3://{self.source_bucket}/{self.prefix}{key} does not exist", bucket=self.source_bucket, key=key
            )
        return info

    def replica_head(self, key: str) -> ObjectInfo | None:
        return self._head(self._replica, self.replica_bucket, key)

    def source_get(self, key: str) -> tuple[bytes, datetime | None]:
        """A small object's bytes and when it was written."""
        resp = self._call(
            self.source_bucket,
            key,
            self._source.get_object,
            Bucket=self.source_bucket,
            Key=self.prefix + key,
            missing=SourceMissing,
        )
        try:
            return bytes(resp["Body"].read()), resp.get("LastModified")
        except Exception as exc:  # a dropped connection mid-body surfaces from urllib3 or botocore
            raise self._error(ReplicationStorageError, self.source_bucket, key, f"reading the body: {exc}") from exc

    def replica_get(self, key: str) -> bytes:
        resp = self._call(
            self.replica_bucket,
            key,
            self._replica.get_object,
            missing=ReplicationStorageError,
            Bucket=self.replica_bucket,
            Key=self.prefix + key,
        )
        try:
            return bytes(resp["Body"].read())
        except Exception as exc:  # a dropped connection mid-body surfaces from urllib3 or botocore
            raise self._error(ReplicationStorageError, self.replica_bucket, key, f"reading the body: {exc}") from exc

    def source_sha256(self, key: str) -> str:
        return self._stream_sha256(self._source, self.source_bucket, key, SourceMissing)

    def replica_sha256(self, key: str) -> str:
        return self._stream_sha256(self._replica, self.replica_bucket, key, ReplicationStorageError)

    def list_source(self, prefix: str) -> Iterator[tuple[str, datetime | None]]:
        """(key relative to the repository prefix, last modified) of every primary object under ``prefix``."""
        paginator = self._source.get_paginator("list_objects_v2")
        pages = iter(paginator.paginate(Bucket=self.source_bucket, Prefix=self.prefix + prefix))
        cut = len(self.prefix)
        while True:
            page = self._call(self.source_bucket, prefix, next, pages, None)
            if page is None:
                return
            for item in page.get("Contents", []):
                yield item["Key"][cut:], item.get("LastModified")

    # -- writes -------------------------------------------------------------------------------------------------

    def copy(self, key: str, size: int) -> ObjectInfo:
        """Server-side copy of ``key`` into the replica, encrypted with the replica region's key."""
        if size > self._copy_limit:
            return self._multipart_copy(key, size)
        resp = self._call(
            self.replica_bucket,
            key,
            self._replica.copy_object,
            missing=SourceMissing,
            Bucket=self.replica_bucket,
            Key=self.prefix + key,
            CopySource=self._copy_source(key),
            MetadataDirective="COPY",
            ChecksumAlgorithm="SHA256",
            **self._encryption(),
        )
        result = resp.get("CopyObjectResult", {})
        return ObjectInfo(size, result.get("ChecksumSHA256"), result.get("LastModified"))

    def replica_delete(self, key: str) -> None:
        self._call(
            self.replica_bucket, key, self._replica.delete_object, Bucket=self.replica_bucket, Key=self.prefix + key
        )

    def _multipart_copy(self, key: str, size: int) -> ObjectInfo:
        created = self._call(
            self.replica_bucket,
            key,
            self._replica.create_multipart_upload,
            Bucket=self.replica_bucket,
            Key=self.prefix + key,
            ChecksumAlgorithm="SHA256",
            **self._encryption(),
        )
        upload_id = created["UploadId"]
        ranges = [
            (n + 1, start, min(start + self._part_size, size) - 1)
            for n, start in enumerate(range(0, size, self._part_size))
        ]

        def part(number: int, start: int, end: int) -> dict[str, Any]:
            resp = self._call(
                self.replica_bucket,
                key,
                self._replica.upload_part_copy,
                missing=SourceMissing,
                Bucket=self.replica_bucket,
                Key=self.prefix + key,
                UploadId=upload_id,
                PartNumber=number,
                CopySource=self._copy_source(key),
                CopySourceRange=f"bytes={start}-{end}",
            )
            result = resp["CopyPartResult"]
            done = {"PartNumber": number, "ETag": result["ETag"]}
            if "ChecksumSHA256" in result:
                done["ChecksumSHA256"] = result["ChecksumSHA256"]
            return done

        try:
            with ThreadPoolExecutor(max_workers=_PART_THREADS) as pool:
                parts = list(pool.map(lambda r: part(*r), ranges))
            self._call(
                self.replica_bucket,
                key,
                self._replica.complete_multipart_upload,
                Bucket=self.replica_bucket,
                Key=self.prefix + key,
                UploadId=upload_id,
                MultipartUpload={"Parts": parts},
            )
        except BaseException:
            # Parts of an abandoned upload cost storage and are invisible to listings; the bucket's lifecycle rule
            # is the backstop if this abort fails too.
            with contextlib.suppress(Exception):  # the original failure is the one to report
                self._replica.abort_multipart_upload(
                    Bucket=self.replica_bucket, Key=self.prefix + key, UploadId=upload_id
                )
            raise
        return ObjectInfo(size, None, multipart=True)

    # -- plumbing -----------------------------------------------------------------------------------------------

    def _copy_source(self, key: str) -> dict[str, str]:
        return {"Bucket": self.source_bucket, "Key": self.prefix + key}

    def _encryption(self) -> dict[str, Any]:
        if not self._kms_key_id:
            return {}
        return {"ServerSideEncryption": "aws:kms", "SSEKMSKeyId": self._kms_key_id}

    def _head(self, client: Any, bucket: str, key: str) -> ObjectInfo | None:
        try:
            resp = self._call(
                bucket,
                key,
                client.head_object,
                missing=_Absent,
                Bucket=bucket,
                Key=self.prefix + key,
                ChecksumMode="ENABLED",
            )
        except _Absent:
            return None
        checksum = resp.get("ChecksumSHA256")
        multipart = (
            "-" in str(resp.get("ETag", "")) or resp.get("ChecksumType") == "COMPOSITE" or "-" in str(checksum or "")
        )
        return ObjectInfo(
            size=int(resp.get("ContentLength", 0)),
            sha256_b64=None if multipart else checksum,
            last_modified=resp.get("LastModified"),
            multipart=multipart,
            kms_key_id=resp.get("SSEKMSKeyId"),
        )

    def _stream_sha256(self, client: Any, bucket: str, key: str, missing: type[Exception]) -> str:
        resp = self._call(bucket, key, client.get_object, missing=missing, Bucket=bucket, Key=self.prefix + key)
        digest = hashlib.sha256()
        try:
            for chunk in iter(lambda: resp["Body"].read(_HASH_CHUNK), b""):
                digest.update(chunk)
        except Exception as exc:  # a dropped connection mid-body surfaces from urllib3 or botocore
            raise self._error(ReplicationStorageError, bucket, key, f"reading the body: {exc}") from exc
        return digest.hexdigest()

    def _call(
        self, bucket: str, key: str, fn: Any, *args: Any, missing: type[Exception] | None = None, **kwargs: Any
    ) -> Any:
        from botocore.exceptions import BotoCoreError, ClientError

        operation = getattr(fn, "__name__", "request")
        try:
            return fn(*args, **kwargs)
        except ClientError as exc:
            code = str(exc.response.get("Error", {}).get("Code", ""))
            if missing is not None and code in _NOT_FOUND:
                raise self._error(missing, bucket, key, "no such key") from exc
            message = exc.response.get("Error", {}).get("Message") or code
            raise self._error(ReplicationStorageError, bucket, key, f"{operation}: {code}: {message}") from exc
        except BotoCoreError as exc:
            raise self._error(ReplicationStorageError, bucket, key, f"{operation}: {exc}") from exc

    def _error(self, cls: type[Exception], bucket: str, key: str, cause: str) -> Exception:
        message = f"s3://{bucket}/{self.prefix}{key}: {cause}"
        if issubclass(cls, ReplicationStorageError):
            return cls(message, bucket=bucket, key=key)
        return cls(message)


class _Absent(Exception):
    """Internal: HEAD found no object."""
