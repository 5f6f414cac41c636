"""The repository format on S3 (moto): write, read, verify, check, export, rebuild, and failure paths."""

from __future__ import annotations

import hashlib
import threading
import time
from pathlib import Path
from typing import Any

import pytest
import yaml

from chalicelib.core.canonical import canonical_blob
from chalicelib.core.ids import BackupId, BlobId
from chalicelib.core.index_format import IndexEntry, decode_index
from chalicelib.core.manifest import Manifest
from chalicelib.core.packs import BLOB_TREE, read_pack
from chalicelib.core.resources import Resource
from chalicelib.core.trees import TreeEntry, encode_root
from chalicelib.repository import (
    MemoryObjectStore,
    Repository,
    RepositoryReader,
    RepositoryWriter,
    S3ObjectStore,
    check_repository,
    export_backup,
)
from chalicelib.repository import reader as reader_module
from chalicelib.repository.errors import (
    AccessDenied,
    BackupNotFound,
    BlobCorrupt,
    BlobIdMismatch,
    BlobMissing,
    BucketNotFound,
    ExportError,
    InvalidName,
    ManifestExists,
    ManifestIncomplete,
    ObjectExists,
    ObjectNotFound,
    RepositoryCorrupt,
    RepositoryNotFound,
    StorageError,
    UnsupportedFormat,
    WriterStateError,
)
from chalicelib.repository.export import safe_name
from tests.support.builders import write_backup

PREFIX = "lifeboat/v1/"
CLUSTER = "prod-eu"

# -- a small cluster ------------------------------------------------------------------------------------------


def _objects() -> list[tuple[str, str, str, str, dict[str, Any]]]:
    """(scope, group, resource, apiVersion, object) as a list response would give them."""
    out: list[tuple[str, str, str, str, dict[str, Any]]] = []
    for ns in ("shop", "billing"):
        out.append(("", "", "namespaces", "v1", {"kind": "Namespace", "metadata": {"name": ns, "uid": "u-" + ns}}))
        for i in range(12):
            meta = {"name": f"settings-{i}", "namespace": ns, "resourceVersion": str(100 + i), "uid": f"{ns}{i}"}
            cm = {"kind": "ConfigMap", "metadata": meta, "data": {"LOG_LEVEL": "info", "INDEX": f"{ns}-{i}" * 20}}
            out.append((ns, "", "configmaps", "v1", cm))
        secret = {
            "kind": "Secret",
            "type": "Opaque",
            "metadata": {"name": "db-creds", "namespace": ns},
            "data": {"password": "c2VjcmV0LXBhc3N3b3Jk"},
        }
        out.append((ns, "", "secrets", "v1", secret))
        deploy = {
            "kind": "Deployment",
            "metadata": {"name": "web", "namespace": ns, "generation": 4},
            "spec": {"replicas": 2, "template": {"spec": {"containers": [{"name": "web", "image": "nginx:1.27"}]}}},
            "status": {"readyReplicas": 2},
        }
        out.append((ns, "apps", "deployments", "apps/v1", deploy))
    role = {"kind": "ClusterRole", "metadata": {"name": "system:controller:widgets"}, "rules": []}
    out.append(("", "rbac.authorization.k8s.io", "clusterroles", "rbac.authorization.k8s.io/v1", role))
    return out


def _backup(
    repo: Repository, writer: RepositoryWriter, backup_id: str = "20260101T000000Z-aaaaaa"
) -> tuple[Manifest, dict[str, Any]]:
    """Write a whole backup the way the backup worker does: objects, scope trees, root, index, manifest."""
    items = [
        (Resource(group, api_version.rsplit("/", 1)[-1], obj["kind"], resource, bool(scope)), obj)
        for scope, group, resource, api_version, obj in _objects()
    ]
    written = write_backup(repo, items, cluster=CLUSTER, backup_id=backup_id, policy="nightly", writer=writer)
    assert written.manifest is not None
    return written.manifest, written.objects


def _manifest(backup_id: str, root: str, index_files: list[str], cluster: str = CLUSTER) -> Manifest:
    return Manifest(
        backup_id=BackupId(backup_id),
        cluster=cluster,
        policy="nightly",
        parent=None,
        started_at="2026-01-01T00:00:00Z",
        finished_at="2026-01-01T00:01:00Z",
        kubernetes_version="v1.31.0",
        scope={},
        root_tree=BlobId(root),
        counts={"objects": len(_objects())},
        kinds={},
        index_files=index_files,
    )


# -- fixtures -------------------------------------------------------------------------------------------------


@pytest.fixture
def store(s3: Any, bucket: str) -> S3ObjectStore:
    return S3ObjectStore(s3, bucket, prefix=PREFIX)


@pytest.fixture
def repo(store: S3ObjectStore) -> Repository:
    return Repository.open(store, create=True)


@pytest.fixture
def written(repo: Repository) -> tuple[Manifest, dict[str, Any]]:
    """One committed backup, spread over several small packs of several frames (trees are frames of their own)."""
    return _backup(repo, RepositoryWriter(repo, pack_target_bytes=1200, frame_target_bytes=512))


def _keys(s3: Any, bucket: str, under: str = "") -> list[str]:
    pages = s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=PREFIX + under)
    return [o["Key"][len(PREFIX) :] for page in pages for o in page.get("Contents", [])]


def _pack_keys(s3: Any, bucket: str) -> list[str]:
    return _keys(s3, bucket, "packs/")


class FailingStore:
    """Wraps a store; puts of keys under ``fail_under`` raise after ``allow`` of them succeeded."""

    def __init__(self, inner: Any, fail_under: str = "packs/", allow: int = 0, exc: Exception | None = None):
        self.inner, self.fail_under, self.allow = inner, fail_under, allow
        self.exc = exc or RuntimeError("connection reset by peer")
        self.gets: list[tuple[str, int, int]] = []

    def put(self, key: str, data: bytes, *, create_only: bool = True) -> None:
        if key.startswith(self.fail_under):
            if self.allow <= 0:
                raise self.exc
            self.allow -= 1
        self.inner.put(key, data, create_only=create_only)

    def get_range(self, key: str, start: int, end: int) -> bytes:
        self.gets.append((key, start, end))
        return self.inner.get_range(key, start, end)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)


def _frames(index: dict[BlobId, IndexEntry]) -> dict[tuple[str, int], list[BlobId]]:
    """(pack, frame offset) -> the blobs of that frame, frames in pack order."""
    frames: dict[tuple[str, int], list[BlobId]] = {}
    for blob, entry in sorted(index.items(), key=lambda item: (item[1].pack, item[1].frame_offset, item[1].offset)):
        frames.setdefault((entry.pack, entry.frame_offset), []).append(blob)
    return frames


# -- opening --------------------------------------------------------------------------------------------------


def test_init_writes_config_and_open_reads_the_same_repository(s3: Any, bucket: str, store: S3ObjectStore) -> None:
    with pytest.raises(RepositoryNotFound):
        Repository.open(store)

    created = Repository.open(store, create=True)
    reopened = Repository.open(S3ObjectStore(s3, bucket, prefix=PREFIX))

    assert reopened.config == created.config
    assert created.config.version == 1 and created.config.compression == "zstd"
    assert len(created.config.id) == 32 and int(created.config.id, 16) >= 0
    assert created.config.created_at.endswith("Z")
    assert _keys(s3, bucket) == ["config.json"]


def test_init_race_adopts_the_config_written_first(store: S3ObjectStore) -> None:
    first = Repository.open(store, create=True)

    class LateStore(FailingStore):
        """Reports config.json absent once, as if our get ran before the other process's put."""

        missed = False

        def get(self, key: str) -> bytes:
            if not self.missed:
                self.missed = True
                raise ObjectNotFound("simulated", key=key)
            return self.inner.get(key)

    second = Repository.open(LateStore(store, fail_under="\0"), create=True)

    assert second.config == first.config


def test_unknown_repository_version_is_refused_by_name(s3: Any, bucket: str, store: S3ObjectStore) -> None:
    s3.put_object(Bucket=bucket, Key=PREFIX + "config.json", Body=b'{"version": 2, "id": "x", "compression": "zstd"}')

    with pytest.raises(UnsupportedFormat, match="version 2"):
        Repository.open(store, create=True)


def test_unknown_manifest_version_is_refused(s3: Any, bucket: str, repo: Repository, written: Any) -> None:
    manifest, _ = written
    key = PREFIX + repo.manifest_key(CLUSTER, manifest.backup_id)
    body = s3.get_object(Bucket=bucket, Key=key)["Body"].read().replace(b'"format_version": 1', b'"format_version": 9')
    s3.put_object(Bucket=bucket, Key=key, Body=body)

    with pytest.raises(UnsupportedFormat, match="version 9"):
        RepositoryReader(repo).load_manifest(CLUSTER, manifest.backup_id)


# -- writing and reading --------------------------------------------------------------------------------------


def test_backup_spans_several_content_addressed_packs_and_one_index(
    s3: Any, bucket: str, repo: Repository, written: Any
) -> None:
    manifest, stored = written
    packs = _pack_keys(s3, bucket)
    index_keys = _keys(s3, bucket, "index/")

    assert len(packs) >= 3
    frame_counts = []
    for key in packs:
        body = s3.get_object(Bucket=bucket, Key=PREFIX + key)["Body"].read()
        name = key.rsplit("/", 1)[-1]
        assert key == f"packs/{name[:2]}/{name}"
        assert hashlib.sha256(body).hexdigest() == name
        frame_counts.append(len({e.frame_offset for e in read_pack(body)}))
    assert max(frame_counts) >= 3  # packs of several frames...
    assert max(len(blobs) for blobs in _frames(RepositoryReader(repo).load_index()).values()) >= 2  # ...of many blobs
    assert index_keys == [f"index/{manifest.index_files[0]}"] and len(manifest.index_files) == 1
    index = decode_index(s3.get_object(Bucket=bucket, Key=PREFIX + index_keys[0])["Body"].read())
    assert {f"packs/{p[:2]}/{p}" for p in index.packs} == set(packs)
    assert set(stored) <= set(index.entries())
    assert _keys(s3, bucket, "clusters/") == [f"clusters/{CLUSTER}/backups/{manifest.backup_id}/manifest.json"]


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


def test_reader_reads_and_verifies_every_object_and_walks_scopes_in_order(repo: Repository, written: Any) -> None:
    manifest, stored = written
    reader = RepositoryReader(repo)

    walked = list(reader.walk(manifest))

    assert [scope for scope, _ in walked] == sorted(scope for scope, _ in walked)
    assert {scope for scope, _ in walked} == {"", "billing", "shop"}
    assert len(walked) == len(_objects())
    for _scope, entry in walked:
        assert yaml.safe_load(reader.read_blob(entry.blob)) == stored[entry.blob]
    assert dict(reader.read_blobs([e.blob for _, e in walked])).keys() == set(stored)
    assert reader.list_backups() == [(CLUSTER, manifest.backup_id)]
    assert reader.list_backups("elsewhere") == []
    assert reader.load_manifest(CLUSTER, manifest.backup_id) == manifest


def test_read_blobs_takes_a_whole_pack_when_most_is_wanted_and_one_frame_otherwise(
    store: S3ObjectStore, written: Any
) -> None:
    counting = FailingStore(store, fail_under="\0")
    reader = RepositoryReader(Repository.open(counting), frame_cache_bytes=0)
    index = reader.load_index()
    frames = _frames(index)
    pack = max({p for p, _ in frames}, key=lambda p: sum(1 for q, _ in frames if q == p))
    in_pack = [blob for (p, _), blobs in frames.items() if p == pack for blob in blobs]
    assert sum(1 for p, _ in frames if p == pack) >= 3

    assert len(dict(reader.read_blobs(in_pack))) == len(in_pack)
    assert len(counting.gets) == 1 and counting.gets[0][1] == 0

    counting.gets.clear()
    one = in_pack[-1]
    assert dict(reader.read_blobs([one])) == {one: reader.read_blob(one)}
    frame = index[one].frame_offset, index[one].frame_offset + index[one].frame_length - 1
    assert [get[1:] for get in counting.gets] == [frame, frame]  # the cache is off: each read fetches it


def test_nearby_frames_are_fetched_in_one_range_and_each_decompressed_once(
    monkeypatch: pytest.MonkeyPatch, store: S3ObjectStore, written: Any
) -> None:
    counting = FailingStore(store, fail_under="\0")
    reader = RepositoryReader(Repository.open(counting), frame_cache_bytes=0)
    frames = _frames(reader.load_index())
    pack = max({p for p, _ in frames}, key=lambda p: sum(1 for q, _ in frames if q == p))
    first, *_, last = [(offset, blobs) for (p, offset), blobs in frames.items() if p == pack]
    wanted = [*first[1], *last[1]]
    decompressed: list[int] = []
    real = reader_module.decompress_frame
    monkeypatch.setattr(
        reader_module,
        "decompress_frame",
        lambda data, n: decompressed.append(n) or real(data, n),  # type: ignore[func-returns-value]
    )

    assert dict(reader.read_blobs(wanted)).keys() == set(wanted)
    assert len(counting.gets) == 1 and counting.gets[0][1] == first[0]  # one range, not the whole pack
    assert len(decompressed) == 2

    counting.gets.clear()
    monkeypatch.setattr(reader_module, "_RANGE_GAP", 0)
    assert dict(reader.read_blobs(wanted)).keys() == set(wanted)
    assert sorted(get[1] for get in counting.gets) == [first[0], last[0]]


def test_blobs_of_one_frame_cost_one_get_while_the_frame_is_cached(store: S3ObjectStore, written: Any) -> None:
    counting = FailingStore(store, fail_under="\0")
    reader = RepositoryReader(Repository.open(counting))
    frames = _frames(reader.load_index())
    shared = next(blobs for blobs in frames.values() if len(blobs) >= 2)
    other = next(blobs for blobs in frames.values() if blobs is not shared)

    for blob in shared:
        reader.read_blob(blob)
    assert len(counting.gets) == 1
    assert dict(reader.read_blobs(shared)).keys() == set(shared)
    assert len(counting.gets) == 1
    reader.read_blob(other[0])
    assert len(counting.gets) == 2


def test_reading_a_backup_tree_by_tree_fetches_each_frame_once(store: S3ObjectStore, repo: Repository) -> None:
    manifest, _ = _backup(repo, RepositoryWriter(repo))  # default frames: the trees share them
    counting = FailingStore(store, fail_under="\0")
    reader = RepositoryReader(Repository.open(counting))
    index = reader.load_index()

    scopes = reader.root(manifest)
    for tree_id in scopes.values():
        reader.tree(tree_id)

    frames = {(index[b].pack, index[b].frame_offset) for b in [manifest.root_tree, *scopes.values()]}
    assert len(counting.gets) == len(frames) < len(scopes) + 1


def test_frame_cache_stays_within_its_bound(store: S3ObjectStore, written: Any) -> None:
    counting = FailingStore(store, fail_under="\0")
    probe = RepositoryReader(Repository.open(counting))
    index = probe.load_index()
    frames = _frames(index)
    sizes = [index[blobs[0]].frame_raw_length for blobs in frames.values()]
    bound = 4 * max(sizes)  # every frame may be kept (a quarter of the bound at most)...
    assert sum(sizes[1:]) > bound  # ...but not all of them at once
    reader = RepositoryReader(Repository.open(counting), frame_cache_bytes=bound)

    for blobs in frames.values():
        reader.read_blob(blobs[0])
    assert len(counting.gets) == len(frames)
    first, *_, last = frames.values()
    reader.read_blob(last[-1])
    assert len(counting.gets) == len(frames)  # the latest frame is still held
    reader.read_blob(first[-1])
    assert len(counting.gets) == len(frames) + 1  # the first one was dropped to stay within the bound


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
    packs_before = _pack_keys(s3, bucket)
    reader = RepositoryReader(repo)
    writer = RepositoryWriter(repo, known=reader.known_blob_ids(), pack_target_bytes=2048)

    manifest, _ = _backup(repo, writer, backup_id="20260102T000000Z-bbbbbb")

    assert writer.stats.blobs_new == 0
    assert writer.stats.bytes_uploaded == len(manifest.to_json())  # the manifest, nothing else
    assert writer.stats.puts == 1
    assert manifest.index_files == []
    assert _pack_keys(s3, bucket) == packs_before
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
        writer.write_manifest(_manifest("b1", bid, []))

    indexes = writer.finish()

    with pytest.raises(WriterStateError):
        writer.add(*canonical_blob({"b": 2}))
    with pytest.raises(ManifestIncomplete):
        writer.write_manifest(_manifest("b1", bid, []))
    writer.write_manifest(_manifest("b1", bid, indexes))


def test_nothing_added_writes_no_index(s3: Any, bucket: str, repo: Repository) -> None:
    writer = RepositoryWriter(repo)

    assert writer.finish() == []
    assert _keys(s3, bucket, "index/") == [] and writer.stats.puts == 0


def test_manifest_is_never_overwritten(s3: Any, bucket: str, repo: Repository, written: Any) -> None:
    manifest, _ = written
    key = PREFIX + repo.manifest_key(CLUSTER, manifest.backup_id)
    before = s3.get_object(Bucket=bucket, Key=key)["Body"].read()
    writer = RepositoryWriter(repo)
    writer.finish()

    with pytest.raises(ManifestExists, match=manifest.backup_id):
        writer.write_manifest(_manifest(manifest.backup_id, manifest.root_tree, [], cluster=CLUSTER))

    assert s3.get_object(Bucket=bucket, Key=key)["Body"].read() == before


# -- failures while writing -----------------------------------------------------------------------------------


def test_a_failed_pack_upload_fails_finish_and_commits_nothing(s3: Any, bucket: str, store: S3ObjectStore) -> None:
    repo = Repository.open(FailingStore(store, allow=1), create=True)
    writer = RepositoryWriter(repo, pack_target_bytes=2048)

    with pytest.raises(StorageError, match="connection reset"):
        _backup(repo, writer)

    assert _keys(s3, bucket, "index/") == [] and _keys(s3, bucket, "clusters/") == []
    assert len(_pack_keys(s3, bucket)) <= 1  # the one allowed: garbage, never reachable
    with pytest.raises(WriterStateError):
        writer.write_manifest(_manifest("b1", "0" * 64, []))


def test_bucket_deleted_mid_backup_fails_with_bucket_not_found(s3: Any, bucket: str, repo: Repository) -> None:
    writer = RepositoryWriter(repo, pack_target_bytes=1 << 30)
    bid, data = canonical_blob({"kind": "ConfigMap", "metadata": {"name": "x"}})
    writer.add(bid, data)
    for key in _keys(s3, bucket):
        s3.delete_object(Bucket=bucket, Key=PREFIX + key)
    s3.delete_bucket(Bucket=bucket)

    with pytest.raises(BucketNotFound, match=bucket) as info:
        writer.finish()

    assert info.value.bucket == bucket and info.value.operation == "put"
    with pytest.raises(WriterStateError):
        writer.write_manifest(_manifest("b1", bid, []))


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


# -- corruption and loss --------------------------------------------------------------------------------------


def _damage(s3: Any, bucket: str, key: str, offset: int) -> None:
    body = bytearray(s3.get_object(Bucket=bucket, Key=PREFIX + key)["Body"].read())
    body[offset] ^= 0x55
    s3.put_object(Bucket=bucket, Key=PREFIX + key, Body=bytes(body))


def _a_data_blob(reader: RepositoryReader, manifest: Manifest) -> TreeEntry:
    return next(e for scope, e in reader.walk(manifest) if scope == "shop")


def test_damaged_frame_is_blob_corrupt_naming_each_of_its_blobs(
    s3: Any, bucket: str, repo: Repository, written: Any
) -> None:
    manifest, _ = written
    reader = RepositoryReader(repo)
    target = _a_data_blob(reader, manifest)
    entry = reader.load_index()[target.blob]
    in_frame = _frames(reader.load_index())[(entry.pack, entry.frame_offset)]
    assert len(in_frame) >= 2
    _damage(s3, bucket, repo.pack_key(entry.pack), entry.frame_offset)  # the frame's zstd magic

    with pytest.raises(BlobCorrupt, match=target.blob) as info:
        RepositoryReader(repo).read_blob(target.blob, where="restore of shop")
    assert info.value.blob_id == target.blob and "restore of shop" in str(info.value)
    assert f"frame at {entry.frame_offset}" in str(info.value)
    results = dict(RepositoryReader(repo).try_read_blobs(in_frame))
    assert {blob: type(result) for blob, result in results.items()} == dict.fromkeys(in_frame, BlobCorrupt)
    assert all(blob in str(result) for blob, result in results.items())

    report = check_repository(RepositoryReader(repo))
    assert not report.ok
    assert sorted((p.kind, p.blob_id) for p in report.problems) == sorted(("blob_corrupt", b) for b in in_frame)
    assert "shop" in next(p.where for p in report.problems if p.blob_id == target.blob)


def test_deleted_pack_is_blob_missing_and_check_names_what_breaks(
    s3: Any, bucket: str, repo: Repository, written: Any
) -> None:
    manifest, _ = written
    reader = RepositoryReader(repo)
    target = _a_data_blob(reader, manifest)
    pack = reader.load_index()[target.blob].pack
    lost = {b for b, e in reader.load_index().items() if e.pack == pack}
    s3.delete_object(Bucket=bucket, Key=PREFIX + repo.pack_key(pack))

    with pytest.raises(BlobMissing, match=pack) as info:
        RepositoryReader(repo).read_blob(target.blob)
    assert info.value.blob_id == target.blob

    report = check_repository(RepositoryReader(repo), read_data=True)
    assert {p.kind for p in report.problems} == {"pack_missing"}
    assert {p.blob_id for p in report.problems} == lost
    assert all(manifest.backup_id in p.where for p in report.problems)


def test_unindexed_blob_is_blob_missing_naming_where(repo: Repository) -> None:
    with pytest.raises(BlobMissing, match="root tree of backup x/y") as info:
        RepositoryReader(repo).read_blob("e" * 64, where="root tree of backup x/y")  # type: ignore[arg-type]
    assert info.value.blob_id == "e" * 64


def test_altered_index_file_is_refused(s3: Any, bucket: str, repo: Repository, written: Any) -> None:
    manifest, _ = written
    _damage(s3, bucket, repo.index_key(manifest.index_files[0]), 10)

    with pytest.raises(RepositoryCorrupt, match="does not hash to its name"):
        RepositoryReader(repo).load_index()
    assert check_repository(RepositoryReader(repo)).problems[0].kind == "index_unreadable"


def test_check_on_a_healthy_repository_reports_nothing_and_progress(repo: Repository, written: Any) -> None:
    calls: list[tuple[int, int]] = []
    reader = RepositoryReader(repo)

    report = check_repository(reader, read_data=True, progress=lambda done, total: calls.append((done, total)))

    n_blobs = len(reader.load_index())
    assert report.ok and report.problems == []
    assert report.manifests_checked == 1
    assert report.blobs_checked == n_blobs
    assert calls[-1] == (n_blobs, n_blobs) and len(calls) == n_blobs
    assert check_repository(RepositoryReader(repo), read_data=False).ok


def test_check_reports_a_blob_no_index_knows(s3: Any, bucket: str, repo: Repository) -> None:
    writer = RepositoryWriter(repo)
    missing_tree = "d" * 64
    root, data = encode_root({"shop": BlobId(missing_tree)})
    writer.add(root, data, BLOB_TREE)
    writer.write_manifest(_manifest("b1", root, writer.finish()))

    report = check_repository(RepositoryReader(repo))

    assert [(p.kind, p.blob_id) for p in report.problems] == [("blob_missing", missing_tree)]
    assert "scope shop" in report.problems[0].where


# -- manifests and names --------------------------------------------------------------------------------------


def test_missing_backup_names_cluster_and_id(repo: Repository) -> None:
    with pytest.raises(BackupNotFound, match="nope") as info:
        RepositoryReader(repo).load_manifest(CLUSTER, "nope")
    assert CLUSTER in str(info.value)


def test_misplaced_manifest_is_corrupt(s3: Any, bucket: str, repo: Repository, written: Any) -> None:
    manifest, _ = written
    body = s3.get_object(Bucket=bucket, Key=PREFIX + repo.manifest_key(CLUSTER, manifest.backup_id))["Body"].read()
    s3.put_object(Bucket=bucket, Key=PREFIX + repo.manifest_key("other", manifest.backup_id), Body=body)

    with pytest.raises(RepositoryCorrupt, match="misplaced"):
        RepositoryReader(repo).load_manifest("other", manifest.backup_id)


@pytest.mark.parametrize("name", ["", "..", ".", "a/b", "x y", "-lead", "a\nb"])
def test_names_that_would_escape_their_key_are_refused(name: str) -> None:
    with pytest.raises(InvalidName):
        Repository.manifest_key(name, "b1")
    with pytest.raises(InvalidName):
        Repository.manifest_key("c", name)


# -- rebuild --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("tail_guess", [64 << 10, 16], ids=["one-read", "header-longer-than-guess"])
def test_rebuilt_index_equals_the_written_one(
    monkeypatch: pytest.MonkeyPatch, repo: Repository, written: Any, tail_guess: int
) -> None:
    monkeypatch.setattr(reader_module, "_TAIL_GUESS", tail_guess)
    reader = RepositoryReader(repo)

    rebuilt = reader.rebuild_index_from_packs()

    assert rebuilt.unreadable == {}
    assert rebuilt.entries == reader.load_index()


def test_rebuild_lists_a_pack_with_a_broken_trailer_as_unreadable(
    s3: Any, bucket: str, repo: Repository, written: Any
) -> None:
    key = _pack_keys(s3, bucket)[0]
    size = s3.head_object(Bucket=bucket, Key=PREFIX + key)["ContentLength"]
    _damage(s3, bucket, key, size - 6)  # inside the magic

    rebuilt = RepositoryReader(repo).rebuild_index_from_packs()

    assert list(rebuilt.unreadable) == [key] and "magic" in rebuilt.unreadable[key]
    assert len(rebuilt.entries) < len(RepositoryReader(repo).load_index())


# -- export ---------------------------------------------------------------------------------------------------


def test_export_writes_kubectl_ready_yaml(tmp_path: Path, repo: Repository, written: Any) -> None:
    manifest, stored = written
    out = tmp_path / "export"

    report = export_backup(RepositoryReader(repo), manifest, out)

    assert report.objects == len(_objects()) == len(report.files)
    assert "shop/configmap/settings-0.yaml" in report.files
    assert "billing/deployment/web.yaml" in report.files
    assert "_cluster/namespace/shop.yaml" in report.files
    assert "_cluster/clusterrole/system_controller_widgets.yaml" in report.files
    by_content = {canonical_blob(obj)[1]: obj for obj in stored.values()}
    for rel in report.files:
        text = (out / rel).read_text()
        doc = yaml.safe_load(text)
        assert list(doc)[:3] == ["apiVersion", "kind", "metadata"]
        assert canonical_blob(doc)[1] in by_content
        assert (out / rel).stat().st_mode & 0o077 == 0
    secret = yaml.safe_load((out / "shop/secret/db-creds.yaml").read_text())
    assert secret["data"] == {"password": "c2VjcmV0LXBhc3N3b3Jk"} and "status" not in secret

    with pytest.raises(ExportError, match="overwrite"):
        export_backup(RepositoryReader(repo), manifest, out)


def test_export_refuses_to_follow_a_link_out_of_the_target(tmp_path: Path, repo: Repository, written: Any) -> None:
    manifest, _ = written
    out, elsewhere = tmp_path / "export", tmp_path / "elsewhere"
    out.mkdir()
    elsewhere.mkdir()
    (out / "shop").symlink_to(elsewhere, target_is_directory=True)

    with pytest.raises(ExportError, match="outside"):
        export_backup(RepositoryReader(repo), manifest, out)

    assert list(elsewhere.iterdir()) == []


@pytest.mark.parametrize(
    ("name", "expected"), [("..", "_.."), (".", "_."), ("a/b", "a_b"), ("sys:ctl", "sys_ctl"), ("ok-1.x", "ok-1.x")]
)
def test_safe_name(name: str, expected: str) -> None:
    assert safe_name(name) == expected


# -- the S3 adapter's error translation -----------------------------------------------------------------------


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

    manifest, stored = _backup(repo, writer)

    reader = RepositoryReader(Repository.open(store))
    assert {e.blob for _, e in reader.walk(manifest)} == set(stored)
    assert check_repository(reader).ok
    with pytest.raises(ObjectExists):
        store.put("config.json", b"{}")
    assert list(store.list("index/")) == [f"index/{manifest.index_files[0]}"]


def test_a_well_formed_blob_under_the_wrong_name_is_caught_by_its_hash() -> None:
    from chalicelib.core.index_format import encode_index
    from chalicelib.core.packs import PackBuilder

    store = MemoryObjectStore()
    repo = Repository.open(store, create=True)
    claimed, _ = canonical_blob({"kind": "Secret", "data": {"password": "b3JpZ2luYWw="}})
    neighbour, neighbour_data = canonical_blob({"kind": "ConfigMap", "data": {"a": "b"}})
    builder = PackBuilder()
    builder.add(claimed, b'{"kind":"Secret","data":{"password":"Zm9yZ2VkIQ=="}}')  # a forgery, decompresses fine
    builder.add(neighbour, neighbour_data)  # same frame, intact
    pack, data, entries = builder.finish()
    assert entries[0].frame_offset == entries[1].frame_offset
    store.put(repo.pack_key(pack), data)
    index, index_data = encode_index({pack: entries})
    store.put(repo.index_key(index), index_data)

    with pytest.raises(BlobCorrupt, match="does not hash to its id"):
        RepositoryReader(repo).read_blob(claimed)
    assert RepositoryReader(repo).read_blob(neighbour) == neighbour_data
    assert [(p.kind, p.blob_id) for p in check_repository(RepositoryReader(repo)).problems] == [
        ("blob_corrupt", claimed)
    ]
