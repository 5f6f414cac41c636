"""Garbage collection in immutability mode: a versioned bucket with Object Lock default retention, in moto.

moto stamps the default retention from its own clock and checks it on every versioned delete, so "time passing" is
moto's clock moved forward (``later``) together with the ``now`` garbage collection is given.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import boto3
import pytest
from moto import mock_aws

from chalicelib.maintenance.gc import collect_garbage
from chalicelib.maintenance.immutability import default_retention, sweep
from chalicelib.repository import Repository, RepositoryReader, check_repository
from chalicelib.repository.repo import PACKS_DIR
from chalicelib.repository.store import S3ObjectStore
from tests.support.builders import backup_reaching
from tests.support.objects import configmaps

BUCKET = "lifeboat-test-locked"
A = "20260301T030000Z-aaaaaa"
B = "20260301T040000Z-bbbbbb"
NO_MARGIN = timedelta(0)


def locked_store(mode: str | None, days: int = 1) -> S3ObjectStore:
    client = boto3.client("s3", region_name="us-east-1")
    client.create_bucket(Bucket=BUCKET, ObjectLockEnabledForBucket=True)  # turns versioning on as well
    if mode is not None:
        client.put_object_lock_configuration(
            Bucket=BUCKET,
            ObjectLockConfiguration={
                "ObjectLockEnabled": "Enabled",
                "Rule": {"DefaultRetention": {"Mode": mode, "Days": days}},
            },
        )
    return S3ObjectStore(client, BUCKET)


@pytest.fixture
def aws() -> Iterator[None]:
    with mock_aws():
        yield


@pytest.fixture
def later(monkeypatch: pytest.MonkeyPatch) -> Callable[[timedelta], datetime]:
    """Move moto's clock forward by ``by``; the aware time garbage collection should be given then."""
    import moto.s3.models as s3_models

    real = s3_models.utcnow  # type: ignore[attr-defined]

    def advance(by: timedelta) -> datetime:
        monkeypatch.setattr(s3_models, "utcnow", lambda: real() + by)
        return datetime.now(UTC) + by

    return advance


def versions(store: S3ObjectStore, key: str) -> list[dict[str, Any]]:
    page = store._s3.list_object_versions(Bucket=store.bucket, Prefix=store.prefix + key)
    found = page.get("Versions", []) + page.get("DeleteMarkers", [])
    return [v for v in found if v["Key"] == store.prefix + key]


def dead_and_live(repo: Repository) -> tuple[set[str], set[str]]:
    """Backups A and B share objects; A's manifest is then deleted the way retention does it (a plain delete, which
    on a versioned bucket leaves a delete marker over the manifest's version)."""
    shared = configmaps("shared", 3)
    _, reach_a = backup_reaching(repo, "prod", A, shared + configmaps("only-a", 3))
    _, reach_b = backup_reaching(repo, "prod", B, shared + configmaps("only-b", 2))
    index = RepositoryReader(repo).load_index()
    dead = {repo.pack_key(index[b].pack) for b in reach_a - reach_b}
    live = {repo.pack_key(index[b].pack) for b in reach_b}
    repo.store.delete(Repository.manifest_key("prod", A))
    return dead, live


def test_retained_garbage_is_left_and_reported_then_deleted_with_every_version_once_expired(
    aws: None, later: Callable[[timedelta], datetime]
) -> None:
    store = locked_store("COMPLIANCE", days=1)
    repo = Repository.open(store, create=True)
    dead, live = dead_and_live(repo)
    assert dead and live and not dead & live
    # A pack deleted earlier and written again: a version, a delete marker and the current version.
    twice = sorted(dead)[0]
    data = store.get(twice)
    store.delete(twice)
    store.put(twice, data)
    assert len(versions(store, twice)) == 3

    first = collect_garbage(repo, now=datetime.now(UTC), safety_margin=NO_MARGIN)

    # A's manifest is behind a delete marker: gone for the walk, though its version is still stored.
    assert first.manifests == 1 and len(versions(store, Repository.manifest_key("prod", A))) == 2
    assert not first.packs_deleted and not first.skipped and first.versions_deleted == 0
    retained = dict(first.retained)
    assert dead <= set(retained), "unreachable but retained: left for a later run"
    assert all(note.startswith("retained until ") for note in retained.values())
    until = datetime.fromisoformat(retained[twice].removeprefix("retained until "))
    assert timedelta(hours=23) < until - datetime.now(UTC) <= timedelta(days=1)
    assert dead | live <= set(store.list(PACKS_DIR))
    assert check_repository(RepositoryReader(repo), read_data=True).ok

    second = collect_garbage(repo, now=later(timedelta(days=2)), safety_margin=NO_MARGIN)

    assert set(second.packs_deleted) == dead and not second.skipped
    assert not {key for key, _ in second.retained} & dead
    assert all(versions(store, key) == [] for key in dead), "every version and delete marker is gone"
    assert second.versions_deleted >= len(dead) + 2  # the twice-written pack had three
    assert set(store.list(PACKS_DIR)) == live
    assert second.bytes_deleted > 0
    assert check_repository(RepositoryReader(repo), read_data=True).ok


def test_a_retention_extended_past_the_default_is_read_from_the_version_and_reported(
    aws: None, later: Callable[[timedelta], datetime]
) -> None:
    store = locked_store("COMPLIANCE", days=1)
    repo = Repository.open(store, create=True)
    dead, _ = dead_and_live(repo)
    extended = sorted(dead)[0]
    until = (datetime.now(UTC) + timedelta(days=10)).replace(microsecond=0)
    store._s3.put_object_retention(
        Bucket=BUCKET, Key=store.prefix + extended, Retention={"Mode": "COMPLIANCE", "RetainUntilDate": until}
    )

    report = collect_garbage(repo, now=later(timedelta(days=2)), safety_margin=NO_MARGIN)

    assert set(report.packs_deleted) == dead - {extended} and not report.skipped
    assert dict(report.retained)[extended] == f"retained until {until.isoformat()}"
    assert extended in set(store.list(PACKS_DIR))


def test_governance_retention_is_never_bypassed(aws: None) -> None:
    store = locked_store("GOVERNANCE", days=1)
    version = datetime.now(UTC)
    store.put("packs/ab/" + "ab" * 32, b"pack")
    key = "packs/ab/" + "ab" * 32

    result = sweep(store, [key], now=version)

    assert key in result.retained and not result.deleted
    [only] = versions(store, key)
    assert only["IsLatest"], "no delete marker was written over a retained object"


def test_without_default_retention_a_versioned_bucket_keeps_a_noncurrent_version_for_the_lifecycle_rule(
    aws: None,
) -> None:
    store = locked_store(None)
    assert default_retention(store) is None
    repo = Repository.open(store, create=True)
    dead, live = dead_and_live(repo)

    report = collect_garbage(repo, now=datetime.now(UTC), safety_margin=NO_MARGIN)

    assert set(report.packs_deleted) == dead and not report.retained and report.versions_deleted == 0
    assert set(store.list(PACKS_DIR)) == live
    key = sorted(dead)[0]
    kinds = sorted("marker" if "Size" not in v else "version" for v in versions(store, key))
    assert kinds == ["marker", "version"], "the undo window: S3's lifecycle rule expires the noncurrent version"


def test_default_retention_is_read_once_from_the_bucket(aws: None) -> None:
    store = locked_store("COMPLIANCE", days=7)
    found = default_retention(store)
    assert found is not None and found.mode == "COMPLIANCE" and found.period == timedelta(days=7)


def test_replica_in_compliance_mode_copies_are_locked_and_its_collection_retains_garbage(
    aws: None, later: Callable[[timedelta], datetime]
) -> None:
    from chalicelib.replication.storage import ReplicaBuckets

    primary = locked_store("GOVERNANCE", days=1)
    repo = Repository.open(primary, create=True)
    shared = configmaps("shared", 2)
    _, reach_a = backup_reaching(repo, "prod", A, shared + configmaps("only-a", 2))
    _, reach_b = backup_reaching(repo, "prod", B, shared)
    index = RepositoryReader(repo).load_index()
    dead = {repo.pack_key(index[b].pack) for b in reach_a - reach_b}
    client = primary._s3
    client.create_bucket(Bucket="lifeboat-test-replica", ObjectLockEnabledForBucket=True)
    client.put_object_lock_configuration(
        Bucket="lifeboat-test-replica",
        ObjectLockConfiguration={
            "ObjectLockEnabled": "Enabled",
            "Rule": {"DefaultRetention": {"Mode": "COMPLIANCE", "Days": 1}},
        },
    )
    buckets = ReplicaBuckets(client, BUCKET, client, "lifeboat-test-replica")
    replica = S3ObjectStore(client, "lifeboat-test-replica")
    # Copied as the replicator's verified copies would be. moto refuses a CopyObject into a bucket with a default
    # retention unless it carries Content-MD5 (it applies PutObject's rule), so the bytes are put instead.
    for key in primary.list():
        replica.put(key, primary.get(key))
    copied = replica._s3.head_object(Bucket="lifeboat-test-replica", Key=replica.prefix + "config.json")
    assert copied["ObjectLockMode"] == "COMPLIANCE", "the replica's default retention stamps every copy"

    # The replicator removes a copy that failed verification with a plain delete: allowed, a delete marker.
    buckets.replica_delete("config.json")
    assert buckets.replica_head("config.json") is None
    assert len(versions(replica, "config.json")) == 2, "the locked version stays under the marker"
    replica.put("config.json", primary.get("config.json"))

    replica_repo = Repository.open(replica)
    replica.delete(Repository.manifest_key("prod", A))
    report = collect_garbage(replica_repo, now=datetime.now(UTC), safety_margin=NO_MARGIN)
    assert dead <= {key for key, _ in report.retained} and not report.packs_deleted and not report.skipped
    assert check_repository(RepositoryReader(replica_repo), read_data=True).ok

    expired = collect_garbage(replica_repo, now=later(timedelta(days=2)), safety_margin=NO_MARGIN)
    assert set(expired.packs_deleted) == dead and not expired.retained and not expired.skipped
    assert all(versions(replica, key) == [] for key in expired.packs_deleted)
    assert check_repository(RepositoryReader(replica_repo), read_data=True).ok


def test_a_dry_run_says_what_is_retained_and_deletes_nothing(aws: None, later: Callable[[timedelta], datetime]) -> None:
    store = locked_store("COMPLIANCE", days=1)
    repo = Repository.open(store, create=True)
    dead, live = dead_and_live(repo)

    now = collect_garbage(repo, now=datetime.now(UTC), safety_margin=NO_MARGIN, dry_run=True)
    assert not now.packs_deleted and dead == {key for key, _ in now.retained}

    expired = collect_garbage(repo, now=later(timedelta(days=2)), safety_margin=NO_MARGIN, dry_run=True)
    assert set(expired.packs_deleted) == dead and not expired.retained
    assert set(store.list(PACKS_DIR)) == dead | live and expired.versions_deleted == 0
