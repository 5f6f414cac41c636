"""A warm process's next backup starts from the index it loaded last: it reads only the index files written since,
and ends with the index a fresh load gives, or loads afresh when it could not."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from chalicelib.core.index_format import encode_index
from chalicelib.core.packs import PackedBlob
from chalicelib.repository import Repository, RepositoryReader, RepositoryWriter, S3ObjectStore, last_loaded
from chalicelib.repository.errors import RepositoryCorrupt
from chalicelib.repository.repo import INDEX_DIR
from tests.support.repository import PREFIX


class CountingStore(S3ObjectStore):
    """An S3 store that records the keys it GETs."""

    def __init__(self, s3: Any, bucket: str) -> None:
        super().__init__(s3, bucket, prefix=PREFIX)
        self.gets: list[str] = []

    def get(self, key: str) -> bytes:
        self.gets.append(key)
        return super().get(key)


@pytest.fixture(autouse=True)
def _forget_loaded_index() -> Iterator[None]:
    last_loaded.LAST_LOADED.clear()
    yield
    last_loaded.LAST_LOADED.clear()


@pytest.fixture
def counting(s3: Any, bucket: str) -> CountingStore:
    return CountingStore(s3, bucket)


def _write(repo: Repository, *payloads: bytes) -> list[str]:
    writer = RepositoryWriter(repo)
    for payload in payloads:
        writer.add_bytes(payload)
    return writer.finish()


def _index_gets(store: CountingStore) -> list[str]:
    return sorted(k[len(INDEX_DIR) :] for k in store.gets if k.startswith(INDEX_DIR))


def _fresh(store: S3ObjectStore) -> dict[Any, Any]:
    return dict(RepositoryReader(Repository.open(store)).load_index().items())


def _load(store: CountingStore) -> Any:
    store.gets.clear()
    return RepositoryReader(Repository.open(store), reuse_loaded_index=True).load_index()


def test_only_the_index_files_written_since_are_read(counting: CountingStore) -> None:
    repo = Repository.open(counting, create=True)
    first = _write(repo, b"one", b"two")
    assert _index_gets(counting) == [] and len(_load(counting)) == 2
    assert _index_gets(counting) == first
    second = _write(repo, b"three")
    index = _load(counting)
    assert _index_gets(counting) == second  # the first file is not read again
    assert dict(index.items()) == _fresh(counting) and len(index) == 3
    _load(counting)
    assert _index_gets(counting) == []  # nothing new: no index GET at all


def test_a_file_gone_since_means_a_fresh_load(counting: CountingStore) -> None:
    repo = Repository.open(counting, create=True)
    first = _write(repo, b"one")
    second = _write(repo, b"two")
    _load(counting)
    counting.delete(INDEX_DIR + first[0])  # garbage collection rewrote or removed it
    third = _write(repo, b"three")
    index = _load(counting)
    assert _index_gets(counting) == sorted([*second, *third])
    assert dict(index.items()) == _fresh(counting) and len(index) == 2


def test_a_new_file_superseding_others_or_naming_a_known_blob_means_a_fresh_load(counting: CountingStore) -> None:
    repo = Repository.open(counting, create=True)
    first = _write(repo, b"one", b"two")
    index = _load(counting)
    # A consolidation: one file with the first one's packs, superseding it (the old one not yet removed).
    entries = {}
    for blob, entry in index.items():
        entries.setdefault(entry.pack, []).append(PackedBlob(blob, entry.type, *entry[2:]))
    name, data = encode_index(entries, supersedes=first)
    counting.put(INDEX_DIR + name, data)
    consolidated = _load(counting)
    assert _index_gets(counting) == [name]  # merged again from every file, the kept ones not read again
    assert dict(consolidated.items()) == _fresh(counting)
    # Two concurrent writers stored the same blob: which location wins is the sorted merge's choice.
    again = _write(repo, b"one")
    merged = _load(counting)
    assert _index_gets(counting) == again
    assert dict(merged.items()) == _fresh(counting)


def test_a_loaded_index_is_never_changed(counting: CountingStore) -> None:
    repo = Repository.open(counting, create=True)
    _write(repo, b"one")
    index = _load(counting)
    entry = next(iter(index.values()))
    with pytest.raises(RuntimeError, match="a loaded index is not changed"):
        index.add("ab" * 32, entry)
    _write(repo, b"two")
    assert len(_load(counting)) == 2 and len(index) == 1  # the next load merged into a copy


def test_without_reuse_every_file_is_read_and_checked_again(counting: CountingStore) -> None:
    repo = Repository.open(counting, create=True)
    (first,) = _write(repo, b"one")
    _load(counting)
    counting.put(INDEX_DIR + first, b"tampered", create_only=False)
    with pytest.raises(RepositoryCorrupt, match="does not hash to its name"):
        RepositoryReader(Repository.open(counting)).load_index()
