"""etcd snapshots streamed to (moto) S3 from a real etcd: multipart, checksummed, refused when the stream is bad."""

from __future__ import annotations

import hashlib
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from chalicelib.etcd import EtcdClient, SnapshotChunk, SnapshotCorrupt, SnapshotIncomplete
from chalicelib.repository import S3ObjectStore
from chalicelib.snapshots.etcd import EtcdSnapshotter, artifact_key
from tests.support import etcd as etcd_helpers
from tests.support.etcd import EtcdProcess, etcd_bin, start_etcd

pytestmark = pytest.mark.etcd
etcd_certs = etcd_helpers.etcd_certs
etcd_member = etcd_helpers.etcd_member

CLUSTER, BACKUP = "prod", "20261201T230000Z-abc123"
PART = 5 << 20


class RecordingClient(EtcdClient):
    """The real client, counting snapshot streams and optionally spoiling one chunk."""

    def __init__(self, member: EtcdProcess, spoil: Any = None) -> None:
        super().__init__([member.client_url], member.certs.tls())
        self.streams = 0
        self._spoil = spoil

    def snapshot(self, endpoint: str, *, timeout_s: float = 900.0) -> Iterator[SnapshotChunk]:
        self.streams += 1
        chunks = super().snapshot(endpoint, timeout_s=timeout_s)
        yield from (self._spoil(chunks) if self._spoil else chunks)


@pytest.fixture
def store(s3: Any, bucket: str) -> S3ObjectStore:
    return S3ObjectStore(s3, bucket)


def uploads(s3: Any, bucket: str) -> list[Any]:
    return s3.list_multipart_uploads(Bucket=bucket).get("Uploads", [])


def test_snapshot_is_streamed_to_s3_in_parts_and_restores(
    etcd_member: EtcdProcess, store: S3ObjectStore, s3: Any, bucket: str, tmp_path: Path
) -> None:
    client = RecordingClient(etcd_member)
    status = client.status()
    snap = EtcdSnapshotter(client, store, part_size=PART).take(CLUSTER, BACKUP)

    key = f"clusters/{CLUSTER}/backups/{BACKUP}/etcd.db"
    assert snap.key == artifact_key(CLUSTER, BACKUP) == key
    head = s3.head_object(Bucket=bucket, Key=store.prefix + key, PartNumber=1)
    assert head["PartsCount"] >= 2 and head["ContentLength"] == PART  # multipart, parts of the size asked for
    data = s3.get_object(Bucket=bucket, Key=store.prefix + key)["Body"].read()
    assert len(data) == snap.size == snap.db_size + 32
    assert hashlib.sha256(data).hexdigest() == snap.sha256
    assert hashlib.sha256(data[:-32]).hexdigest() == snap.db_sha256 == data[-32:].hex()
    assert (snap.member, snap.version, snap.endpoint) == (status.member_id, status.version, etcd_member.client_url)
    assert snap.revision >= status.header.revision
    manifest = snap.to_manifest()
    assert manifest["key"] == "etcd.db" and manifest["sha256"] == snap.sha256

    # The stored file is what etcdutl restores (its trailer checked); an etcd started on it serves the keys.
    (tmp_path / "etcd.db").write_bytes(data)
    restored = tmp_path / "restored"
    subprocess.run(
        [etcd_bin("etcdutl"), "snapshot", "restore", str(tmp_path / "etcd.db"), f"--data-dir={restored}"],
        check=True,
        capture_output=True,
    )
    member = start_etcd(etcd_member.certs, restored)
    try:
        counted = member.client().count_keys()
        assert counted.count == 3000 and counted.revision == snap.revision
        assert member.etcdctl("get", "/registry/test/000042", "--print-value-only").startswith("value-42x")
    finally:
        member.stop()


def test_a_redelivered_job_does_not_upload_twice(etcd_member: EtcdProcess, store: S3ObjectStore, s3: Any) -> None:
    client = RecordingClient(etcd_member)
    first = EtcdSnapshotter(client, store, part_size=PART).take(CLUSTER, BACKUP)
    calls: list[str] = []
    s3.meta.events.register("before-call.s3.*", lambda model, **_: calls.append(model.name))
    again = EtcdSnapshotter(client, store, part_size=PART).take(CLUSTER, BACKUP)
    assert again == first
    assert client.streams == 1
    assert not {"CreateMultipartUpload", "UploadPart", "PutObject"} & set(calls)


def cut_short(chunks: Iterator[SnapshotChunk]) -> Iterator[SnapshotChunk]:
    for i, chunk in enumerate(chunks):
        if i == 200:  # past the first part: some parts are already uploaded
            return
        yield chunk


def flip_a_byte(chunks: Iterator[SnapshotChunk]) -> Iterator[SnapshotChunk]:
    for i, chunk in enumerate(chunks):
        if i == 10:
            blob = bytearray(chunk.blob)
            blob[100] ^= 0x40
            chunk = SnapshotChunk(chunk.remaining_bytes, bytes(blob))
        yield chunk


def drop_checksum(chunks: Iterator[SnapshotChunk]) -> Iterator[SnapshotChunk]:
    items = list(chunks)
    yield from items[:-1]


@pytest.mark.parametrize(
    ("spoil", "error"),
    [(cut_short, SnapshotIncomplete), (flip_a_byte, SnapshotCorrupt), (drop_checksum, SnapshotIncomplete)],
    ids=["cut-short", "flipped-byte", "no-checksum"],
)
def test_a_bad_stream_stores_nothing(
    etcd_member: EtcdProcess, store: S3ObjectStore, s3: Any, bucket: str, spoil: Any, error: type[Exception]
) -> None:
    with pytest.raises(error):
        EtcdSnapshotter(RecordingClient(etcd_member, spoil), store, part_size=PART).take(CLUSTER, BACKUP)
    assert not store.exists(artifact_key(CLUSTER, BACKUP))
    assert uploads(s3, bucket) == []  # the parts sent are aborted, not left to cost storage
    # The next attempt starts afresh and succeeds.
    snap = EtcdSnapshotter(RecordingClient(etcd_member), store, part_size=PART).take(CLUSTER, BACKUP)
    assert store.exists(snap.key)


def test_a_stored_file_that_fails_its_checksum_is_refused(store: S3ObjectStore) -> None:
    data = b"\x00" * 4096
    store.put(artifact_key(CLUSTER, BACKUP), data + hashlib.sha256(b"other").digest())
    with pytest.raises(SnapshotCorrupt):
        EtcdSnapshotter(EtcdClient(["https://127.0.0.1:1"], None), store).take(CLUSTER, BACKUP)


def test_two_workers_racing_store_one_file(etcd_member: EtcdProcess, store: S3ObjectStore) -> None:
    winner: list[Any] = []

    def other_worker_finishes_first(chunks: Iterator[SnapshotChunk]) -> Iterator[SnapshotChunk]:
        yield from chunks
        winner.append(EtcdSnapshotter(RecordingClient(etcd_member), store, part_size=PART).take(CLUSTER, BACKUP))

    late = EtcdSnapshotter(RecordingClient(etcd_member, other_worker_finishes_first), store, part_size=PART)
    assert late.take(CLUSTER, BACKUP) == winner[0]  # the create-only completion lost; the stored file is reported
