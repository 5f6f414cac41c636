"""etcd snapshots follow their backup's retention: garbage collection deletes an artifact whose manifest is gone."""

from __future__ import annotations

from datetime import timedelta

from chalicelib.maintenance.gc import collect_garbage
from chalicelib.repository import MemoryObjectStore, Repository
from chalicelib.snapshots.etcd import artifact_key
from tests.support.builders import backup_reaching
from tests.support.clocks import Clock, utc
from tests.support.objects import configmaps

T0 = utc(2026, 3, 1, 3, 0)
KEPT, EXPIRED, RUNNING = "20260301T030000Z-aaaaaa", "20260301T040000Z-bbbbbb", "20260302T020000Z-cccccc"


def test_artifacts_of_expired_backups_go_and_the_others_stay() -> None:
    clock = Clock(T0)
    repo = Repository.open(MemoryObjectStore(clock=clock), create=True, now=T0)
    store = repo.store
    for backup_id in (KEPT, EXPIRED):
        backup_reaching(repo, "onprem", backup_id, configmaps(backup_id[-6:], 3))
        store.put(artifact_key("onprem", backup_id), b"snapshot")
    store.delete(Repository.manifest_key("onprem", EXPIRED))  # retention deletes the manifest first
    clock.advance(hours=23)
    store.put(artifact_key("onprem", RUNNING), b"snapshot")  # a backup still running: no manifest yet, young

    dry = collect_garbage(repo, now=clock(), dry_run=True, safety_margin=timedelta(hours=12))
    assert dry.artifacts_deleted == (artifact_key("onprem", EXPIRED),) and store.exists(artifact_key("onprem", EXPIRED))

    report = collect_garbage(repo, now=clock(), safety_margin=timedelta(hours=12))
    assert report.artifacts_deleted == (artifact_key("onprem", EXPIRED),)
    assert not store.exists(artifact_key("onprem", EXPIRED))
    assert store.exists(artifact_key("onprem", KEPT)) and store.exists(artifact_key("onprem", RUNNING))
