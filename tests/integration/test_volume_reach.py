"""Volume snapshots are nodes of the one reachability walk: every caller of ``reachable`` sees the same ones."""

from __future__ import annotations

import dataclasses

from chalicelib.repository import MemoryObjectStore, Repository, RepositoryReader
from chalicelib.repository.reach import VolumeSnapshotRef, reachable
from tests.support.builders import backup_reaching
from tests.support.clocks import Clock, utc
from tests.support.objects import configmaps

T0 = utc(2026, 3, 1, 3, 0)
EBS = "ebs.csi.aws.com"


def _record(pvc: str, state: str, handle: str = "", name: str = "") -> dict[str, str]:
    record = {"type": "csi", "namespace": "shop", "pvc": pvc, "state": state, "driver": EBS}
    if handle:
        record["snapshot_handle"] = handle
    if name:
        record["snapshot_name"], record["content_name"] = name, f"snapcontent-{name}"
    return record


def test_the_walk_names_every_snapshot_a_backup_records_and_nothing_else() -> None:
    repo = Repository.open(MemoryObjectStore(clock=Clock(T0)), create=True, now=T0)
    manifest, _ = backup_reaching(repo, "prod", "20260301T030000Z-aaaaaa", configmaps("shop", 2))
    assert manifest is not None
    first = dataclasses.replace(
        manifest,
        volume_snapshots=[
            _record("data", "ready", "snap-1", "vs-1"),
            _record("logs", "failed", name="vs-2"),  # made, never ready: still the backup's to clean up
            _record("cache", "excluded"),
            _record("tmp", "not-snapshotable"),
        ],
    )
    second = dataclasses.replace(
        manifest, backup_id="20260301T040000Z-bbbbbb", volume_snapshots=[_record("data", "ready", "snap-1", "vs-3")]
    )
    reach = reachable(RepositoryReader(repo), [first, second])
    assert [(v.pvc, v.snapshot_name, v.backup) for v in reach.volume_snapshots] == [
        ("data", "vs-1", "backup prod/20260301T030000Z-aaaaaa"),
        ("logs", "vs-2", "backup prod/20260301T030000Z-aaaaaa"),
        ("data", "vs-3", "backup prod/20260301T040000Z-bbbbbb"),
    ]
    assert reach.snapshot_handles == {(EBS, "snap-1")}
    assert reach.volume_snapshots[0] == VolumeSnapshotRef(
        "csi", EBS, "snap-1", "shop", "data", "vs-1", "snapcontent-vs-1", "backup prod/20260301T030000Z-aaaaaa", "ready"
    )
    assert reachable(RepositoryReader(repo), [manifest]).volume_snapshots == ()
