"""Database dumps in the manifest are artifacts of the one reachability walk: replication, GC and retention see them
as they see etcd.db."""

from __future__ import annotations

import dataclasses
import hashlib
from datetime import timedelta

import pytest

from chalicelib.core.dumps import dumps_from_list
from chalicelib.core.manifest import Manifest
from chalicelib.maintenance.gc import orphan_artifacts
from chalicelib.replication.closure import backup_closure
from chalicelib.replication.events import ObjectKind, classify
from chalicelib.repository import MemoryObjectStore, Repository, RepositoryReader
from chalicelib.repository.reach import Artifact, reachable
from chalicelib.snapshots.dumps import DumpRecord, dump_key
from tests.support.builders import backup_reaching
from tests.support.clocks import Clock, utc
from tests.support.objects import configmaps

T0 = utc(2026, 12, 2, 3, 0)
BACKUP = "20261202T030000Z-aaaaaa"
SPEC = dumps_from_list(
    [
        {
            "name": "orders",
            "engine": "postgres",
            "namespace": "shop",
            "target": "db",
            "databases": ["shop"],
            "credentials": {"secret": "pg"},
        }
    ]
)[0]
DIGEST = hashlib.sha256(b"PGDMP dump").hexdigest()
RECORD = DumpRecord("orders", "shop", "postgres", "dumps/shop/orders.pgdump", "completed", 10, DIGEST, "pg_dump 16")


@pytest.fixture
def store() -> MemoryObjectStore:
    return MemoryObjectStore(clock=Clock(T0))


@pytest.fixture
def manifest(store: MemoryObjectStore) -> Manifest:
    repo = Repository.open(store, create=True, now=T0)
    written, _ = backup_reaching(repo, "prod", BACKUP, configmaps("app", 2))
    assert written is not None
    return dataclasses.replace(written, dumps=[RECORD.to_manifest(), DumpRecord.failed(SPEC, "boom").to_manifest()])


def test_a_recorded_dump_is_an_artifact_with_its_checksum(store: MemoryObjectStore, manifest: Manifest) -> None:
    directory = Repository.manifest_key("prod", BACKUP).rsplit("/", 1)[0]
    key = dump_key("prod", BACKUP, SPEC)
    assert key == f"{directory}/dumps/shop/orders.pgdump"
    listing = [
        f"{directory}/manifest.json",
        f"{directory}/etcd.db",
        key,
        f"{directory}/dumps/stray",
        f"{directory}/dumps/a/b/c",
        "clusters/prod/backups/20261202T040000Z-bbbbbb/dumps/shop/orders.pgdump",
    ]
    repo = Repository.open(store, now=T0)

    reach = reachable(RepositoryReader(repo), [manifest], listing=listing)

    assert reach.artifacts == (
        Artifact(f"{directory}/dumps/shop/orders.pgdump", DIGEST),
        Artifact(f"{directory}/etcd.db", None),
    )
    closure = backup_closure(RepositoryReader(repo), manifest, listing)
    assert (key, DIGEST) in closure.artifacts


@pytest.mark.parametrize(
    ("key", "kind"),
    [
        ("clusters/prod/backups/b1/dumps/shop/orders.pgdump", ObjectKind.ARTIFACT),
        ("clusters/prod/backups/b1/dumps/shop", ObjectKind.OTHER),  # neither beside the manifest nor a dump
        ("clusters/prod/backups/b1/dumps/x/y/z", ObjectKind.OTHER),
        ("clusters/prod/backups/b1/other/shop/orders.pgdump", ObjectKind.OTHER),
        ("clusters/prod/backups/b1/dumps//orders.pgdump", ObjectKind.OTHER),
    ],
)
def test_replication_classifies_a_dump_as_an_artifact_of_its_backup(key: str, kind: ObjectKind) -> None:
    obj = classify(key)
    assert obj.kind == kind
    if kind == ObjectKind.ARTIFACT:
        assert (obj.cluster, obj.backup_id) == ("prod", "b1")


def test_gc_removes_the_dumps_of_deleted_backups_only(store: MemoryObjectStore, manifest: Manifest) -> None:
    kept = dump_key("prod", BACKUP, SPEC)
    gone = dump_key("prod", "20261201T030000Z-zzzzzz", SPEC)
    store.put(kept, b"PGDMP dump")
    store.put(gone, b"PGDMP old")
    now = T0 + timedelta(days=2)

    orphans = orphan_artifacts(store, {("prod", BACKUP)}, now=now, safety_margin=timedelta(hours=1))

    assert orphans == [gone]
    assert orphan_artifacts(store, {("prod", BACKUP)}, now=T0, safety_margin=timedelta(hours=1)) == []


def test_the_manifest_keeps_its_bytes_without_dumps_and_records_them_when_there_are(manifest: Manifest) -> None:
    plain = dataclasses.replace(manifest, dumps=[])
    assert b'"dumps"' not in plain.to_json()
    assert Manifest.from_json(plain.to_json()) == plain
    doc = Manifest.from_json(manifest.to_json())
    assert doc.dumps == [
        {
            "name": "orders",
            "namespace": "shop",
            "engine": "postgres",
            "key": "dumps/shop/orders.pgdump",
            "state": "completed",
            "size": 10,
            "sha256": DIGEST,
            "version": "pg_dump 16",
            "duration_s": 0,
            "parts": 0,
        },
        {
            "name": "orders",
            "namespace": "shop",
            "engine": "postgres",
            "key": "dumps/shop/orders.pgdump",
            "state": "failed",
            "error": "boom",
        },
    ]
