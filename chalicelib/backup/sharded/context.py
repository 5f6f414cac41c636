"""What the coordinator, the shard workers and the join of a sharded backup share, and what comes next.

One process (a warm Lambda) keeps, per backup it recently worked on, the plan, the opened repository, the index it
loaded and its Kubernetes client, so consecutive shards of one backup pay for them once. The index is loaded when
the process first meets the backup: blobs that other shards of the same backup add later are in other namespaces,
so they are never needed here (at worst a blob is packed twice: harmless garbage).
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Collection
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any

from chalicelib.backup.sharded.checkpoints import CheckpointStore
from chalicelib.core.capacity import oneshot_capacity, shard_threshold
from chalicelib.core.ids import BlobId
from chalicelib.core.jobs import ClusterRef, CommitMessage, ShardMessage
from chalicelib.core.models import BackupState
from chalicelib.core.scope import BackupScope
from chalicelib.core.shards import ShardPlan, ShardRecord, ShardState
from chalicelib.core.trees import CLUSTER_SCOPE
from chalicelib.observability import logger
from chalicelib.retry import MAX_ATTEMPTS, RETRY_DELAY_S

if TYPE_CHECKING:
    from chalicelib.backup.sharded.join import ShardJoin
    from chalicelib.backup.sharded.planner import ShardPlanner
    from chalicelib.backup.sharded.shard import ShardWorker

CONTEXTS_KEPT = 2
RUNNING_CHECK_S = 30.0


# The objects one backup worker invocation backs up one-shot within a third of its timeout and half its memory, as
# measured (docs/scale.md, "One cluster"): 520,000, set by memory (by time it would be ~1,000,000). A namespace
# costs ~4 KiB and no measurable time of a one-shot backup (every type is listed cluster-wide): 10,000 namespaces is
# the most measured, so more are sharded whatever their objects.
ONESHOT_MAX_OBJECTS = shard_threshold(oneshot_capacity())
ONESHOT_MAX_NAMESPACES = 10_000


@dataclass(frozen=True)
class ShardingOptions:
    # A job without "shard" is sharded when it has at least this many namespaces or objects.
    min_namespaces: int = ONESHOT_MAX_NAMESPACES
    min_objects: int = ONESHOT_MAX_OBJECTS
    # A work item (one shard message) gets whole namespaces worth about this many objects, or this share of the
    # cluster's objects when that is fewer (so a cluster still spreads over ~1/share workers); at least one namespace.
    item_objects: int = 25_000
    item_share: float = 0.05
    max_attempts: int = MAX_ATTEMPTS  # failed attempts of one shard before the backup fails
    retry_delay_s: int = RETRY_DELAY_S  # times the attempt number
    deadline_margin_ms: int = 60_000  # checkpoint this long before the invocation's deadline
    heartbeat_every_s: float = 30.0
    stale_after_s: float = 300.0  # a Running shard whose heartbeat is older lost its worker
    refs_inline_bytes: int = 100_000  # larger references go to S3 instead of the shard's record


@dataclass
class BackupContext:
    """One backup as this process knows it."""

    plan: ShardPlan
    scope: BackupScope
    repo: Any
    known: Collection[BlobId]
    checkpoints: CheckpointStore
    client: Any = None
    lock: threading.Lock = field(default_factory=threading.Lock)
    running: bool = True
    running_checked: float | None = None  # time.monotonic() of the last look at the backup record

    def close(self) -> None:
        if self.client is not None and hasattr(self.client, "close"):
            self.client.close()


class BackupContexts:
    """The per-process cache of backup contexts, and what a shard needs from it: client, writer, still running?"""

    def __init__(
        self,
        catalog: Any,
        shards: Any,
        open_repository: Callable[[], Any],
        connect: Callable[[ClusterRef], Any],
        *,
        writer_options: dict[str, Any] | None = None,
    ) -> None:
        self._catalog = catalog
        self._shards = shards
        self._open_repository = open_repository
        self._connect = connect
        self._writer_options = writer_options or {}
        self._contexts: OrderedDict[tuple[str, str], BackupContext] = OrderedDict()
        self._lock = threading.Lock()

    def context(self, cluster: str, backup_id: str) -> BackupContext | None:
        """The backup's context, loaded on first use; None when the backup has no shard plan."""
        key = (cluster, backup_id)
        with self._lock:
            if key in self._contexts:
                self._contexts.move_to_end(key)
                return self._contexts[key]
        item = self._shards.get_plan(cluster, backup_id)
        if item is None:
            return None
        plan = ShardPlan.from_dict(item["plan"])
        from chalicelib.repository import RepositoryReader

        repo = self._open_repository()
        known = RepositoryReader(repo).known_blob_ids()
        context = BackupContext(plan, BackupScope.from_dict(plan.scope), repo, known, CheckpointStore(repo.store))
        with self._lock:
            context = self._contexts.setdefault(key, context)
            while len(self._contexts) > CONTEXTS_KEPT:
                _, old = self._contexts.popitem(last=False)
                old.close()
        return context

    def remember(self, cluster: str, backup_id: str, context: BackupContext) -> None:
        """Keep the coordinator's context: a worker that handles a shard next needs the same things."""
        with self._lock:
            self._contexts[(cluster, backup_id)] = context
            while len(self._contexts) > CONTEXTS_KEPT:
                _, old = self._contexts.popitem(last=False)
                old.close()

    def still_running(self, context: BackupContext, cluster: str, backup_id: str) -> bool:
        """Whether the backup is still Running, looked up at most every ``RUNNING_CHECK_S`` per process: once a
        shard has failed the backup, the shards still queued stop without working for nothing."""
        now = time.monotonic()
        if context.running_checked is None or now - context.running_checked >= RUNNING_CHECK_S:
            context.running = self._catalog.get(cluster, backup_id).state == BackupState.RUNNING
            context.running_checked = now
        return context.running

    def client(self, context: BackupContext, ref: ClusterRef) -> Any:
        with context.lock:
            if context.client is None:
                context.client = self._connect(ref)
            return context.client

    def writer(self, context: BackupContext) -> Any:
        from chalicelib.repository import RepositoryWriter

        return RepositoryWriter(context.repo, known=context.known, **self._writer_options)


class NextStep:
    """What a sharded backup waits for after a shard is done (or a coordinator adopts it), and sending it."""

    def __init__(self, shards: Any, queue: Any, clock: Callable[[], datetime]) -> None:
        self._shards = shards
        self._queue = queue
        self._clock = clock

    def send_shards(self, ref: ClusterRef, backup_id: str, keys: list[str]) -> None:
        """One message per shard: a work item's key (its first namespace), or "" for the cluster-scoped objects."""
        self._queue.send_many(ShardMessage(ref, backup_id, key).to_dict() for key in keys)

    def advance(self, ref: ClusterRef, backup_id: str, finished: ShardRecord | None = None) -> str:
        """Send whatever the backup waits for now, after ``finished`` (a Done shard) if given; returns what.

        Idempotent: a duplicate message is harmless, and a Done work item is counted once however often this runs.
        The cluster shard comes after the last work item (auto mode needs every reference), the commit after it.
        Raises ``StaleState`` when the backup is no longer Running.
        """
        cluster = ref.name
        if finished is not None and finished.namespace == CLUSTER_SCOPE:
            self._send_commit(ref, backup_id)
            return "commit"
        remaining = None
        if finished is not None and finished.index is not None:
            remaining = self._shards.count_done(cluster, backup_id, finished.index, now=self._clock())
        if remaining is None:  # nothing counted now (or counted before): the backup record says
            remaining = self._shards.remaining(cluster, backup_id)
        if remaining is None or remaining > 0:
            return "waiting"
        shard = self._shards.get(cluster, backup_id, CLUSTER_SCOPE)
        if shard is None:
            return "no-plan"
        if shard.state == ShardState.DONE:
            self._send_commit(ref, backup_id)
            return "commit"
        if shard.state == ShardState.FAILED:
            return "failed"
        self.send_shards(ref, backup_id, [CLUSTER_SCOPE])
        return "cluster"

    def _send_commit(self, ref: ClusterRef, backup_id: str) -> None:
        self._queue.send(CommitMessage(ref, backup_id).to_dict())


class Sharding:
    """The collaborators of sharded backups, wired once per process: builds the planner, shard worker and join."""

    def __init__(
        self,
        catalog: Any,
        shards: Any,
        queue: Any,
        open_repository: Callable[[], Any],
        connect: Callable[[ClusterRef], Any],
        *,
        clock: Callable[[], datetime],
        list_workers: int = 4,
        page_size: int = 500,
        writer_options: dict[str, Any] | None = None,
        options: ShardingOptions | None = None,
        etcd_snapshot: Any = None,
        volumes: Any = None,
        hooks: Any = None,
    ) -> None:
        """``volumes`` (a ``backup.volumes.VolumeStage``) takes the volume snapshots the join waits for; ``hooks`` (a
        ``backup.hooks.HookRunner``) runs the post hooks the plan holds, once the backup is committed or failed."""
        self.catalog = catalog
        self.shards = shards
        self.queue = queue
        self.etcd_snapshot = etcd_snapshot  # commit.EtcdSnapshotFn: the join takes the etcd snapshot
        self.open_repository = open_repository
        self.clock = clock
        self.list_workers = list_workers
        self.page_size = page_size
        self.writer_options = writer_options or {}
        self.options = options or ShardingOptions()
        self.volumes = volumes
        self.hooks = hooks
        self.contexts = BackupContexts(catalog, shards, open_repository, connect, writer_options=self.writer_options)
        self.next_step = NextStep(shards, queue, clock)

    def planner(self) -> ShardPlanner:
        from chalicelib.backup.sharded.planner import ShardPlanner

        return ShardPlanner(
            self.catalog,
            self.shards,
            self.contexts,
            self.next_step,
            self.open_repository,
            clock=self.clock,
            options=self.options,
            list_workers=self.list_workers,
            page_size=self.page_size,
            writer_options=self.writer_options,
            hooks=self.hooks,
        )

    def worker(self) -> ShardWorker:
        from chalicelib.backup.sharded.shard import ShardWorker

        return ShardWorker(
            self.catalog,
            self.shards,
            self.queue,
            self.contexts,
            self.next_step,
            clock=self.clock,
            options=self.options,
            list_workers=self.list_workers,
            hooks=self.hooks,
        )

    def join(self) -> ShardJoin:
        from chalicelib.backup.sharded.join import ShardJoin

        return ShardJoin(
            self.catalog,
            self.shards,
            self.contexts,
            clock=self.clock,
            etcd_snapshot=self.etcd_snapshot,
            volumes=self.volumes,
            hooks=self.hooks,
        )


def run_planned_post_hooks(
    hooks: Any,
    catalog: Any,
    contexts: BackupContexts,
    context: BackupContext,
    ref: ClusterRef,
    record: Any,
    now: datetime,
) -> list[dict[str, str]]:
    """Run the post hooks a sharded backup's plan holds, told the backup's state, and keep their failures on its
    record. Callers run this once per backup: after the write that ended it (its commit, or its Failed state) won."""
    if hooks is None or not context.plan.post_hooks:
        return []
    from chalicelib.backup.hooks import HookContext, run_post_hooks

    try:
        client = contexts.client(context, ref)
    except Exception as exc:  # noqa: BLE001 -- webhook and Lambda hooks still run; exec hooks then say why not
        extra = {"backup_id": record.backup_id, "error": str(exc)}
        logger().warning("no cluster client for the post hooks", extra=extra)
        client = None
    state = str(getattr(record.state, "value", record.state))
    hook_context = HookContext(record.backup_id, ref.name, record.policy)
    return run_post_hooks(hooks, context.plan.post_hooks, hook_context, client, state=state, catalog=catalog, now=now)


def log(message: str, **fields: Any) -> None:
    logger().info(message, extra=fields)
