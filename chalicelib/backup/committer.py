"""The last step of a sharded backup: join the shards' trees under a root tree, write the manifest, record it."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from chalicelib.backup.collector import ItemCollector
from chalicelib.backup.sharding import Sharding
from chalicelib.catalog.errors import StaleState
from chalicelib.core.ids import BackupId, BlobId
from chalicelib.core.jobs import CommitMessage
from chalicelib.core.manifest import Manifest
from chalicelib.core.models import TERMINAL, BackupRecord, BackupState
from chalicelib.core.shards import ShardResult, ShardState, add_stats, merge_errors
from chalicelib.core.trees import CLUSTER_SCOPE


def _iso(ts: datetime) -> str:
    return ts.strftime("%Y-%m-%dT%H:%M:%SZ")


def record_commit(
    catalog: Any, manifest: Manifest, key: str, *, now: datetime, stats: dict[str, int] | None = None
) -> BackupRecord:
    """The catalog side of a commit: Completed, or PartiallyFailed when some types could not be listed."""
    state = BackupState.PARTIALLY_FAILED if manifest.errors else BackupState.COMPLETED
    return catalog.transition(  # type: ignore[no-any-return]
        manifest.cluster,
        manifest.backup_id,
        state,
        now=now,
        finished_at=now,
        manifest_key=key,
        counts=manifest.counts,
        stats=manifest.stats if stats is None else stats,
        errors=manifest.errors,
    )


class Committer:
    def __init__(self, sharding: Sharding) -> None:
        self._s = sharding

    def commit(self, msg: CommitMessage) -> tuple[BackupRecord | None, str]:
        """(the backup's record, what happened): committed, duplicate, waiting or rejected."""
        s = self._s
        cluster, backup_id = msg.cluster.name, msg.backup_id
        record = s.catalog.get(cluster, backup_id)
        if record.state in TERMINAL:
            return record, "duplicate"
        context = s.context(cluster, backup_id)
        if context is None:
            return record, "rejected"
        shards = s.shards.list_shards(cluster, backup_id)
        failed = [shard for shard in shards if shard.state == ShardState.FAILED]
        if failed:
            return record, "waiting"  # the failing shard fails the backup itself
        results = {shard.namespace: shard.result for shard in shards if shard.state == ShardState.DONE}
        if len(results) < len(shards) or CLUSTER_SCOPE not in results:
            return record, "waiting"  # a commit sent twice and early: the cluster shard sends it again when done
        manifest, writer = self._manifest(context, record, {ns: r for ns, r in results.items() if r is not None})
        from chalicelib.repository.errors import ManifestExists

        vanished = missing_from_repository(context.repo, manifest)
        if vanished:
            # Shards hand the repository lease over between invocations; if garbage collection ran in a gap and
            # removed a blob a shard deduplicated against, committing would publish a broken backup.
            failure = f"blobs this backup reaches are no longer in the repository ({vanished}); nothing was committed"
            failed = s.catalog.transition(cluster, backup_id, BackupState.FAILED, now=s.clock(), failure=failure)
            return failed, "rejected"

        key = context.repo.manifest_key(cluster, backup_id)
        stats = None
        try:
            # This writer refuses a manifest without its own index file; the manifest names the shards' too.
            key = writer.write_manifest(manifest)
            # As for a one-shot backup, the record's counters include the manifest's own PUT.
            stats = dict(manifest.stats)
            stats["puts"] = stats.get("puts", 0) + 1
            stats["bytes_uploaded"] = stats.get("bytes_uploaded", 0) + len(manifest.to_json())
        except ManifestExists:
            # A previous commit wrote it and died before recording it: the stored manifest is the backup.
            from chalicelib.repository import RepositoryReader

            manifest = RepositoryReader(context.repo).load_manifest(cluster, backup_id)
        try:
            committed = record_commit(s.catalog, manifest, key, now=s.clock(), stats=stats)
        except StaleState:
            return s.catalog.get(cluster, backup_id), "duplicate"
        s.shards.forget_done(cluster, backup_id, now=s.clock())
        return committed, "committed"

    def _manifest(self, context: Any, record: BackupRecord, results: dict[str, ShardResult]) -> tuple[Manifest, Any]:
        s = self._s
        plan = context.plan
        writer = s.writer(context)
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
        finished = s.clock()
        stats["duration_ms"] = int(max(0.0, (finished - started).total_seconds()) * 1000) if started else 0
        stats["shards"] = len(results)
        errors = merge_errors([(CLUSTER_SCOPE, plan.errors), *((ns, r.errors) for ns, r in sorted(results.items()))])
        counts = {
            "objects": sum(r.objects for r in results.values()),
            "blobs_new": int(stats.get("blobs_new", 0)),
            "trees": len(trees) + 1,
            "namespaces": plan.namespaces,
            "errors": len(errors),
        }
        manifest = Manifest(
            backup_id=BackupId(record.backup_id),
            cluster=record.cluster,
            policy=record.policy,
            parent=BackupId(record.parent) if record.parent else None,
            started_at=plan.started_at,
            finished_at=_iso(finished),
            kubernetes_version=plan.kubernetes_version,
            scope=plan.scope,
            root_tree=root_id,
            counts=counts,
            kinds=dict(sorted(kinds.items())),
            index_files=index_files,
            stats=stats,
            errors=errors,
        )
        return manifest, writer


def missing_from_repository(repo: Any, manifest: Manifest) -> str:
    """A description of the blobs ``manifest`` reaches that the repository no longer holds ("" when none).

    Reads the index afresh, every scope tree in one batch, and the pack listing once (``repository/reach.py``): a
    blob reached must be indexed and its pack must exist.
    """
    from chalicelib.repository import RepositoryReader
    from chalicelib.repository.reach import list_packs, reachable

    reach = reachable(RepositoryReader(repo), [manifest], stored_packs=list_packs(repo.store))
    if reach.unreadable:
        return f"a tree cannot be read: {reach.unreadable[0].error}"
    unindexed = reach.unindexed
    gone = sorted(set(reach.missing_packs.values()))
    parts = []
    if unindexed:
        parts.append(f"{len(unindexed)} unindexed, first {unindexed[0]}")
    if gone:
        parts.append(f"packs missing: {', '.join(gone[:3])}")
    return "; ".join(parts)


def _parse(stamp: str) -> datetime | None:
    try:
        return datetime.strptime(stamp, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC)
    except ValueError:
        return None
