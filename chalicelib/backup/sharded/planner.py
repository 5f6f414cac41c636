"""The coordinator of a sharded backup: decide to shard, store the plan and the shards, send the work out."""

from __future__ import annotations

import secrets
from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Any

from chalicelib.backup.commit import iso
from chalicelib.backup.items import ItemCollector
from chalicelib.backup.listing import Page, count_objects
from chalicelib.backup.sharded.checkpoints import CheckpointStore
from chalicelib.backup.sharded.context import (
    BackupContext,
    BackupContexts,
    NextStep,
    ShardingOptions,
    log,
    run_planned_post_hooks,
)
from chalicelib.core.hooks import Hook
from chalicelib.core.jobs import BackupJob
from chalicelib.core.models import BackupRecord, BackupState
from chalicelib.core.references import cluster_listing_order
from chalicelib.core.resources import Resource
from chalicelib.core.shards import (
    SHARD_TERMINAL,
    Checkpoint,
    ShardPlan,
    ShardState,
    group_namespaces,
    namespaces_per_item,
)
from chalicelib.core.trees import CLUSTER_SCOPE


class ShardPlanner:
    """Turns a claimed, Running backup job into shards on the queue (or adopts the plan a dead coordinator left)."""

    def __init__(
        self,
        catalog: Any,
        shards: Any,
        contexts: BackupContexts,
        next_step: NextStep,
        open_repository: Callable[[], Any],
        *,
        clock: Callable[[], datetime],
        options: ShardingOptions,
        list_workers: int,
        page_size: int,
        writer_options: dict[str, Any],
        hooks: Any = None,
    ) -> None:
        self._catalog = catalog
        self._hooks = hooks
        self._shards = shards
        self._contexts = contexts
        self._next = next_step
        self._open_repository = open_repository
        self._clock = clock
        self._options = options
        self._list_workers = list_workers
        self._page_size = page_size
        self._writer_options = writer_options

    def wants_shards(
        self, job: BackupJob, client: Any, namespaced: list[Resource], namespaces: int
    ) -> tuple[bool, dict[str, int | None]]:
        """(shard it?, objects per namespaced type cluster-wide). The job's ``shard`` wins; else size decides."""
        if job.shard is False:
            return False, {}
        counts = count_objects(client, namespaced, workers=self._list_workers)
        if job.shard:
            return True, counts
        estimate = sum(c for c in counts.values() if c)
        options = self._options
        return namespaces >= options.min_namespaces or estimate >= options.min_objects, counts

    def plan(
        self,
        job: BackupJob,
        record: BackupRecord,
        client: Any,
        *,
        version: str,
        started_at: datetime,
        namespaces_res: Resource,
        ns_objects: dict[str, dict[str, Any]],
        namespaced: list[Resource],
        cluster_types: list[Resource],
        errors: list[dict[str, str]],
        counts: dict[str, int | None],
        cluster_uid: str | None = None,
        post_hooks: Sequence[Hook] = (),
    ) -> BackupRecord:
        """Store the Namespace objects (the cluster shard's starting point), the plan and one shard per work item
        (whole namespaces, about ``item_objects`` objects each), then send the shards. A type with no object
        anywhere in the cluster at this moment is left out of them. ``cluster_uid`` (the cluster's identity) goes into
        the plan and from there into the manifest, so the next backup of the cluster may reuse this one's objects.
        ``post_hooks`` (the policy's and the pods', planned with the pre hooks) go into the plan: the join runs them."""
        from chalicelib.repository import RepositoryReader, RepositoryWriter

        cluster, backup_id = job.cluster.name, record.backup_id
        repo = self._open_repository()
        known = RepositoryReader(repo).known_blob_ids()
        store = CheckpointStore(repo.store)
        writer = RepositoryWriter(repo, known=known, **self._writer_options)
        collector = ItemCollector(job.scope, ns_objects, writer)
        collector.handle_page(Page(namespaces_res, list(ns_objects.values())), None)
        index_files = tuple(writer.finish())
        names = sorted(ns_objects)
        stats = {**dict(writer.stats), "bytes_raw": collector.bytes_raw, "bytes_deduplicated": collector.bytes_dedup}
        seed = Checkpoint(
            scope=CLUSTER_SCOPE,
            seq=0,
            done=frozenset({namespaces_res.group_resource}),
            entries=collector.entries,
            namespaces=tuple(names),
            index_files=index_files,
            stats=stats,
        )
        seed_key = store.put(cluster, backup_id, seed, secrets.token_hex(4))
        estimate = sum(c for c in counts.values() if c) if counts else None
        options = self._options
        per_item = namespaces_per_item(
            len(names), estimate, target_objects=options.item_objects, share=options.item_share
        )
        items = group_namespaces(names, per_item)
        plan = ShardPlan(
            mode=job.scope.effective_cluster_scoped,
            scope=job.scope.to_dict(),
            namespaced=tuple(r for r in namespaced if counts.get(r.group_resource) != 0),
            cluster_types=tuple(cluster_listing_order(cluster_types)),
            kubernetes_version=version,
            started_at=iso(started_at),
            seed_key=seed_key,
            namespaces=len(names),
            index_files=index_files,
            errors=tuple(errors),
            estimate=estimate,
            page_size=self._page_size,
            per_item=per_item,
            volumes=job.volumes.to_dict() if job.volumes.enabled else {},
            dumps=[d.to_dict() for d in job.dumps],
            cluster_uid=cluster_uid,
            post_hooks=tuple(post_hooks),
        )
        _, created = self._shards.create_plan(cluster, backup_id, plan.to_dict(), now=self._clock())
        if not created:
            # Another coordinator of this job got there first; what it planned is the backup.
            return self.adopt(job, record) or record
        # Storing the shards overwrites them (a batch write): only the coordinator still holding the backup may.
        self._fence(record)
        pointer = {"key": seed_key, "seq": 0, "objects": seed.objects, "index_files": list(index_files)}
        self._shards.add_shards(
            cluster, backup_id, names, seed=pointer, now=self._clock(), fresh=True, per_item=per_item
        )
        self._shards.seal(cluster, backup_id, total=len(items), now=self._clock())
        self._contexts.remember(cluster, backup_id, BackupContext(plan, job.scope, repo, known, store, client=client))
        # With no namespace in scope, the cluster-scoped objects are all there is.
        self._next.send_shards(job.cluster, backup_id, [item[0] for item in items] or [CLUSTER_SCOPE])
        log(
            "backup sharded",
            backup_id=backup_id,
            namespaces=len(names),
            items=len(items),
            types=len(plan.namespaced),
            skipped_types=len(namespaced) - len(plan.namespaced),
            estimate=plan.estimate,
        )
        return record

    def adopt(self, job: BackupJob, record: BackupRecord) -> BackupRecord | None:
        """Finish the plan a previous coordinator of this backup stored, and send what is not done; None if none."""
        cluster, backup_id = job.cluster.name, record.backup_id
        item = self._shards.get_plan(cluster, backup_id)
        if item is None:
            return None
        self._fence(record)
        if item.get("state") != "Planned":
            plan = ShardPlan.from_dict(item["plan"])
            repo = self._open_repository()
            seed = CheckpointStore(repo.store).get(plan.seed_key)
            pointer = {"key": plan.seed_key, "seq": 0, "objects": seed.objects, "index_files": list(seed.index_files)}
            self._shards.add_shards(
                cluster,
                backup_id,
                seed.namespaces,
                seed=pointer,
                now=self._clock(),
                fresh=False,
                per_item=plan.per_item,
            )
            self._shards.seal(
                cluster, backup_id, total=len(group_namespaces(seed.namespaces, plan.per_item)), now=self._clock()
            )
        shards = self._shards.list_shards(cluster, backup_id)
        failed = [shard for shard in shards if shard.state == ShardState.FAILED]
        if failed:
            # The shard that failed did not get to fail the backup (its coordinator died first): this write does,
            # so the post hooks the plan holds run here, once, as they would have after that shard's write.
            ended = self._catalog.transition(
                cluster,
                backup_id,
                BackupState.FAILED,
                now=self._clock(),
                worker=record.worker,
                failure=f"shard {failed[0].namespace or '(cluster-scoped)'} failed: {failed[0].error}",
            )
            plan = ShardPlan.from_dict(item["plan"])
            if self._hooks is not None and plan.post_hooks:
                repo = self._open_repository()
                context = BackupContext(plan, job.scope, repo, frozenset(), CheckpointStore(repo.store))
                try:
                    run_planned_post_hooks(
                        self._hooks, self._catalog, self._contexts, context, job.cluster, ended, self._clock()
                    )
                finally:
                    context.close()
            return ended  # type: ignore[no-any-return]
        waiting = [shard.namespace for shard in shards if shard.namespace and shard.state not in SHARD_TERMINAL]
        if waiting:
            self._next.send_shards(job.cluster, backup_id, waiting)
        else:
            self._next.advance(job.cluster, backup_id)
        log("sharded backup adopted", backup_id=backup_id, waiting=len(waiting))
        return record

    def _fence(self, record: BackupRecord) -> None:
        """Prove this coordinator still holds the backup (its worker token), and refresh its heartbeat so no other
        delivery takes it over meanwhile; ``WorkerSuperseded`` when one already has: this coordinator stops."""
        self._catalog.heartbeat(record.cluster, record.backup_id, now=self._clock(), worker=record.worker)
