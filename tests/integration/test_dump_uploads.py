"""Presigned multipart uploads of dumps against moto's S3 over HTTP: what the Job can write, what Lifeboat keeps."""

from __future__ import annotations

import hashlib
import json
import urllib.request
from collections.abc import Iterator

import pytest
from botocore.config import Config

from chalicelib.core.dumps import DumpSpec, dumps_from_list
from chalicelib.repository.errors import ObjectExists, StorageError
from chalicelib.repository.presigned import PresignedUpload, start_presigned_upload
from chalicelib.repository.store import MemoryObjectStore, S3ObjectStore
from chalicelib.snapshots.dumps import DumpError, DumpUploads, dump_key
from tests.support.databases import moto_s3_store

BUCKET = "dump-uploads"
PART = 5 << 20


@pytest.fixture(scope="module")
def store() -> Iterator[S3ObjectStore]:
    with moto_s3_store(BUCKET) as found:
        yield found


def spec(name: str) -> DumpSpec:
    entry = {"name": name, "engine": "redis", "namespace": "cache", "target": "redis", "timeout": 60}
    return dumps_from_list([entry])[0]


def put(url: str, data: bytes) -> None:
    # urllib would say the body is a form (moto then parses it); curl -T says nothing, like this.
    request = urllib.request.Request(url, data=data, method="PUT", headers={"Content-Type": ""})
    with urllib.request.urlopen(request, timeout=30) as response:  # noqa: S310 - a presigned URL of the test's S3
        assert response.status == 200


def send(upload: PresignedUpload, parts: list[bytes], report: dict[str, object]) -> None:
    for url, data in zip(upload.part_urls, parts, strict=False):
        put(url, data)
    put(upload.report_url, json.dumps(report).encode())


def test_parts_put_through_the_urls_are_completed_and_rechecked(store: S3ObjectStore) -> None:
    uploads = DumpUploads(store, part_size=PART, max_size=3 * PART)
    run, upload = uploads.start("prod", "20261202T030000Z-aaaaaa", spec("whole"))
    assert upload.key == dump_key("prod", "20261202T030000Z-aaaaaa", spec("whole"))
    assert upload.key.endswith("/backups/20261202T030000Z-aaaaaa/dumps/cache/whole.rdb")
    assert len(run.part_urls) == 3 and all("X-Amz-Signature=" in u and "X-Amz-Expires=660" in u for u in run.part_urls)
    parts = [b"a" * PART, b"tail"]
    body = b"".join(parts)

    send(upload, parts, {"sha256": hashlib.sha256(body).hexdigest(), "size": len(body), "tool_version": "redis-cli 7"})
    record = uploads.finish(spec("whole"), upload)

    assert store.get(upload.key) == body
    assert (record.size, record.sha256, record.parts, record.version) == (
        len(body),
        hashlib.sha256(body).hexdigest(),
        2,
        "redis-cli 7",
    )
    assert record.to_manifest()["key"] == "dumps/cache/whole.rdb"
    assert not store.exists(upload.report_key)


def test_a_stored_dump_other_than_the_report_says_is_deleted(store: S3ObjectStore) -> None:
    uploads = DumpUploads(store, part_size=PART, max_size=PART)
    _, upload = uploads.start("prod", "20261202T030000Z-bbbbbb", spec("tampered"))
    send(upload, [b"what the job sent"], {"sha256": hashlib.sha256(b"something else").hexdigest(), "size": 17})

    with pytest.raises(DumpError, match=r"dump cache/tampered: the stored .*tampered\.rdb \(17 bytes, sha256 "):
        uploads.finish(spec("tampered"), upload)
    assert not store.exists(upload.key)


def test_a_missing_part_fails_the_dump_and_drops_the_upload(store: S3ObjectStore) -> None:
    uploads = DumpUploads(store, part_size=PART, max_size=3 * PART)
    _, upload = uploads.start("prod", "20261202T030000Z-cccccc", spec("gap"))
    put(upload.part_urls[0], b"x" * PART)
    put(upload.part_urls[2], b"y")
    put(upload.report_url, json.dumps({"sha256": "0" * 64, "size": PART + 1}).encode())

    with pytest.raises(DumpError, match=r"parts \[1, 3\] are not 1\.\.2"):
        uploads.finish(spec("gap"), upload)
    assert not store.exists(upload.key)
    listed = store._s3.list_multipart_uploads(Bucket=BUCKET, Prefix=store.prefix + upload.key)
    assert not listed.get("Uploads")


def test_an_existing_dump_is_never_overwritten(store: S3ObjectStore) -> None:
    key = dump_key("prod", "20261202T030000Z-dddddd", spec("kept"))
    store.put(key, b"the good dump")
    with pytest.raises(ObjectExists):
        DumpUploads(store).start("prod", "20261202T030000Z-dddddd", spec("kept"))
    assert store.get(key) == b"the good dump"


def test_a_report_that_is_not_json_names_the_dump(store: S3ObjectStore) -> None:
    uploads = DumpUploads(store, part_size=PART, max_size=PART)
    _, upload = uploads.start("prod", "20261202T030000Z-eeeeee", spec("garbled"))
    put(upload.part_urls[0], b"data")
    put(upload.report_url, b"not json")
    with pytest.raises(DumpError, match=r"dump cache/garbled: the Job's report .* is not valid"):
        uploads.finish(spec("garbled"), upload)
    assert not store.exists(upload.key)


def test_a_store_that_cannot_presign_says_so(store: S3ObjectStore) -> None:
    with pytest.raises(StorageError, match="cannot presign URLs"):
        start_presigned_upload(MemoryObjectStore(), "k", parts=1, report_key="k.report.json", expires_s=60)
    import boto3

    sigv2 = boto3.client(
        "s3",
        region_name="us-east-1",
        aws_access_key_id="t",
        aws_secret_access_key="t",
        endpoint_url=store._s3.meta.endpoint_url,
        config=Config(signature_version="s3"),
    )
    with pytest.raises(StorageError, match="must sign with SigV4"):
        start_presigned_upload(S3ObjectStore(sigv2, BUCKET), "k2", parts=1, report_key="k2.json", expires_s=60)
