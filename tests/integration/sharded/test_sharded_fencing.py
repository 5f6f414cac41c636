"""Takeover fencing of sharded backups: a stalled coordinator or join that another took over never writes."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta
from typing import Any

from chalicelib.backup.sharded import join as join_module
from chalicelib.backup.worker import handle_message
from chalicelib.catalog.shards import ShardCatalog
from chalicelib.core.jobs import CommitMessage
from chalicelib.core.shards import ShardState
from tests.support.sharded import ListQueue, drain, make_job, manifest_of, shard_records

STALLED = "stalled-worker"


def _run_stalled(target: Any, results: list[Any]) -> threading.Thread:
    thread = threading.Thread(target=lambda: results.append(target()), name=STALLED)
    thread.start()
    return thread


def test_a_stalled_coordinator_that_wakes_after_a_takeover_leaves_the_completed_backup_alone(
    repos: Any, kubeconfig_path: Any, app_ns: Any, monkeypatch: Any
) -> None:
    _, sharded = repos
    stalled, wake = threading.Event(), threading.Event()
    real_create_plan = ShardCatalog.create_plan

    def create_plan(self: Any, *args: Any, **kwargs: Any) -> Any:
        created = real_create_plan(self, *args, **kwargs)
        if threading.current_thread().name == STALLED:
            # Coordinator A stores its plan, then stalls past the heartbeat limit before storing the shards.
            stalled.set()
            assert wake.wait(60)
        return created

    monkeypatch.setattr(ShardCatalog, "create_plan", create_plan)
    job = make_job(kubeconfig_path, "sharded", app_ns.namespaces, shard=True)
    queue_a, queue_b = ListQueue(), ListQueue()
    service_a = sharded.backup_service(queue=queue_a)
    outcome_a: list[Any] = []
    thread_a = _run_stalled(lambda: handle_message(service_a, job.to_dict()), outcome_a)
    assert stalled.wait(60)

    # The job is delivered again; A's heartbeat is stale by then, so B takes the backup over and finishes it.
    later = datetime.now(UTC) + timedelta(minutes=10)
    service_b = sharded.backup_service(queue=queue_b, clock=lambda: later)
    taken = handle_message(service_b, job.to_dict())
    assert taken["status"] == "Running"
    drain(service_b, queue_b)
    committed = sharded.catalog().get("sharded", taken["backup_id"])
    assert committed.state == "Completed" and committed.manifest_key

    wake.set()
    thread_a.join(60)

    final = sharded.catalog().get("sharded", taken["backup_id"])
    assert final.state == "Completed"
    assert (final.manifest_key, final.stats, final.counts) == (
        committed.manifest_key,
        committed.stats,
        committed.counts,
    )
    assert manifest_of(sharded, final).backup_id == final.backup_id
    # A stopped without touching the shards B finished, and sent no work out.
    shards = shard_records(sharded).list_shards("sharded", final.backup_id)
    assert shards and all(s.state == ShardState.DONE for s in shards), [(s.namespace, s.state) for s in shards]
    assert not queue_a.sent, queue_a.sent
    assert outcome_a and outcome_a[0]["status"] == "Completed"


def test_a_stalled_join_superseded_by_another_does_not_commit_twice(
    repos: Any, kubeconfig_path: Any, app_ns: Any, monkeypatch: Any
) -> None:
    _, sharded = repos
    queue = ListQueue()
    service_a = sharded.backup_service(queue=queue)
    job = make_job(kubeconfig_path, "sharded", app_ns.namespaces, shard=True)
    backup_id = handle_message(service_a, job.to_dict())["backup_id"]
    drain(service_a, queue, stop=lambda message: message.get("type") == "commit")
    commit = CommitMessage(job.cluster, backup_id).to_dict()

    stalled, wake = threading.Event(), threading.Event()
    real_commit = join_module.commit_manifest

    def commit_manifest(*args: Any, **kwargs: Any) -> Any:
        if threading.current_thread().name == STALLED:
            stalled.set()
            assert wake.wait(60)
        return real_commit(*args, **kwargs)

    monkeypatch.setattr(join_module, "commit_manifest", commit_manifest)
    outcome_a: list[Any] = []
    thread_a = _run_stalled(lambda: handle_message(service_a, commit), outcome_a)
    assert stalled.wait(60)

    # The commit message comes back after its visibility timeout: join B commits while A is stalled.
    service_b = sharded.backup_service(queue=ListQueue())
    outcome_b = handle_message(service_b, dict(commit))
    assert outcome_b["status"] == "Completed", outcome_b
    committed = sharded.catalog().get("sharded", backup_id)

    wake.set()
    thread_a.join(60)

    assert outcome_a and outcome_a[0]["status"] == "superseded", outcome_a
    final = sharded.catalog().get("sharded", backup_id)
    assert final.state == "Completed" and final.manifest_key == committed.manifest_key
    assert final.stats == committed.stats and final.worker == committed.worker
    assert manifest_of(sharded, final).stats["duration_ms"] == outcome_b["stats"]["duration_ms"]
