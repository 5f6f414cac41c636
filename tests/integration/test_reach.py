"""One reachability walk: GC's live set, ``repo check``, replication's closures and the commit check agree."""

from __future__ import annotations

import dataclasses
import hashlib

import pytest

from chalicelib.backup.commit import missing_from_repository
from chalicelib.core.ids import BlobId
from chalicelib.core.manifest import Manifest
from chalicelib.core.trees import encode_root
from chalicelib.maintenance.errors import CollectionAborted
from chalicelib.maintenance.gc import collect_garbage
from chalicelib.replication.closure import backup_closure
from chalicelib.replication.errors import ClosureIncomplete
from chalicelib.repository import MemoryObjectStore, Repository, RepositoryReader, RepositoryWriter, check_repository
from chalicelib.repository.errors import RepositoryError
from chalicelib.repository.reach import SCOPE_TREE, Artifact, list_packs, reachable
from tests.support.builders import backup_reaching, blob_of
from tests.support.clocks import Clock, utc
from tests.support.objects import configmaps

T0 = utc(2026, 3, 1, 3, 0)
BACKUPS = [
    ("prod", "20260301T030000Z-aaaaaa", configmaps("shared", 4) + configmaps("only-a", 3) + configmaps("a", 2, "web")),
    ("prod", "20260301T040000Z-bbbbbb", configmaps("shared", 4) + configmaps("only-b", 2)),
    ("staging", "20260301T050000Z-cccccc", configmaps("shared", 4) + configmaps("s", 3, "web")),
]


@pytest.fixture
def clock() -> Clock:
    return Clock(T0)


@pytest.fixture
def repo(clock: Clock) -> Repository:
    return Repository.open(MemoryObjectStore(clock=clock), create=True, now=T0)


@pytest.fixture
def written(repo: Repository) -> dict[tuple[str, str], tuple[Manifest, set[BlobId]]]:
    """Three backups sharing objects, plus a crashed one that nothing reaches; every new blob in a pack of its own."""
    out = {}
    for cluster, backup_id, items in BACKUPS:
        manifest, reached = backup_reaching(repo, cluster, backup_id, items)
        assert manifest is not None
        out[(cluster, backup_id)] = (manifest, reached)
    backup_reaching(repo, "prod", "20260301T060000Z-dddddd", configmaps("crashed", 3), commit=False)
    return out


def test_the_gc_live_set_is_the_union_of_the_backups_closures(
    repo: Repository, clock: Clock, written: dict[tuple[str, str], tuple[Manifest, set[BlobId]]]
) -> None:
    reader = RepositoryReader(repo)
    closures = [backup_closure(reader, manifest) for manifest, _ in written.values()]
    union = set().union(*(reached for _, reached in written.values()))
    closure_packs = {pack for closure in closures for pack in closure.packs}

    clock.advance(hours=30)
    report = collect_garbage(repo, now=clock(), dry_run=True)

    assert set(reachable(reader, [m for m, _ in written.values()]).blobs) == union
    assert report.blobs_live == len(union)
    assert report.packs_live == len(closure_packs)
    assert {repo.pack_key(p) for p in list_packs(repo.store) - closure_packs} == set(report.packs_deleted)
    assert [c.blobs for c in closures] == [len(reached) for _, reached in written.values()]


def test_check_replication_and_the_commit_check_see_the_same_set(
    repo: Repository, written: dict[tuple[str, str], tuple[Manifest, set[BlobId]]]
) -> None:
    reader = RepositoryReader(repo)
    index = reader.load_index()
    for manifest, reached in written.values():
        reach = reachable(reader, [manifest], stored_packs=list_packs(repo.store))
        assert set(reach.blobs) == reached
        assert reach.trees == {manifest.root_tree, *reach.roots[manifest.root_tree].values()}
        assert reach.packs == set(backup_closure(reader, manifest).packs) == {index[b].pack for b in reached}
        assert missing_from_repository(repo, manifest) == ""
        walked = {entry.blob for _, entry in reader.walk(manifest)}
        assert walked == reached - reach.trees
    union = set().union(*(reached for _, reached in written.values()))
    report = check_repository(RepositoryReader(repo), read_data=False)
    assert report.ok and report.blobs_checked == len(union)


def test_a_lost_pack_is_seen_by_check_and_the_commit_check_alike(
    repo: Repository, written: dict[tuple[str, str], tuple[Manifest, set[BlobId]]]
) -> None:
    manifest, reached = written[("prod", "20260301T040000Z-bbbbbb")]
    reader = RepositoryReader(repo)
    index = reader.load_index()
    only_b = blob_of(configmaps("only-b", 1)[0])
    lost = index[only_b].pack
    repo.store.delete(repo.pack_key(lost))

    reach = reachable(RepositoryReader(repo), [manifest], stored_packs=list_packs(repo.store))
    report = check_repository(RepositoryReader(repo), read_data=False)

    hit = {b for b in reached if index[b].pack == lost}
    assert hit == {only_b}
    assert set(reach.missing_packs) == hit
    assert {p.blob_id for p in report.problems if p.kind == "pack_missing"} == hit
    assert all(manifest.backup_id in p.where for p in report.problems)
    assert f"packs missing: {lost}" in missing_from_repository(repo, manifest)


def test_an_unreadable_tree_is_reported_once_and_each_caller_applies_its_policy(repo: Repository, clock: Clock) -> None:
    manifest, _ = backup_reaching(repo, "prod", "20260301T030000Z-aaaaaa", configmaps("a", 2))
    assert manifest is not None
    writer = RepositoryWriter(repo)
    missing_tree = BlobId("d" * 64)
    root, data = encode_root({"shop": missing_tree})
    writer.add(root, data, "tree")
    index_files = writer.finish()
    broken = dataclasses.replace(manifest, backup_id="20260301T040000Z-broken", root_tree=root, index_files=index_files)
    writer.write_manifest(broken)
    reader = RepositoryReader(repo)

    reach = reachable(reader, [manifest, broken])

    (problem,) = reach.unreadable
    assert (problem.blob, problem.what, problem.malformed) == (missing_tree, SCOPE_TREE, False)
    assert problem.where == f"tree of backup prod/{broken.backup_id}, scope shop"
    assert reach.where(missing_tree) == problem.where and missing_tree in reach.unindexed
    clock.advance(hours=30)
    with pytest.raises(CollectionAborted, match="nothing deleted"):
        collect_garbage(repo, now=clock())
    assert [(p.kind, p.blob_id) for p in check_repository(reader).problems] == [("blob_missing", missing_tree)]
    with pytest.raises(ClosureIncomplete, match="cannot be read"):
        backup_closure(reader, broken)
    assert missing_from_repository(repo, broken).startswith("a tree cannot be read")
    with pytest.raises(RepositoryError):
        list(reader.walk(broken))
    assert backup_closure(reader, manifest).blobs == len(reachable(reader, [manifest]).blobs)


def test_artifacts_join_the_walk_with_their_recorded_checksums(
    repo: Repository, written: dict[tuple[str, str], tuple[Manifest, set[BlobId]]]
) -> None:
    manifest, _ = written[("prod", "20260301T030000Z-aaaaaa")]
    digest = hashlib.sha256(b"etcd").hexdigest()
    manifest = dataclasses.replace(manifest, etcd_snapshot={"key": "etcd.db", "sha256": f"sha256:{digest}"})
    directory = Repository.manifest_key(manifest.cluster, manifest.backup_id).rsplit("/", 1)[0]
    listing = [f"{directory}/manifest.json", f"{directory}/etcd.db", f"{directory}/dumps/x", "clusters/other/etcd.db"]

    reach = reachable(RepositoryReader(repo), [manifest], listing=listing)

    assert reach.artifacts == (Artifact(f"{directory}/etcd.db", digest),)
    assert backup_closure(RepositoryReader(repo), manifest, listing).artifacts == ((f"{directory}/etcd.db", digest),)


def test_a_closure_of_a_backup_newer_than_the_readers_index_refreshes_it(repo: Repository) -> None:
    reader = RepositoryReader(repo)
    reader.load_index()
    manifest, reached = backup_reaching(repo, "prod", "20260301T030000Z-aaaaaa", configmaps("late", 2))
    assert manifest is not None
    assert backup_closure(reader, manifest).blobs == len(reached)
