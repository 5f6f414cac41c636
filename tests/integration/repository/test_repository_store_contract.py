"""The ObjectStore contract: the same tests against the memory store and the S3 store (moto)."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime
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
from chalicelib.repository.errors import ObjectExists, ObjectNotFound
from chalicelib.repository.store import ObjectInfo, ObjectStore
from tests.support.repository import PREFIX, write_small_backup


@pytest.fixture(params=["memory", "s3"])
def any_store(request: pytest.FixtureRequest) -> Iterator[ObjectStore]:
    if request.param == "memory":
        yield MemoryObjectStore()
        return
    # Only the S3 case needs moto; the memory case stays free of it.
    s3: Any = request.getfixturevalue("s3")
    bucket: str = request.getfixturevalue("bucket")
    yield S3ObjectStore(s3, bucket, prefix=PREFIX)


def test_put_then_get_returns_the_bytes(any_store: ObjectStore) -> None:
    any_store.put("packs/ab/one", b"hello world")
    assert any_store.get("packs/ab/one") == b"hello world"
    assert any_store.exists("packs/ab/one")


def test_a_create_only_put_of_an_existing_key_is_object_exists_and_keeps_the_first(any_store: ObjectStore) -> None:
    any_store.put("config.json", b"first")
    with pytest.raises(ObjectExists):
        any_store.put("config.json", b"second")
    assert any_store.get("config.json") == b"first"


def test_an_unconditional_put_replaces(any_store: ObjectStore) -> None:
    any_store.put("locks/repo", b"first")
    any_store.put("locks/repo", b"second", create_only=False)
    assert any_store.get("locks/repo") == b"second"


def test_a_missing_key_is_object_not_found_and_does_not_exist(any_store: ObjectStore) -> None:
    with pytest.raises(ObjectNotFound, match="nothing-here"):
        any_store.get("nothing-here")
    with pytest.raises(ObjectNotFound):
        any_store.get_range("nothing-here", 0, 1)
    assert any_store.exists("nothing-here") is False


def test_ranges_are_inclusive_and_tails_cap_at_the_object(any_store: ObjectStore) -> None:
    any_store.put("packs/ab/p", b"0123456789")
    assert any_store.get_range("packs/ab/p", 2, 4) == b"234"
    assert any_store.get_range("packs/ab/p", 8, 20) == b"89"
    assert any_store.get_tail("packs/ab/p", 3) == b"789"
    assert any_store.get_tail("packs/ab/p", 100) == b"0123456789"


@pytest.mark.parametrize("call", [lambda s: s.get_range("k", 5, 4), lambda s: s.get_range("k", -1, 2)])
def test_an_invalid_range_is_a_value_error(any_store: ObjectStore, call: Any) -> None:
    any_store.put("k", b"data")
    with pytest.raises(ValueError, match="invalid byte range"):
        call(any_store)


def test_an_invalid_tail_length_is_a_value_error(any_store: ObjectStore) -> None:
    any_store.put("k", b"data")
    with pytest.raises(ValueError, match="invalid tail length"):
        any_store.get_tail("k", 0)


def test_list_gives_the_keys_under_a_prefix_in_order(any_store: ObjectStore) -> None:
    for key in ["packs/b/2", "index/1", "packs/a/1", "packs/a/0", "clusters/x/m.json"]:
        any_store.put(key, key.encode())
    assert list(any_store.list("packs/")) == ["packs/a/0", "packs/a/1", "packs/b/2"]
    assert sorted(any_store.list()) == ["clusters/x/m.json", "index/1", "packs/a/0", "packs/a/1", "packs/b/2"]
    assert list(any_store.list("nothing/")) == []


def test_list_info_gives_size_and_a_timezone_aware_time(any_store: ObjectStore) -> None:
    any_store.put("packs/a/0", b"abc")
    any_store.put("packs/a/1", b"abcdef")
    any_store.put("index/0", b"x")
    infos = list(any_store.list_info("packs/"))
    assert [(i.key, i.size) for i in infos] == [("packs/a/0", 3), ("packs/a/1", 6)]
    assert all(isinstance(i, ObjectInfo) and isinstance(i.last_modified, datetime) for i in infos)
    assert all(i.last_modified.tzinfo is not None for i in infos)


def test_delete_removes_and_deleting_again_is_harmless(any_store: ObjectStore) -> None:
    any_store.put("packs/a/0", b"abc")
    any_store.delete("packs/a/0")
    assert any_store.exists("packs/a/0") is False
    assert list(any_store.list("packs/")) == []
    any_store.delete("packs/a/0")


def test_a_backup_written_to_the_store_reads_back_whole_and_checks_clean(any_store: ObjectStore) -> None:
    repo = Repository.open(any_store, create=True)
    manifest, stored = write_small_backup(repo, RepositoryWriter(repo, pack_target_bytes=2048))

    reader = RepositoryReader(Repository.open(any_store))
    assert {e.blob for _, e in reader.walk(manifest)} == set(stored)
    assert dict(reader.read_blobs(stored)).keys() == stored.keys()
    assert check_repository(reader).ok
    assert list(any_store.list("index/")) == [f"index/{manifest.index_files[0]}"]
