"""Corruption does not spread through sharded backups: the join re-verifies what the shards deduplicated against."""

from __future__ import annotations

from typing import Any

from chalicelib.repository import RepositoryReader
from tests.support.sharded import ListQueue, make_job, sharded_backup


def _damage_a_reused_object_frame(services: Any, cluster: str, backup_id: str) -> set[str]:
    """Flip the zstd magic of a frame holding an object blob of the backup; the ids of every blob in that frame."""
    repo = services.repository()
    reader = RepositoryReader(repo)
    manifest = reader.load_manifest(cluster, backup_id)
    trees = set(reader.root(manifest).values())
    index = reader.load_index()
    entry = next(e for _, e in reader.walk(manifest) if e.blob not in trees)
    where = index[entry.blob]
    key = repo.pack_key(where.pack)
    body = bytearray(repo.store.get(key))
    body[where.frame_offset] ^= 0x55
    repo.store.put(key, bytes(body), create_only=False)
    return {str(b) for b, e in index.items() if (e.pack, e.frame_offset) == (where.pack, where.frame_offset)}


def test_a_sharded_backup_that_would_reuse_a_damaged_blob_commits_no_manifest(
    repos: Any, kubeconfig_path: Any, app_ns: Any
) -> None:
    _, sharded = repos
    first, _ = sharded_backup(sharded, make_job(kubeconfig_path, "dmg", app_ns.namespaces, shard=True), ListQueue())
    assert first.state == "Completed", first.failure
    frame = _damage_a_reused_object_frame(sharded, "dmg", first.backup_id)

    second, _ = sharded_backup(sharded, make_job(kubeconfig_path, "dmg", app_ns.namespaces, shard=True), ListQueue())

    assert second.parent == first.backup_id
    assert second.state == "Failed", "a backup reaching a damaged blob would be unrestorable"
    failure = second.failure or ""
    assert "damaged" in failure and "nothing was committed" in failure
    assert any(blob in failure for blob in frame), failure
    assert second.manifest_key is None
    assert ("dmg", second.backup_id) not in set(RepositoryReader(sharded.repository()).list_backups())
