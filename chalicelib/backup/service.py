"""The backup orchestrator: claim the job, list, handle each item, snapshot volumes (``volumes.py``), then commit."""

from __future__ import annotations

import gc
import time
import uuid
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from chalicelib.aws.events import announcing_in_background
from chalicelib.backup.collect import Listing, listed_types, metadata_first
from chalicelib.backup.commit import EtcdSnapshotFn, build_manifest, commit_manifest, iso, take_etcd_snapshot
from chalicelib.backup.compact import CompactCollector
from chalicelib.backup.errors import BackupError, ClusterUnavailable
from chalicelib.backup.etcd_only import resource_parent, run_etcd_only
from chalicelib.backup.head_start import ClusterView, HeadStart, Opened
from chalicelib.backup.listing import PageStream, select_resources
from chalicelib.backup.opening import open_repository, refuse_damaged_reuse
from chalicelib.catalog.errors import WorkerSuperseded
from chalicelib.core.ids import BackupId, new_backup_id
from chalicelib.core.jobs import BackupJob, ClusterRef, CommitMessage, ShardMessage, VolumesMessage
from chalicelib.core.models import TERMINAL, BackupRecord, BackupState
from chalicelib.core.resources import Resource
from chalicelib.observability import logger
from chalicelib.retry import MAX_ATTEMPTS, describe, is_transient, retry_delay_s

if TYPE_CHECKING:
    from chalicelib.backup.hooks import HookContext, HookPlan, HookRunner
    from chalicelib.backup.sharded.context import Sharding
    from chalicelib.backup.volumes import VolumeStage

# A Running record whose heartbeat is younger than this belongs to a live worker: a duplicate delivery leaves it be.
HEARTBEAT_STALE_S = 300
HEARTBEAT_EVERY_S = 30

# The namespace whose uid names the cluster (as Velero does): it exists from a cluster's creation to its end.


def _utcnow() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True)
class BackupOutcome:
    record: BackupRecord
    created: bool  # False when the job had been claimed before (a duplicate delivery)
    # Post hooks that failed: logged and kept on the record (extra.post_hooks), never in the manifest (already written).
    post_hook_errors: tuple[dict[str, str], ...] = ()


class BackupService:
    """Takes one backup of one cluster into the repository and records it in the catalog."""

    def __init__(
        self,
        catalog: Any,
        open_repository: Callable[[], Any],
        connect: Callable[[ClusterRef], Any],
        *,
        clock: Callable[[], datetime] = _utcnow,
        list_workers: int = 4,
        page_size: int = 500,
        writer_options: dict[str, Any] | None = None,
        sharding: Sharding | None = None,
        reuse_unchanged: bool = True,
        etcd_snapshot: EtcdSnapshotFn | None = None,
        volumes: VolumeStage | None = None,
        hooks: HookRunner | None = None,
    ) -> None:
        """With ``sharding`` (a ``backup.sharded.context.Sharding``: shard catalog, queue, per-process cache) a large
        backup is sharded over many invocations (``docs/architecture.md``); without it, it never is. ``etcd_snapshot``
        takes the etcd snapshot of a job whose cluster names its etcd (``commit.take_etcd_snapshot``). ``volumes``
        (a ``backup.volumes.VolumeStage``) takes the volume snapshots a job asks for; a job asking for them fails
        without it. ``hooks`` (a ``backup.hooks.HookRunner``) runs the job's and the pods' hooks."""
        self._catalog = catalog
        self._open_repository = open_repository
        self._connect = connect
        self._clock = clock
        self._list_workers = list_workers
        self._page_size = page_size
        self._listing = Listing(workers=list_workers, page_size=page_size)
        self._writer_options = writer_options or {}
        self._sharding = sharding
        self._reuse_unchanged = reuse_unchanged
        self._etcd_snapshot = etcd_snapshot
        self._worker: str | None = None  # the token of the job this service is running (fences its record writes)
        self._volumes = volumes
        self._hooks = hooks
        # The hooks of the backup this service is running: post hooks run once it ends, if its pre phase began.
        self._hook_run: tuple[HookPlan, Any, HookContext] | None = None
        # What the backup this service is running reads of the cluster and the repository while its job is claimed.
        self._head: HeadStart | None = None
        self._claiming_at: datetime | None = None

    # -- job lifecycle -------------------------------------------------------------------------------------------

    def run(self, job: BackupJob, *, progress: Callable[[int, str], None] | None = None) -> BackupOutcome:
        # The cluster's side (discovery, the namespace list) and the repository's (config, index, then the parent's
        # trees) need nothing from the catalog: they are read while the parent is looked up and the job claimed
        # (``head_start.py``). Neither for an etcd-only backup (it calls no Kubernetes API and stores no objects);
        # not the repository's when the backup may be sharded (the plan does not need it). A one-shot backup that
        # runs no pre hook starts listing then too, once the cluster is read and the parent guessed.
        # The claim's "Started" event is put while the backup goes on, its "Completed" one before run returns.
        with _heap_frozen(), announcing_in_background():
            if not job.etcd_only:
                one_shot = not (self._sharding is not None and job.shard is not False)
                cluster = job.cluster.name
                self._head = HeadStart(
                    lambda: self._read_cluster(job),
                    (lambda guess, parent: self._open(cluster, parent, guess)) if one_shot else None,
                    (lambda view, guess: self._list_early(job, view, guess)) if one_shot else None,
                )
            try:
                return self._claim_and_run(job, progress)
            finally:
                if self._head is not None:
                    self._head.end()  # the background reads wait for the parent: they must hear, however this
                    self._head = None  # ends (a duplicate job, a failed claim)

    def _claim_and_run(self, job: BackupJob, progress: Callable[[int, str], None] | None) -> BackupOutcome:
        now = self._clock()
        self._claiming_at = now  # before the parent is guessed, so before a listing started early (``_list_early``)
        cluster = job.cluster.name
        head = self._head if self._reuse_unchanged else None  # without reuse no parent is read
        parent = resource_parent(self._catalog, cluster, guess=head.guess.decide if head is not None else None)
        if self._head is not None:
            parent_id = parent.backup_id if parent is not None and head is not None else None
            self._head.guess.decide(parent_id)  # when the index named none: no guess was made
            self._head.parent.decide(parent_id)
        # A fresh worker token fences the job: once another delivery takes it over, this worker's writes are refused.
        # A new job's record is created Running for it; a redelivered one's is taken over (or left to its worker).
        token = uuid.uuid4().hex
        record, created = self._catalog.claim_job(
            job.job_id,
            cluster,
            new_backup_id(now),
            policy=job.policy,
            parent=parent.backup_id if parent else None,
            now=now,
            extra={"kind": "etcd"} if job.etcd_only else None,
            worker=token,
        )
        if not created:
            retrying = _retry_pending(record, job)
            if not retrying and not self._should_take_over(record):
                return BackupOutcome(record, created=False)
            extra = {"retry": {**record.extra["retry"], "pending": False}} if retrying else None
            try:
                record = self._catalog.transition(
                    cluster,
                    record.backup_id,
                    BackupState.RUNNING,
                    now=self._clock(),
                    worker=record.worker,
                    claim=token,
                    started_at=self._clock(),
                    extra=extra,
                )
            except WorkerSuperseded as exc:
                return BackupOutcome(self._superseded(cluster, record.backup_id, exc), created=False)
        self._worker = token
        self._hook_run = None
        outcome = self._run_claimed(job, record, progress, created=created)
        return self._post_hooks(outcome)

    def _run_claimed(
        self, job: BackupJob, record: BackupRecord, progress: Callable[[int, str], None] | None, *, created: bool
    ) -> BackupOutcome:
        cluster = job.cluster.name
        try:
            executed = self._execute(job, record, progress, created=created)
            return BackupOutcome(executed, created=created)
        except WorkerSuperseded as exc:
            return BackupOutcome(self._superseded(cluster, record.backup_id, exc), created=created)
        except Exception as exc:  # noqa: BLE001 -- whatever broke is retried or recorded on the backup record
            try:
                return BackupOutcome(self._fail(job, record, exc), created=created)
            except WorkerSuperseded as lost:
                return BackupOutcome(self._superseded(cluster, record.backup_id, lost, cause=exc), created=created)

    def _start_hooks(self, job: BackupJob, record: BackupRecord) -> None:
        """From here on the backup's post hooks run however it ends (the policy's, until the pods' are known)."""
        if self._hooks is None:
            if job.hooks.enabled:
                raise BackupError("the job has hooks, which this deployment was not given a hook runner for")
            return
        from chalicelib.backup.hooks import HookContext, HookPlan

        context = HookContext(record.backup_id, job.cluster.name, job.policy)
        self._hook_run = (HookPlan(job.hooks.pre, job.hooks.post), None, context)

    def _hook_plan(self, job: BackupJob, client: Any, namespaces: Iterable[str]) -> Any:
        """The backup's hooks: the policy's, then those the pods' Velero annotations ask for (None: no hook runner)."""
        if self._hooks is None:
            return None
        return self._hooks.plan(job.hooks, client, namespaces, job.scope.label_selector or "")

    def _pre_hooks(self, job: BackupJob, view: ClusterView) -> list[dict[str, str]]:
        """Run the pre hooks of the plan the cluster's side read; their errors, or HookFailed."""
        if self._hooks is None or self._hook_run is None:
            return []
        from chalicelib.core.hooks import PRE

        context = self._hook_run[2]
        plan, client = view.hook_plan, view.client  # planned with the cluster read (``_read_cluster``)
        self._hook_run = (plan, client, context)
        errors = [{"resource": "hook/annotations", "error": warning} for warning in plan.warnings]
        return errors + self._hooks.run(PRE, plan.pre, context, client)

    def _post_hooks(self, outcome: BackupOutcome) -> BackupOutcome:
        """Post hooks run after the commit and after a failure alike; a sharded backup whose plan is stored leaves them
        to its join (they are in the plan), so a freeze spans its shards' listing and the commit."""
        if self._hooks is None or self._hook_run is None:
            return outcome
        from chalicelib.backup.hooks import run_post_hooks

        plan, client, context = self._hook_run
        self._hook_run = None
        state = str(getattr(outcome.record.state, "value", outcome.record.state))
        errors = run_post_hooks(
            self._hooks, plan.post, context, client, state=state, catalog=self._catalog, now=self._clock()
        )
        return replace(outcome, post_hook_errors=tuple(errors)) if errors else outcome

    def _fail(self, job: BackupJob, record: BackupRecord, exc: Exception) -> BackupRecord:
        """Retry a transient failure, or record the backup Failed (by this worker only: the write is fenced)."""
        if is_transient(exc) and job.attempt + 1 < MAX_ATTEMPTS and self._sharding is not None:
            return self._retry(job, record, exc)
        # Whatever broke, the record says so (Failed is terminal, so a redelivery will not retry it; the next
        # scheduled run takes a fresh backup). Nothing was committed: the manifest is the last write.
        failure = describe(exc, limit=1 << 20)
        if is_transient(exc) and job.attempt:
            failure = f"failed after {job.attempt + 1} attempts: {failure}"
        return self._catalog.transition(  # type: ignore[no-any-return]
            job.cluster.name,
            record.backup_id,
            BackupState.FAILED,
            now=self._clock(),
            worker=self._worker,
            finished_at=self._clock(),
            failure=failure,
        )

    def _superseded(
        self, cluster: str, backup_id: str, exc: WorkerSuperseded, *, cause: Exception | None = None
    ) -> BackupRecord:
        """Another worker took this backup over: stop without writing, and report the record as it now stands."""
        extra = {"backup_id": backup_id, "error": str(exc)}
        if cause is not None:
            extra["cause"] = describe(cause)
        logger().warning("backup taken over by another worker; this worker stops", extra=extra)
        return self._catalog.get(cluster, backup_id)  # type: ignore[no-any-return]

    def _retry(self, job: BackupJob, record: BackupRecord, exc: Exception) -> BackupRecord:
        """Record the failed attempt and send the job again, delayed, with its attempt counter; the message being
        handled is then acknowledged, so the retry does not wait for the queue's visibility timeout."""
        assert self._sharding is not None
        attempt = job.attempt + 1
        retry = {"attempt": attempt, "pending": True, "error": describe(exc)}
        record = self._catalog.transition(
            job.cluster.name,
            record.backup_id,
            BackupState.RUNNING,
            now=self._clock(),
            worker=self._worker,
            extra={"retry": retry},
        )
        self._sharding.queue.send(replace(job, attempt=attempt).to_dict(), delay_s=retry_delay_s(attempt))
        return record

    def run_shard(self, msg: ShardMessage, *, remaining_ms: Callable[[], int] | None = None) -> dict[str, Any]:
        """Back up one shard of a sharded backup, or as much of it as the time left allows (then it continues)."""
        return self._require_sharding().worker().run(msg, remaining_ms)

    def commit(self, msg: CommitMessage) -> tuple[BackupRecord | None, str]:
        """The last step of a sharded backup: root tree and manifest. Returns (record, what happened)."""
        return self._require_sharding().join().commit(msg)

    def resume_volumes(self, msg: VolumesMessage) -> tuple[BackupRecord | None, str]:
        """Look again at the volume snapshots a backup waits for; commit it once they are settled."""
        if self._volumes is None:
            raise BackupError("volume snapshots need the backup queue")
        return self._volumes.resume(msg)

    def record(self, cluster: str, backup_id: str) -> BackupRecord:
        return self._catalog.get(cluster, backup_id)  # type: ignore[no-any-return]

    def _require_sharding(self) -> Sharding:
        if self._sharding is None:
            raise BackupError("sharded backups need the shard catalog and the backup queue")
        return self._sharding

    def _should_take_over(self, record: BackupRecord) -> bool:
        """A duplicate delivery re-runs a backup only when its worker died (stale heartbeat)."""
        if record.state in TERMINAL:
            return False
        beat = record.heartbeat_at or record.started_at or record.created_at
        if not beat:
            return True
        age = (self._clock() - datetime.fromisoformat(beat)).total_seconds()
        return age > HEARTBEAT_STALE_S

    # -- the backup itself ---------------------------------------------------------------------------------------

    def _execute(
        self, job: BackupJob, record: BackupRecord, progress: Callable[[int, str], None] | None, *, created: bool
    ) -> BackupRecord:
        started = time.monotonic()
        started_at = self._clock()
        cluster = job.cluster.name
        backup_id = BackupId(record.backup_id)
        if job.etcd_only:
            return run_etcd_only(
                job,
                record,
                open_repository=self._open_repository,
                take=self._etcd_snapshot,
                catalog=self._catalog,
                clock=self._clock,
                worker=self._worker,
            )
        if job.waits and self._volumes is None:
            raise BackupError("the job asks for volume snapshots or database dumps, which need the backup queue")
        if not created and self._volumes is not None and job.waits:
            # A duplicate job taking over from a worker that died waiting for snapshots: its draft is the backup.
            waiting = self._volumes.adopt(job, record)
            if waiting is not None:
                return waiting
        if not created and self._sharding is not None:
            # A duplicate job taking over from a dead coordinator: a stored shard plan is the backup.
            adopted = self._sharding.planner().adopt(job, record)
            if adopted is not None:
                return adopted
        self._start_hooks(job, record)
        # The repository's side, started by ``run`` (None when the backup may be sharded), goes on meanwhile.
        opening = self._head.opening if self._head is not None else None
        scope = job.scope
        view = self._head.cluster.result() if self._head is not None else self._read_cluster(job)
        client, version, namespaces_res = view.client, view.version, view.namespaces_res
        ns_objects, cluster_uid = view.ns_objects, view.cluster_uid
        namespaced, cluster_types = view.namespaced, view.cluster_types
        discovery_errors = [
            {"resource": str(failure[0]), "error": f"discovery failed: {failure[1]}"}
            for failure in getattr(client, "discovery_errors", []) or []
        ]
        discovery_errors.extend(self._pre_hooks(job, view))
        if self._sharding is not None:
            planner = self._sharding.planner()
            shard, type_counts = planner.wants_shards(job, client, namespaced, len(ns_objects))
            if shard:
                planned = planner.plan(
                    job,
                    record,
                    client,
                    version=version,
                    started_at=started_at,
                    namespaces_res=namespaces_res,
                    ns_objects=ns_objects,
                    namespaced=namespaced,
                    cluster_types=cluster_types,
                    errors=discovery_errors,
                    counts=type_counts,
                    cluster_uid=cluster_uid,
                    post_hooks=self._hook_run[0].post if self._hook_run is not None else (),
                )
                # The plan holds the post hooks now: the join runs them after the commit or the failure.
                self._hook_run = None
                return planned

        from chalicelib.repository import RepositoryWriter

        # The first pages are fetched while the parent's trees are still being read (the collector needs them),
        # since before the claim when no pre hook ran (``_list_early``). An incremental lists metadata first: what
        # its parent holds unchanged needs nothing more.
        pages = self._head.listing.result() if self._head is not None and self._head.listing is not None else None
        if pages is not None and self._claiming_at is not None:
            started_at = min(started_at, self._claiming_at)  # the objects were listed from then on
        else:
            parent = record.parent if self._reuse_unchanged else None  # without reuse every type is listed whole
            first = metadata_first(parent, scope, ns_objects, opening, cluster_uid)
            pages = self._listing.start(client, scope, ns_objects, namespaced, first)
        getter = ThreadPoolExecutor(max_workers=self._list_workers, thread_name_prefix="lifeboat-get")
        try:
            opened = opening.result() if opening is not None else self._open(cluster, lambda: record.parent)
            writer = RepositoryWriter(opened.repo, known=opened.index, **self._writer_options)
            # The parent's objects as read before the claim, provided they are of the backup the record names (a
            # job taken over keeps the parent it was claimed with).
            prior = opened.prior_for(record.parent, cluster_uid)
            early = opened.early if prior is not None else None  # the sample of the parent's blobs, being read
            # Compact rows, each scope's tree written and let go in turn: memory per object is a row
            # (docs/architecture.md).
            collector = CompactCollector(
                scope,
                ns_objects,
                writer,
                progress=progress,
                prior=prior,
                index=opened.index,
                early=early,
            )
            collector.errors.extend(discovery_errors)

            self._heartbeat_at = time.monotonic()
            listed = self._listing.collect(
                client,
                collector,
                pages,
                namespaces_res,
                ns_objects,
                namespaced,
                cluster_types,
                read=self._listing.read_changed(client, scope, getter),
                heartbeat=lambda: self._maybe_heartbeat(cluster, backup_id),
            )
        finally:
            pages.close()
            getter.shutdown(wait=False, cancel_futures=True)
        if listed == 0 and collector.errors:
            raise BackupError(
                f"cluster {cluster!r}: every resource type failed to list: {collector.errors[0]['error']}"
            )

        # Heartbeats go on through writing and commit, not only listing: each also proves the job is still ours.
        self._maybe_heartbeat(cluster, backup_id)
        trees = collector.write_trees()
        root_id = collector.write_root(trees)
        self._maybe_heartbeat(cluster, backup_id)
        index_files = writer.finish()
        refuse_damaged_reuse(opened, collector, [*trees.values(), root_id], cluster, early)
        self._maybe_heartbeat(cluster, backup_id)
        etcd = take_etcd_snapshot(self._etcd_snapshot, job.cluster, backup_id, opened.repo.store, collector.errors)
        finished_at = self._clock()
        stats = dict(writer.stats)
        stats.update(
            bytes_raw=collector.bytes_raw,
            bytes_deduplicated=collector.bytes_dedup,
            objects_reused=collector.reused,
            duration_ms=int((time.monotonic() - started) * 1000),
        )
        manifest = build_manifest(
            record,
            policy=job.policy,
            started_at=iso(started_at),
            finished_at=finished_at,
            kubernetes_version=version,
            scope=job.scope.to_dict(),
            root_tree=root_id,
            trees=len(trees),
            objects=collector.objects,
            namespaces=len(ns_objects),
            kinds=collector.kinds(),
            index_files=index_files,
            stats=stats,
            errors=collector.errors,
            etcd_snapshot=etcd,
        )
        manifest = replace(manifest, cluster_uid=cluster_uid)
        self._maybe_heartbeat(cluster, backup_id)
        if self._volumes is not None and job.waits:
            done = self._volumes.start(
                job.cluster,
                job.scope,
                job.volumes,
                record,
                manifest,
                client=client,
                repo=opened.repo,
                writer=writer,
                namespaces=list(ns_objects),
                finished_at=finished_at,
                dumps=job.dumps,
            )
            # None: the backup waits for its snapshots, and a later invocation commits it.
            return done.record if done is not None else self._catalog.get(cluster, backup_id)
        committed = commit_manifest(
            self._catalog,
            opened.repo,
            writer,
            manifest,
            clock=self._clock,
            finished_at=finished_at,
            worker=self._worker,
        )
        return committed.record

    def _connect_cluster(self, ref: ClusterRef) -> Any:
        try:
            return self._connect(ref)
        except Exception as exc:
            raise ClusterUnavailable(f"cluster {ref.name!r}: cannot build credentials: {exc}") from exc

    def _read_cluster(self, job: BackupJob) -> ClusterView:
        """The cluster's side of the backup: a client, discovery and the selected namespaces."""
        client, version, resources, namespaces_res = self._discover(job.cluster)
        scope = job.scope
        ns_objects, cluster_uid = self._listing.namespaces(client, namespaces_res, scope)
        namespaced, cluster_types = select_resources(resources, scope)
        # The parent's trees are read only when an object can be listed: an empty scope's backup skips them.
        listable = bool(ns_objects) or any(listed_types(scope, ns_objects, namespaced, cluster_types))
        return ClusterView(
            client,
            version,
            namespaces_res,
            ns_objects,
            cluster_uid,
            namespaced,
            cluster_types,
            listable,
            self._hook_plan(job, client, ns_objects),
        )

    def _discover(self, ref: ClusterRef) -> tuple[Any, str, list[Resource], Resource]:
        """A client of the cluster, its version, the resource types it serves and its Namespaces type."""
        client = self._connect_cluster(ref)
        try:
            version = client.version().get("gitVersion", "unknown")
            resources = client.discover()
        except Exception as exc:
            raise ClusterUnavailable(f"cluster {ref.name!r}: discovery failed: {exc}") from exc
        namespaces_res = next((r for r in resources if r.group_resource == "namespaces"), None)
        if namespaces_res is None:
            raise BackupError(f"cluster {ref.name!r}: discovery did not offer namespaces")
        return client, version, resources, namespaces_res

    def _list_early(self, job: BackupJob, view: ClusterView, guess: str | None) -> PageStream | None:
        """The listing of a one-shot backup, started before its job is claimed: only reads of the cluster, kept in
        a bounded queue until the claimed job stores them; metadata first when a parent is guessed (a wrong guess
        costs requests, never an object: the collector decides what is read whole). None when a pre hook is to
        run first (listing waits for it)."""
        if view.hook_plan is not None and view.hook_plan.pre:
            return None
        head = self._head
        if head is None:
            return None  # only a run's head start lists early
        parent = head.parent.wait if guess is not None and self._reuse_unchanged else None
        first = metadata_first(parent, job.scope, view.ns_objects, head.opening, view.cluster_uid)
        return self._listing.start(view.client, job.scope, view.ns_objects, view.namespaced, first)

    def _open(
        self, cluster: str, parent_to_read: Callable[[], str | None], guess: Callable[[], str | None] | None = None
    ) -> Opened:
        """The repository's side of the backup (``opening.open_repository``), in the calling thread."""
        return open_repository(
            self._open_repository(), cluster, parent_to_read, guess, reuse_unchanged=self._reuse_unchanged
        )

    def _maybe_heartbeat(self, cluster: str, backup_id: BackupId) -> None:
        if time.monotonic() - self._heartbeat_at >= HEARTBEAT_EVERY_S:
            self._heartbeat_at = time.monotonic()
            self._catalog.heartbeat(cluster, backup_id, now=self._clock(), worker=self._worker)


@contextmanager
def _heap_frozen() -> Iterator[None]:
    """The objects alive when a backup starts (modules, clients, caches of a warm process) left out of the cyclic
    garbage collector's passes until it ends.

    A backup allocates some ten containers per listed object (the decoded pages), so the collector runs a hundred
    times per 10,000 objects, and its full passes walked the whole warm heap each time: ~65 ms of a 10,000-object
    backup's ~500 ms of CPU, ~10 ms with that heap frozen. What the backup allocates is collected as before."""
    gc.freeze()
    try:
        yield
    finally:
        gc.unfreeze()


def _retry_pending(record: BackupRecord, job: BackupJob) -> bool:
    """Whether ``job`` is the message that retries ``record``'s failed attempt (not yet taken up by a worker)."""
    retry = record.extra.get("retry") or {}
    return (
        record.state == BackupState.RUNNING
        and job.attempt > 0
        and bool(retry.get("pending"))
        and (retry.get("attempt") == job.attempt)
    )
