"""The last step of a sharded backup: join the shards' trees under a root tree, then commit (``commit.py``), after
the volume snapshots its job asked for (``volumes.py``)."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import replace
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from chalicelib.backup.commit import (
    REJECTED,
    Commit,
    EtcdSnapshotFn,
    build_manifest,
    commit_manifest,
    take_etcd_snapshot,
)
from chalicelib.backup.items import ItemCollector
from chalicelib.backup.sharded.context import BackupContexts, run_planned_post_hooks
from chalicelib.backup.verify import damaged_sample
from chalicelib.catalog.errors import StaleState, WorkerSuperseded
from chalicelib.core.dumps import dumps_from_list
from chalicelib.core.ids import BlobId
from chalicelib.core.jobs import CommitMessage
from chalicelib.core.manifest import Manifest
from chalicelib.core.models import TERMINAL, BackupRecord, BackupState
from chalicelib.core.shards import ShardResult, ShardState, add_stats, merge_errors
from chalicelib.core.trees import CLUSTER_SCOPE
from chalicelib.core.volume_snapshots import VolumeSettings

if TYPE_CHECKING:
    from chalicelib.backup.volumes import VolumeStage


class ShardJoin:
    """Commits a sharded backup once every shard is done: one root tree over the shards' trees, then the manifest."""

    def __init__(
        self,
        catalog: Any,
        shards: Any,
        contexts: BackupContexts,
        *,
        clock: Callable[[], datetime],
        etcd_snapshot: EtcdSnapshotFn | None = None,
        volumes: VolumeStage | None = None,
        hooks: Any = None,
    ) -> None:
        """``volumes`` takes the volume snapshots of backups whose job asked for them, before their commit; ``hooks``
        (a ``backup.hooks.HookRunner``) runs the plan's post hooks after it, or after the join fails the backup."""
        self._catalog = catalog
        self._shards = shards
        self._contexts = contexts
        self._clock = clock
        self._etcd_snapshot = etcd_snapshot
        self._volumes = volumes
        self._hooks = hooks

    def commit(self, msg: CommitMessage) -> tuple[BackupRecord | None, str]:
        """(the backup's record, what happened): committed, duplicate, waiting, rejected or superseded.

        The join takes the backup's worker token over before it writes anything: a commit message delivered again
        (its first join stalled past the visibility timeout) makes a second join, and only the one holding the
        token may record the commit; the other stops ("superseded")."""
        cluster, backup_id = msg.cluster.name, msg.backup_id
        record = self._catalog.get(cluster, backup_id)
        if record.state in TERMINAL:
            return record, "duplicate"
        context = self._contexts.context(cluster, backup_id)
        if context is None:
            return record, "rejected"
        shards = self._shards.list_shards(cluster, backup_id)
        failed = [shard for shard in shards if shard.state == ShardState.FAILED]
        if failed:
            return record, "waiting"  # the failing shard fails the backup itself
        results = {shard.namespace: shard.result for shard in shards if shard.state == ShardState.DONE}
        if len(results) < len(shards) or CLUSTER_SCOPE not in results:
            return record, "waiting"  # a commit sent twice and early: the cluster shard sends it again when done
        stage = self._volumes if context.plan.volumes or context.plan.dumps else None
        if stage is not None and stage.waiting(context.repo, cluster, backup_id):
            return record, "waiting"  # a commit sent twice: the first one handed the backup to the volume stage
        token = uuid.uuid4().hex
        try:
            record = self._catalog.transition(
                cluster, backup_id, BackupState.RUNNING, now=self._clock(), worker=record.worker, claim=token
            )
            manifest, writer = self._manifest(msg, context, record, {n: r for n, r in results.items() if r is not None})
            refused = self._refuse_damaged_reuse(context, manifest, token)
            if refused is not None:
                return self._post_hooks(msg, context, refused), "rejected"
            if stage is not None:
                namespaces = sorted({ns for r in results.values() if r is not None for ns in r.trees} - {CLUSTER_SCOPE})
                done = self._with_volumes(stage, msg, context, record, manifest, writer, namespaces, token)
                if done is None:
                    # The snapshots are taken, the stage waits for them to be ready: a freeze need not last longer.
                    return self._post_hooks(msg, context, self._catalog.get(cluster, backup_id)), "waiting"
            else:
                # This writer refuses a manifest without its own index file; the manifest names the shards' too.
                done = commit_manifest(
                    self._catalog, context.repo, writer, manifest, clock=self._clock, check_reach=True, worker=token
                )
        except WorkerSuperseded:
            return self._catalog.get(cluster, backup_id), "superseded"
        except StaleState:
            return self._catalog.get(cluster, backup_id), "duplicate"
        # Only the join holding the token got here (the others stopped as superseded or duplicate): hooks run once.
        self._post_hooks(msg, context, done.record)
        if done.outcome == REJECTED:
            return done.record, "rejected"
        self._shards.forget_done(cluster, backup_id, now=self._clock())
        return done.record, "committed"

    def _post_hooks(self, msg: CommitMessage, context: Any, record: BackupRecord) -> BackupRecord:
        run_planned_post_hooks(self._hooks, self._catalog, self._contexts, context, msg.cluster, record, self._clock())
        return record

    def _refuse_damaged_reuse(self, context: Any, manifest: Manifest, token: str) -> BackupRecord | None:
        """Fail the backup before its commit when a sample of what its shards deduplicated against does not read
        (as one-shot backups do, ``backup/verify.py``): the trees it shares with earlier backups are all re-read,
        and the reused object blobs of one window of frames per pack. The Failed record, or None when all is well."""
        from chalicelib.repository import RepositoryReader
        from chalicelib.repository.reach import list_packs, reachable

        reader = RepositoryReader(context.repo)
        index = reader.load_index()
        files = reader.index_files()
        # What this backup packed itself is in the index files it names; everything else it reaches, it reused.
        own = {
            row[0]
            for name in manifest.index_files
            if name in files
            for rows in files[name].packs.values()
            for row in rows
        }
        reach = reachable(reader, [manifest], stored_packs=list_packs(context.repo.store))
        if reach.unindexed or reach.missing_packs:
            return None  # gone, not damaged: the commit's own reach check fails the backup and says so
        shared_trees = [b for b in reach.trees if b not in own]
        reused = {b for b in reach.blobs if b not in own and b not in reach.trees}
        damaged = damaged_sample(reader, index, reused, always=shared_trees)
        damaged += [(u.blob, str(u.error)) for u in reach.unreadable if u.blob not in {b for b, _ in damaged}]
        if not damaged:
            return None
        blob, error = damaged[0]
        failure = (
            f"{len(damaged)} blob(s) this backup deduplicates against are damaged (first: blob {blob}: {error}); "
            "nothing was committed"
        )
        return self._catalog.transition(  # type: ignore[no-any-return]
            manifest.cluster,
            manifest.backup_id,
            BackupState.FAILED,
            now=self._clock(),
            worker=token,
            failure=failure[:2048],
        )

    def _with_volumes(
        self,
        stage: VolumeStage,
        msg: CommitMessage,
        context: Any,
        record: BackupRecord,
        manifest: Manifest,
        writer: Any,
        namespaces: list[str],
        worker: str,
    ) -> Commit | None:
        """The volume stage (``backup/volumes.py``) snapshots the claims and commits, now or after waiting (None)."""
        return stage.start(
            msg.cluster,
            context.scope,
            VolumeSettings.from_dict(context.plan.volumes),
            record,
            manifest,
            client=self._contexts.client(context, msg.cluster),
            repo=context.repo,
            writer=writer,
            namespaces=namespaces,
            check_reach=True,
            worker=worker,
            dumps=dumps_from_list(context.plan.dumps, "the shard plan's dumps"),
        )

    def _manifest(
        self, msg: CommitMessage, context: Any, record: BackupRecord, results: dict[str, ShardResult]
    ) -> tuple[Manifest, Any]:
        plan = context.plan
        writer = self._contexts.writer(context)
        roots = ItemCollector(context.scope, (), writer)
        trees: dict[str, BlobId] = dict(sorted((ns, t) for r in results.values() for ns, t in r.trees.items()))
        root_id = roots.write_root(trees)
        own_index = writer.finish()
        shard_index = (i for _, r in sorted(results.items()) for i in r.index_files)
        index_files = list(dict.fromkeys([*plan.index_files, *shard_index, *own_index]))
        kinds: dict[str, int] = {}
        stats: dict[str, int] = {}
        for result in results.values():
            add_stats(kinds, result.kinds)
            add_stats(stats, result.stats)
        add_stats(stats, dict(writer.stats))
        stats["bytes_raw"] = stats.get("bytes_raw", 0) + roots.bytes_raw
        stats["bytes_deduplicated"] = stats.get("bytes_deduplicated", 0) + roots.bytes_dedup
        started = _parse(plan.started_at)
        finished = self._clock()
        stats["duration_ms"] = int(max(0.0, (finished - started).total_seconds()) * 1000) if started else 0
        stats["shards"] = len(results)
        errors = merge_errors([(CLUSTER_SCOPE, plan.errors), *((ns, r.errors) for ns, r in sorted(results.items()))])
        etcd = take_etcd_snapshot(self._etcd_snapshot, msg.cluster, record.backup_id, context.repo.store, errors)
        manifest = build_manifest(
            record,
            policy=record.policy,
            started_at=plan.started_at,
            finished_at=finished,
            kubernetes_version=plan.kubernetes_version,
            scope=plan.scope,
            root_tree=root_id,
            trees=len(trees),
            objects=sum(r.objects for r in results.values()),
            namespaces=plan.namespaces,
            kinds=kinds,
            index_files=index_files,
            stats=stats,
            errors=errors,
            etcd_snapshot=etcd,
        )
        # The cluster's identity, as one-shot manifests record it: the next backup reuses objects only with it.
        return replace(manifest, cluster_uid=plan.cluster_uid), writer


def _parse(stamp: str) -> datetime | None:
    try:
        return datetime.strptime(stamp, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC)
    except ValueError:
        return None
