"""Garbage collection: keeps everything any manifest reaches, deletes only old unreachable packs, survives crashes."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest

from chalicelib.core.index_format import decode_index
from chalicelib.maintenance.errors import CollectionAborted, LeaseLost
from chalicelib.maintenance.gc import collect_garbage
from chalicelib.repository import MemoryObjectStore, Repository, RepositoryReader, check_repository
from chalicelib.repository.errors import AccessDenied, StorageError
from chalicelib.repository.repo import INDEX_DIR, PACKS_DIR
from tests.support.builders import backup_reaching
from tests.support.clocks import Clock, utc
from tests.support.objects import configmaps

T0 = utc(2026, 3, 1, 3, 0)
DAY = timedelta(hours=24)


@pytest.fixture
def clock() -> Clock:
    return Clock(T0)


@pytest.fixture
def repo(clock: Clock) -> Repository:
    return Repository.open(MemoryObjectStore(clock=clock), create=True, now=T0)


def packs(repo: Repository) -> set[str]:
    return set(repo.store.list(PACKS_DIR))


def index_files(repo: Repository) -> set[str]:
    return set(repo.store.list(INDEX_DIR))


def pack_of(repo: Repository, blobs: set[Any]) -> set[str]:
    index = RepositoryReader(repo).load_index()
    return {repo.pack_key(index[b].pack) for b in blobs}


def readable(repo: Repository, cluster: str, backup_id: str) -> int:
    reader = RepositoryReader(repo)
    manifest = reader.load_manifest(cluster, backup_id)
    entries = list(reader.walk(manifest))
    assert len(dict(reader.read_blobs(e.blob for _, e in entries))) == len({e.blob for _, e in entries})
    return len(entries)


def test_keeps_everything_reachable_and_deletes_only_old_unreachable_packs(repo: Repository, clock: Clock) -> None:
    shared = configmaps("shared", 5)
    _, reach_a = backup_reaching(repo, "prod", "20260301T030000Z-aaaaaa", shared + configmaps("only-a", 4))
    _, reach_b = backup_reaching(repo, "prod", "20260301T040000Z-bbbbbb", shared + configmaps("only-b", 3))
    _, crashed = backup_reaching(repo, "prod", "20260301T050000Z-cccccc", configmaps("crashed", 2), commit=False)
    clock.advance(hours=23)
    _, running = backup_reaching(repo, "prod", "20260302T020000Z-dddddd", configmaps("running", 2), commit=False)
    # Retention dropped backup A: its manifest is gone.
    repo.store.delete(Repository.manifest_key("prod", "20260301T030000Z-aaaaaa"))
    only_a = reach_a - reach_b
    dead = pack_of(repo, only_a) | pack_of(repo, crashed - reach_b)
    young = pack_of(repo, running)
    before = packs(repo)
    old_index = index_files(repo)
    assert len(old_index) == 4

    clock.advance(hours=1, minutes=30)  # A, B and the crashed backup are now older than the 24 h margin
    report = collect_garbage(repo, now=clock())

    assert set(report.packs_deleted) == dead
    assert packs(repo) == before - dead
    assert young <= packs(repo), "a running backup's packs are inside the safety margin"
    assert report.packs_young == len(young) and report.packs_live == len(pack_of(repo, reach_b))
    assert report.blobs_live == len(reach_b) and report.manifests == 1
    assert index_files(repo) == {INDEX_DIR + str(report.index_written)}
    consolidated = decode_index(repo.store.get(INDEX_DIR + str(report.index_written)))
    assert {INDEX_DIR + s for s in consolidated.supersedes} >= old_index
    assert readable(repo, "prod", "20260301T040000Z-bbbbbb") == len(shared) + 3
    check = check_repository(RepositoryReader(repo), read_data=True)
    assert check.ok, check.problems
    # The running backup's blobs are still indexed: when it commits, its manifest is complete.
    assert running <= RepositoryReader(repo).known_blob_ids()


def test_a_second_collection_finds_nothing_to_do(repo: Repository, clock: Clock) -> None:
    backup_reaching(repo, "prod", "20260301T030000Z-aaaaaa", configmaps("a", 3))
    backup_reaching(repo, "prod", "20260301T040000Z-bbbbbb", configmaps("b", 3))
    clock.advance(hours=48)
    first = collect_garbage(repo, now=clock())
    assert first.index_written is not None and not first.packs_deleted
    second = collect_garbage(repo, now=clock())
    assert second.index_written is None and not second.packs_deleted and not second.index_files_deleted
    assert check_repository(RepositoryReader(repo)).ok


def test_considers_the_manifests_of_every_cluster(repo: Repository, clock: Clock) -> None:
    common = configmaps("common", 6, namespace="kube-system")
    # Cluster "eu" stored the common blobs first; "us" deduplicated against them and stored none of its own.
    _, reach_eu = backup_reaching(repo, "eu", "20260301T030000Z-eueueu", common + configmaps("eu", 2))
    _, reach_us = backup_reaching(repo, "us", "20260301T030000Z-ususus", common)
    repo.store.delete(Repository.manifest_key("eu", "20260301T030000Z-eueueu"))
    only_eu = pack_of(repo, reach_eu - reach_us)
    assert len(only_eu) == 2 + 2  # two objects, their scope tree and the root (the kube-system tree is shared)
    clock.advance(hours=30)

    report = collect_garbage(repo, now=clock())

    assert set(report.packs_deleted) == only_eu
    assert readable(repo, "us", "20260301T030000Z-ususus") == len(common)
    assert check_repository(RepositoryReader(repo), read_data=True).ok


def test_dry_run_changes_nothing(repo: Repository, clock: Clock) -> None:
    backup_reaching(repo, "prod", "20260301T030000Z-aaaaaa", configmaps("a", 3))
    snapshot = dict(repo.store.objects)  # type: ignore[attr-defined]
    clock.advance(hours=30)
    report = collect_garbage(
        repo, now=clock(), dry_run=True, exclude_manifests={("prod", "20260301T030000Z-aaaaaa")}
    )
    assert len(report.packs_deleted) == 5  # 3 objects, 1 scope tree, 1 root: all dead once the manifest goes
    assert report.index_written is None
    assert repo.store.objects == snapshot  # type: ignore[attr-defined]


class CrashingStore(MemoryObjectStore):
    """Fails the n-th delete, or the consolidated index put, like a Lambda killed mid-collection."""

    def __init__(self, inner: MemoryObjectStore, *, fail_delete_at: int | None = None, fail_put: bool = False):
        super().__init__()
        self.objects, self.modified, self._clock = inner.objects, inner.modified, inner._clock
        self._deletes = 0
        self._fail_delete_at = fail_delete_at
        self._fail_put = fail_put

    def put(self, key: str, data: bytes, *, create_only: bool = True) -> None:
        if self._fail_put and key.startswith(INDEX_DIR):
            raise StorageError("crash before the consolidated index", operation="put", key=key)
        super().put(key, data, create_only=create_only)

    def delete(self, key: str) -> None:
        self._deletes += 1
        if self._fail_delete_at is not None and self._deletes >= self._fail_delete_at:
            raise StorageError("crash mid-sweep", operation="delete", key=key)
        super().delete(key)


@pytest.mark.parametrize(
    "crash",
    [
        {"fail_put": True},  # before anything is deleted
        {"fail_delete_at": 1},  # index written, no pack deleted
        {"fail_delete_at": 3},  # some packs deleted
        {"fail_delete_at": 6},  # all 4 dead packs deleted, 1 of 3 index files not
    ],
    ids=["before-index", "after-index", "mid-packs", "mid-index-files"],
)
def test_a_crash_at_any_step_leaves_the_repository_valid(
    repo: Repository, clock: Clock, crash: dict[str, Any]
) -> None:
    backup_reaching(repo, "prod", "20260301T030000Z-aaaaaa", configmaps("old", 3))
    backup_reaching(repo, "prod", "20260301T040000Z-bbbbbb", configmaps("kept", 3) + configmaps("old", 1))
    backup_reaching(repo, "prod", "20260301T050000Z-cccccc", configmaps("kept", 3))
    repo.store.delete(Repository.manifest_key("prod", "20260301T030000Z-aaaaaa"))
    clock.advance(hours=30)
    store = repo.store
    crashing = Repository(CrashingStore(store, **crash), repo.config)  # type: ignore[arg-type]

    with pytest.raises(StorageError):
        collect_garbage(crashing, now=clock(), threads=1)

    after_crash = check_repository(RepositoryReader(repo), read_data=True)
    assert after_crash.ok, after_crash.problems
    assert after_crash.manifests_checked == 2
    # The next run finishes the job.
    report = collect_garbage(repo, now=clock())
    assert len(index_files(repo)) == 1
    assert not any(k for k in report.packs_deleted if k in packs(repo))
    final = check_repository(RepositoryReader(repo), read_data=True)
    assert final.ok, final.problems
    assert readable(repo, "prod", "20260301T040000Z-bbbbbb") == 4


def test_an_unreadable_manifest_stops_the_collection_before_any_delete(repo: Repository, clock: Clock) -> None:
    backup_reaching(repo, "prod", "20260301T030000Z-aaaaaa", configmaps("a", 3))
    backup_reaching(repo, "prod", "20260301T040000Z-bbbbbb", configmaps("b", 3), commit=False)
    repo.store.put(Repository.manifest_key("prod", "20260301T050000Z-broken"), b"{not json", create_only=True)
    clock.advance(hours=30)
    before = dict(repo.store.objects)  # type: ignore[attr-defined]
    with pytest.raises(CollectionAborted, match="prod/20260301T050000Z-broken"):
        collect_garbage(repo, now=clock())
    assert repo.store.objects == before  # type: ignore[attr-defined]


def test_a_missing_tree_stops_the_collection(repo: Repository, clock: Clock) -> None:
    manifest, _ = backup_reaching(repo, "prod", "20260301T030000Z-aaaaaa", configmaps("a", 3))
    assert manifest is not None
    index = RepositoryReader(repo).load_index()
    repo.store.delete(repo.pack_key(index[manifest.root_tree].pack))
    clock.advance(hours=30)
    with pytest.raises(CollectionAborted, match="root tree"):
        collect_garbage(repo, now=clock())


def test_a_lost_lease_stops_before_deleting(repo: Repository, clock: Clock) -> None:
    backup_reaching(repo, "prod", "20260301T030000Z-aaaaaa", configmaps("a", 3))
    repo.store.delete(Repository.manifest_key("prod", "20260301T030000Z-aaaaaa"))
    clock.advance(hours=30)
    before = packs(repo)

    def lost() -> None:
        raise LeaseLost("exclusive lease expired")

    with pytest.raises(LeaseLost):
        collect_garbage(repo, now=clock(), check_lease=lost)
    assert packs(repo) == before


def test_locked_objects_are_skipped_and_reported(repo: Repository, clock: Clock) -> None:
    backup_reaching(repo, "prod", "20260301T030000Z-aaaaaa", configmaps("a", 2))
    repo.store.delete(Repository.manifest_key("prod", "20260301T030000Z-aaaaaa"))
    clock.advance(hours=30)

    class LockedStore(CrashingStore):
        def delete(self, key: str) -> None:
            if key.startswith(PACKS_DIR):
                raise AccessDenied("object is locked", operation="delete", key=key)
            super().delete(key)

    locked = Repository(LockedStore(repo.store), repo.config)  # type: ignore[arg-type]
    report = collect_garbage(locked, now=clock())
    assert len(report.skipped) == 4 and not report.packs_deleted
    assert check_repository(RepositoryReader(repo), read_data=True).ok
