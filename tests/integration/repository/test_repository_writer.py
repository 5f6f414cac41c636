"""RepositoryWriter on S3 (moto): packs, frames, the index, the write order, dedup, and failures while writing."""

from __future__ import annotations

import hashlib
import threading
import time
from typing import Any

import pytest

from chalicelib.core.canonical import canonical_blob
from chalicelib.core.index_format import decode_index, encode_index
from chalicelib.core.packs import read_pack
from chalicelib.repository import Repository, RepositoryReader, RepositoryWriter, S3ObjectStore
from chalicelib.repository.errors import (
    BlobIdMismatch,
    BucketNotFound,
    ManifestExists,
    ManifestIncomplete,
    ObjectExists,
    StorageError,
    WriterStateError,
)
from tests.support.repository import (
    CLUSTER,
    PREFIX,
    FailingStore,
    bare_manifest,
    frames_of,
    keys_under,
    pack_keys,
    write_small_backup,
)


def test_backup_spans_several_content_addressed_packs_and_one_index(
    s3: Any, bucket: str, repo: Repository, written: Any
) -> None:
    manifest, stored = written
    packs = pack_keys(s3, bucket)
    index_keys = keys_under(s3, bucket, "index/")

    assert len(packs) >= 3
    frame_counts = []
    for key in packs:
        body = s3.get_object(Bucket=bucket, Key=PREFIX + key)["Body"].read()
        name = key.rsplit("/", 1)[-1]
        assert key == f"packs/{name[:2]}/{name}"
        assert hashlib.sha256(body).hexdigest() == name
        frame_counts.append(len({e.frame_offset for e in read_pack(body)}))
    assert max(frame_counts) >= 3  # packs of several frames...
    assert max(len(blobs) for blobs in frames_of(RepositoryReader(repo).load_index()).values()) >= 2  # ...of many blobs
    assert index_keys == [f"index/{manifest.index_files[0]}"] and len(manifest.index_files) == 1
    index_data = s3.get_object(Bucket=bucket, Key=PREFIX + index_keys[0])["Body"].read()
    index = decode_index(index_data)
    assert {f"packs/{p[:2]}/{p}" for p in index.packs} == set(packs)
    for key in packs:  # each pack's rows are its header's, in pack order, and the file is encode_index's bytes
        body = s3.get_object(Bucket=bucket, Key=PREFIX + key)["Body"].read()
        assert index.packs[key.rsplit("/", 1)[-1]] == read_pack(body)
    assert encode_index(index.packs) == (manifest.index_files[0], index_data)
    assert set(stored) <= set(index.entries())
    assert keys_under(s3, bucket, "clusters/") == [f"clusters/{CLUSTER}/backups/{manifest.backup_id}/manifest.json"]


def test_puts_are_conditional_checksummed_and_kms_encrypted_when_configured(s3: Any, bucket: str) -> None:
    import boto3

    key_id = boto3.client("kms", region_name="us-east-1").create_key()["KeyMetadata"]["KeyId"]
    store = S3ObjectStore(s3, bucket, prefix="enc", kms_key_id=key_id)
    store.put("a", b"payload")

    head = s3.head_object(Bucket=bucket, Key="enc/a", ChecksumMode="ENABLED")
    assert head["ServerSideEncryption"] == "aws:kms"
    assert key_id in head["SSEKMSKeyId"]
    assert "ChecksumSHA256" in head
    with pytest.raises(ObjectExists):
        store.put("a", b"other")
    assert store.get("a") == b"payload"
    store.put("a", b"other", create_only=False)
    assert store.get("a") == b"other"


def test_a_blob_larger_than_the_frame_target_is_a_frame_of_its_own(store: S3ObjectStore, repo: Repository) -> None:
    small = [canonical_blob({"kind": "ConfigMap", "metadata": {"name": f"cm-{i}"}}) for i in range(3)]
    big = canonical_blob({"kind": "ConfigMap", "metadata": {"name": "big"}, "data": {"k": "v" * (100 << 10)}})
    writer = RepositoryWriter(repo)
    for bid, data in [small[0], big, small[1], small[2]]:
        writer.add(bid, data)
    writer.finish()
    counting = FailingStore(store, fail_under="\0")
    reader = RepositoryReader(Repository.open(counting))
    index = reader.load_index()

    entry = index[big[0]]
    assert (entry.offset, entry.raw_length, entry.frame_raw_length) == (0, len(big[1]), len(big[1]))
    assert index[small[1][0]].frame_offset == index[small[2][0]].frame_offset == entry.frame_offset + entry.frame_length
    assert index[small[0][0]].frame_raw_length == len(small[0][1])  # closed early, before the big one
    assert reader.read_blob(big[0]) == big[1]
    assert counting.gets[0][1:] == (entry.frame_offset, entry.frame_offset + entry.frame_length - 1)


def test_dedup_second_backup_of_an_unchanged_cluster_uploads_only_its_manifest(
    s3: Any, bucket: str, repo: Repository, written: Any
) -> None:
    packs_before = pack_keys(s3, bucket)
    reader = RepositoryReader(repo)
    writer = RepositoryWriter(repo, known=reader.known_blob_ids(), pack_target_bytes=2048)

    manifest, _ = write_small_backup(repo, writer, backup_id="20260102T000000Z-bbbbbb")

    assert writer.stats.blobs_new == 0
    assert writer.stats.bytes_uploaded == len(manifest.to_json())  # the manifest, nothing else
    assert writer.stats.puts == 1
    assert manifest.index_files == []
    assert pack_keys(s3, bucket) == packs_before
    assert len(RepositoryReader(repo).list_backups(CLUSTER)) == 2


def test_add_dedups_within_a_run_and_counts(repo: Repository) -> None:
    writer = RepositoryWriter(repo, known=lambda b: b == "f" * 64)
    bid, data = canonical_blob({"kind": "ConfigMap", "metadata": {"name": "x"}})

    assert writer.add(bid, data) is True
    assert writer.add(bid, data) is False
    assert writer.add("f" * 64, b"whatever") is False  # type: ignore[arg-type]
    indexes = writer.finish()

    assert len(indexes) == 1
    stats = writer.stats
    assert (stats.blobs_new, stats.bytes_raw_new, stats.puts) == (1, len(data), 2)  # one pack, one index
    assert stats.bytes_uploaded > 0
    assert dict(stats) == {
        "blobs_new": 1,
        "bytes_raw_new": len(data),
        "bytes_uploaded": stats.bytes_uploaded,
        "puts": 2,
    }
    assert RepositoryReader(repo).read_blob(bid) == data


def test_known_may_be_any_collection(repo: Repository) -> None:
    bid, data = canonical_blob({"a": 1})
    writer = RepositoryWriter(repo, known=frozenset({bid}))

    assert writer.add(bid, data) is False
    assert writer.finish() == []


def test_writer_refuses_a_blob_that_does_not_hash_to_its_id(repo: Repository) -> None:
    writer = RepositoryWriter(repo)

    with pytest.raises(BlobIdMismatch):
        writer.add("0" * 64, b"{}")  # type: ignore[arg-type]


def test_writer_enforces_the_write_order(repo: Repository) -> None:
    writer = RepositoryWriter(repo)
    bid, data = canonical_blob({"a": 1})
    writer.add(bid, data)
    with pytest.raises(WriterStateError):
        writer.write_manifest(bare_manifest("b1", bid, []))

    indexes = writer.finish()

    with pytest.raises(WriterStateError):
        writer.add(*canonical_blob({"b": 2}))
    with pytest.raises(ManifestIncomplete):
        writer.write_manifest(bare_manifest("b1", bid, []))
    writer.write_manifest(bare_manifest("b1", bid, indexes))


def test_nothing_added_writes_no_index(s3: Any, bucket: str, repo: Repository) -> None:
    writer = RepositoryWriter(repo)

    assert writer.finish() == []
    assert keys_under(s3, bucket, "index/") == [] and writer.stats.puts == 0


def test_manifest_is_never_overwritten(s3: Any, bucket: str, repo: Repository, written: Any) -> None:
    manifest, _ = written
    key = PREFIX + repo.manifest_key(CLUSTER, manifest.backup_id)
    before = s3.get_object(Bucket=bucket, Key=key)["Body"].read()
    writer = RepositoryWriter(repo)
    writer.finish()

    with pytest.raises(ManifestExists, match=manifest.backup_id):
        writer.write_manifest(bare_manifest(manifest.backup_id, manifest.root_tree, [], cluster=CLUSTER))

    assert s3.get_object(Bucket=bucket, Key=key)["Body"].read() == before


def test_a_failed_pack_upload_fails_finish_and_commits_nothing(s3: Any, bucket: str, store: S3ObjectStore) -> None:
    repo = Repository.open(FailingStore(store, allow=1), create=True)
    writer = RepositoryWriter(repo, pack_target_bytes=2048)

    with pytest.raises(StorageError, match="connection reset"):
        write_small_backup(repo, writer)

    assert keys_under(s3, bucket, "index/") == [] and keys_under(s3, bucket, "clusters/") == []
    assert len(pack_keys(s3, bucket)) <= 1  # the one allowed: garbage, never reachable
    with pytest.raises(WriterStateError):
        writer.write_manifest(bare_manifest("b1", "0" * 64, []))


def test_bucket_deleted_mid_backup_fails_with_bucket_not_found(s3: Any, bucket: str, repo: Repository) -> None:
    writer = RepositoryWriter(repo, pack_target_bytes=1 << 30)
    bid, data = canonical_blob({"kind": "ConfigMap", "metadata": {"name": "x"}})
    writer.add(bid, data)
    for key in keys_under(s3, bucket):
        s3.delete_object(Bucket=bucket, Key=PREFIX + key)
    s3.delete_bucket(Bucket=bucket)

    with pytest.raises(BucketNotFound, match=bucket) as info:
        writer.finish()

    assert info.value.bucket == bucket and info.value.operation == "put"
    with pytest.raises(WriterStateError):
        writer.write_manifest(bare_manifest("b1", bid, []))


def test_add_blocks_while_max_pending_packs_are_uploading(repo: Repository) -> None:
    gate = threading.Event()
    started: list[str] = []

    class SlowStore(FailingStore):
        def put(self, key: str, data: bytes, *, create_only: bool = True) -> None:
            if key.startswith("packs/"):
                started.append(key)
                gate.wait(10)
            self.inner.put(key, data, create_only=create_only)

    slow = Repository(SlowStore(repo.store, fail_under="\0"), repo.config)
    writer = RepositoryWriter(slow, pack_target_bytes=1, upload_threads=1, max_pending_packs=1)
    blobs = [canonical_blob({"n": i}) for i in range(3)]
    adder = threading.Thread(target=lambda: [writer.add(b, d) for b, d in blobs])
    adder.start()
    time.sleep(0.3)

    assert adder.is_alive()  # blocked handing over the second pack
    assert len(started) == 1
    gate.set()
    adder.join(5)
    assert not adder.is_alive()
    writer.finish()
    assert len(started) == 3
