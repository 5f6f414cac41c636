"""A sharded backup's manifest names its cluster (``cluster_uid``), so the one-shot backup after it reuses objects."""

from __future__ import annotations

from typing import Any

from tests.support.sharded import ListQueue, make_job, manifest_of, sharded_backup


def test_an_incremental_one_shot_after_a_sharded_backup_reuses_unchanged_objects(
    repos: Any, kubeconfig_path: Any, app_ns: Any
) -> None:
    _, sharded = repos
    job = make_job(kubeconfig_path, "uid-cluster", app_ns.namespaces, shard=True)
    record, _ = sharded_backup(sharded, job, ListQueue())
    assert record.state == "Completed", record.failure or record.errors
    first = manifest_of(sharded, record)
    assert first.cluster_uid, "the test server has a kube-system namespace: the cluster is known"

    one_shot = make_job(kubeconfig_path, "uid-cluster", app_ns.namespaces, shard=False)
    incremental = sharded.backup_service(queue=ListQueue()).run(one_shot).record
    assert incremental.state == "Completed" and incremental.parent == record.backup_id
    second = manifest_of(sharded, incremental)
    assert second.cluster_uid == first.cluster_uid
    # Nothing changed in between: every object comes from the sharded parent's trees, none takes the full path.
    assert second.stats["objects_reused"] == second.counts["objects"] > 0
    assert second.root_tree == first.root_tree
