from __future__ import annotations

from dataclasses import replace

import pytest

from chalicelib.core.errors import FormatError
from chalicelib.repository import Repository, RepositoryWriter
from chalicelib.repository.backup_log import LogEntry, log_key, read_log
from chalicelib.repository.store import MemoryObjectStore
from tests.support.repository import CLUSTER, bare_manifest


class RecordingStore(MemoryObjectStore):
    def __init__(self) -> None:
        super().__init__()
        self.put_keys: list[str] = []

    def put(self, key: str, data: bytes, *, create_only: bool = True) -> None:
        self.put_keys.append(key)
        super().put(key, data, create_only=create_only)


def _commit(store: RecordingStore, backup_id: str, errors: list[dict[str, str]], log: list[LogEntry]) -> str:
    repo = Repository.open(store, create=True)
    writer = RepositoryWriter(repo)
    root, _ = writer.add_bytes(backup_id.encode())
    manifest = replace(bare_manifest(backup_id, root, writer.finish()), errors=errors)
    return writer.write_manifest(manifest, log)


def test_log_is_written_before_the_manifest_and_read_back() -> None:
    store = RecordingStore()
    per_object = LogEntry("warning", "configmaps", "larger than 1 MiB", namespace="shop", name="big")
    key = _commit(store, "20260101T000000Z-aaaaaa", [{"resource": "widgets.example.com", "error": "403"}], [per_object])
    log = log_key(CLUSTER, "20260101T000000Z-aaaaaa")
    assert store.put_keys.index(log) < store.put_keys.index(key)
    assert read_log(store, CLUSTER, "20260101T000000Z-aaaaaa") == [
        LogEntry("error", "widgets.example.com", "403"),
        per_object,
    ]


def test_nothing_to_log_writes_no_log_and_reads_empty() -> None:
    store = RecordingStore()
    _commit(store, "20260101T000000Z-bbbbbb", [], [])
    assert log_key(CLUSTER, "20260101T000000Z-bbbbbb") not in store.put_keys
    assert read_log(store, CLUSTER, "20260101T000000Z-bbbbbb") == []


def test_unknown_log_version_is_refused() -> None:
    store = RecordingStore()
    store.put(log_key(CLUSTER, "20260101T000000Z-cccccc"), b'{"v": 9, "entries": []}')
    with pytest.raises(FormatError):
        read_log(store, CLUSTER, "20260101T000000Z-cccccc")
