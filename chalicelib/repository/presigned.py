"""Multipart uploads written by someone without credentials: presigned part URLs for one key, completed by us."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from chalicelib.repository.errors import ObjectExists, StorageError
from chalicelib.repository.store import S3ObjectStore

MAX_EXPIRY_S = 7 * 24 * 3600  # SigV4's limit; a URL signed with session credentials dies with them anyway


@dataclass(frozen=True)
class PresignedUpload:
    """One open multipart upload and the URLs that may write it: part N to ``part_urls[N-1]``, a report beside it."""

    key: str  # relative to the repository prefix
    upload_id: str
    part_urls: tuple[str, ...]
    report_key: str
    report_url: str

    def to_dict(self) -> dict[str, Any]:
        """What a checkpoint keeps to finish the upload in a later invocation (the URLs are not needed then)."""
        return {"key": self.key, "upload_id": self.upload_id, "report_key": self.report_key}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> PresignedUpload:
        return cls(str(data["key"]), str(data["upload_id"]), (), str(data["report_key"]), "")


def _s3(store: Any, operation: str, key: str) -> S3ObjectStore:
    if not isinstance(store, S3ObjectStore):
        raise StorageError(f"{store!r} cannot presign URLs ({operation} {key!r})", operation=operation, key=key)
    return store


def start_presigned_upload(store: Any, key: str, *, parts: int, report_key: str, expires_s: int) -> PresignedUpload:
    """Open a multipart upload of ``key`` and presign ``parts`` part URLs and a PUT of ``report_key``.

    Every URL names its key (and the upload), so whoever holds them can write those objects only, until they
    expire; they cannot read, list or complete anything.
    """
    s = _s3(store, "create_upload", key)
    if s.exists(key):
        raise ObjectExists(f"create_upload {key!r}: key already exists", operation="create_upload", key=key)
    params: dict[str, Any] = {"Bucket": s.bucket, "Key": s.prefix + key}
    if s._kms_key_id:
        params.update(ServerSideEncryption="aws:kms", SSEKMSKeyId=s._kms_key_id)
    upload_id = str(s._call("create_upload", key, s._s3.create_multipart_upload, **params)["UploadId"])
    expiry = max(1, min(expires_s, MAX_EXPIRY_S))
    urls = tuple(_presign(s, "upload_part", key, expiry, UploadId=upload_id, PartNumber=n) for n in range(1, parts + 1))
    report_params: dict[str, Any] = {"ContentType": "application/json"}
    if s._kms_key_id:
        report_params.update(ServerSideEncryption="aws:kms", SSEKMSKeyId=s._kms_key_id)
    report_url = _presign(s, "put_object", report_key, expiry, **report_params)
    return PresignedUpload(key, upload_id, urls, report_key, report_url)


def presigned_get(store: Any, key: str, *, expires_s: int) -> str:
    """A URL that reads ``key`` until it expires (for a restore Job)."""
    s = _s3(store, "presign_get", key)
    return _presign(s, "get_object", key, max(1, min(expires_s, MAX_EXPIRY_S)))


def complete_presigned_upload(store: Any, upload: PresignedUpload) -> int:
    """Complete the upload with every part S3 holds, in order; returns how many parts. Create-only like every key."""
    s = _s3(store, "complete_upload", upload.key)
    target = {"Bucket": s.bucket, "Key": s.prefix + upload.key, "UploadId": upload.upload_id}
    parts: list[dict[str, Any]] = []
    marker = 0
    while True:
        page = s._call("list_parts", upload.key, s._s3.list_parts, **target, PartNumberMarker=marker)
        parts.extend({"PartNumber": int(p["PartNumber"]), "ETag": p["ETag"]} for p in page.get("Parts") or ())
        if not page.get("IsTruncated"):
            break
        marker = int(page["NextPartNumberMarker"])
    if not parts:
        raise StorageError(f"complete_upload {upload.key!r}: no part was uploaded", operation="complete_upload")
    numbers = [p["PartNumber"] for p in parts]
    if numbers != list(range(1, len(parts) + 1)):
        raise StorageError(
            f"complete_upload {upload.key!r}: parts {numbers} are not 1..{len(parts)}", operation="complete_upload"
        )
    s._call(
        "put", upload.key, s._s3.complete_multipart_upload, **target, MultipartUpload={"Parts": parts}, IfNoneMatch="*"
    )
    return len(parts)


def abort_presigned_upload(store: Any, upload: PresignedUpload) -> None:
    """Drop every part (the URLs then write nothing anyone completes). A missing upload is already aborted."""
    s = _s3(store, "abort_upload", upload.key)
    try:
        s._call(
            "abort_upload",
            upload.key,
            s._s3.abort_multipart_upload,
            Bucket=s.bucket,
            Key=s.prefix + upload.key,
            UploadId=upload.upload_id,
        )
    except StorageError as exc:
        if "NoSuchUpload" not in str(exc):
            raise


def _presign(s: S3ObjectStore, method: str, key: str, expiry: int, **params: Any) -> str:
    from botocore.exceptions import BotoCoreError, ClientError

    # Without it botocore may sign a URL with SigV2, which S3 refuses for SSE-KMS objects and in newer regions.
    if getattr(s._s3.meta.config, "signature_version", None) != "s3v4":
        raise StorageError(
            f"presign {method} {key!r}: the S3 client must sign with SigV4 (Config(signature_version='s3v4'))",
            operation="presign",
            key=key,
        )

    try:
        return str(
            s._s3.generate_presigned_url(
                method, Params={"Bucket": s.bucket, "Key": s.prefix + key, **params}, ExpiresIn=expiry
            )
        )
    except (BotoCoreError, ClientError) as exc:
        raise StorageError(f"presign {method} {key!r}: {exc}", operation="presign", key=key) from exc
