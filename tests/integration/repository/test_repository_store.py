"""The S3 object store adapter: its errors translated and chained, conditional conflicts retried; the memory store."""

from __future__ import annotations

from typing import Any

import pytest

from chalicelib.repository import (
    MemoryObjectStore,
    Repository,
    RepositoryReader,
    RepositoryWriter,
    S3ObjectStore,
    check_repository,
)
from chalicelib.repository.errors import AccessDenied, BucketNotFound, ObjectExists, ObjectNotFound, StorageError
from tests.support.repository import PREFIX, write_small_backup


def test_missing_key_and_bucket_are_named(s3: Any, bucket: str, store: S3ObjectStore) -> None:
    with pytest.raises(ObjectNotFound, match="nothing-here") as info:
        store.get("nothing-here")
    assert (info.value.operation, info.value.bucket, info.value.key) == ("get", bucket, "nothing-here")
    assert store.exists("nothing-here") is False

    gone = S3ObjectStore(s3, "no-such-bucket-here", prefix=PREFIX)
    with pytest.raises(BucketNotFound, match="no-such-bucket-here"):
        gone.put("a", b"x")
    with pytest.raises(BucketNotFound):
        list(gone.list("packs/"))


class _RaisingClient:
    """An S3 client whose every call fails the same way (AWS answers moto cannot produce on demand)."""

    def __init__(self, exc: Exception) -> None:
        self.exc = exc

    def __getattr__(self, name: str) -> Any:
        def call(*args: Any, **kwargs: Any) -> Any:
            raise self.exc

        return call


def _client_error(code: str) -> Exception:
    from botocore.exceptions import ClientError

    return ClientError({"Error": {"Code": code, "Message": f"{code} happened"}}, "GetObject")


@pytest.mark.parametrize(
    ("exc", "expected"),
    [
        (_client_error("AccessDenied"), AccessDenied),
        (_client_error("KMS.AccessDeniedException"), AccessDenied),
        (_client_error("NoSuchBucket"), BucketNotFound),
        (_client_error("NoSuchKey"), ObjectNotFound),
        (_client_error("InternalError"), StorageError),
        (_client_error("SlowDown"), StorageError),
    ],
)
def test_client_errors_are_translated_and_chained(exc: Exception, expected: type[StorageError]) -> None:
    store = S3ObjectStore(_RaisingClient(exc), "bkt", prefix=PREFIX)

    with pytest.raises(expected) as info:
        store.get_range("packs/ab/abc", 0, 9)

    assert type(info.value) is expected
    assert info.value.__cause__ is exc
    assert (info.value.operation, info.value.bucket, info.value.key) == ("get_range", "bkt", "packs/ab/abc")


def test_connection_failures_are_storage_errors_naming_the_call() -> None:
    from botocore.exceptions import EndpointConnectionError

    store = S3ObjectStore(_RaisingClient(EndpointConnectionError(endpoint_url="https://s3")), "bkt", prefix=PREFIX)

    with pytest.raises(StorageError, match=r"put s3://bkt/lifeboat/v1/index/x") as info:
        store.put("index/x", b"")
    assert isinstance(info.value.__cause__, EndpointConnectionError)


def test_conditional_conflicts_are_retried_then_reported(monkeypatch: pytest.MonkeyPatch) -> None:
    from chalicelib.repository import store as store_module

    monkeypatch.setattr(store_module.time, "sleep", lambda _: None)
    calls: list[dict[str, Any]] = []

    class Conflicting:
        def put_object(self, **kwargs: Any) -> None:
            calls.append(kwargs)
            raise _client_error("ConditionalRequestConflict")

    with pytest.raises(StorageError, match="kept conflicting"):
        S3ObjectStore(Conflicting(), "bkt").put("packs/ab/x", b"")
    assert len(calls) == 4 and all(c["IfNoneMatch"] == "*" for c in calls)


def test_memory_store_behaves_like_the_s3_one() -> None:
    store = MemoryObjectStore()
    repo = Repository.open(store, create=True)
    writer = RepositoryWriter(repo, pack_target_bytes=2048)

    manifest, stored = write_small_backup(repo, writer)

    reader = RepositoryReader(Repository.open(store))
    assert {e.blob for _, e in reader.walk(manifest)} == set(stored)
    assert check_repository(reader).ok
    with pytest.raises(ObjectExists):
        store.put("config.json", b"{}")
    assert list(store.list("index/")) == [f"index/{manifest.index_files[0]}"]
