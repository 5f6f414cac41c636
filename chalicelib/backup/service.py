"""The backup orchestrator: claim the job, list, handle each item, snapshot volumes (``volumes.py``), then commit."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from chalicelib.backup.commit import build_manifest, commit_manifest, iso
from chalicelib.backup.errors import BackupError, ClusterUnavailable
from chalicelib.backup.items import ItemCollector
from chalicelib.backup.listing import ListFailure, Page, select_resources, stream_pages
from chalicelib.core.ids import BackupId, new_backup_id
from chalicelib.core.jobs import BackupJob, ClusterRef, CommitMessage, ShardMessage, VolumesMessage
from chalicelib.core.models import TERMINAL, BackupRecord, BackupState
from chalicelib.core.references import ReferenceCollector, cluster_listing_order
from chalicelib.core.resources import Resource
from chalicelib.core.scope import EXCLUDE_LABEL, BackupScope

if TYPE_CHECKING:
    from chalicelib.backup.sharded.context import Sharding
    from chalicelib.backup.volumes import VolumeStage

# A Running record whose heartbeat is younger than this belongs to a live worker: a duplicate delivery leaves it be.
HEARTBEAT_STALE_S = 300
HEARTBEAT_EVERY_S = 30


def _utcnow() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True)
class BackupOutcome:
    record: BackupRecord
    created: bool  # False when the job had been claimed before (a duplicate delivery)


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
        volumes: VolumeStage | None = None,
    ) -> None:
        """With ``sharding`` (a ``backup.sharded.context.Sharding``: shard catalog, queue, per-process cache) a large
        backup is sharded over many invocations (``docs/architecture.md``); without it, it never is. ``volumes``
        (a ``backup.volumes.VolumeStage``) takes the volume snapshots a job asks for; a job asking for them fails
        without it."""
        self._catalog = catalog
        self._open_repository = open_repository
        self._connect = connect
        self._clock = clock
        self._list_workers = list_workers
        self._page_size = page_size
        self._writer_options = writer_options or {}
        self._sharding = sharding
        self._volumes = volumes

    # -- job lifecycle -------------------------------------------------------------------------------------------

    def run(self, job: BackupJob, *, progress: Callable[[int, str], None] | None = None) -> BackupOutcome:
        now = self._clock()
        cluster = job.cluster.name
        parent = self._catalog.latest(cluster)
        record, created = self._catalog.claim_job(
            job.job_id,
            cluster,
            new_backup_id(now),
            policy=job.policy,
            parent=parent.backup_id if parent else None,
            now=now,
        )
        if not created and not self._should_take_over(record):
            return BackupOutcome(record, created=False)
        record = self._catalog.transition(
            cluster, record.backup_id, BackupState.RUNNING, now=self._clock(), started_at=self._clock()
        )
        try:
            return BackupOutcome(self._execute(job, record, progress, created=created), created=created)
        except Exception as exc:
            # Whatever broke, the record says so (Failed is terminal, so a redelivery will not retry it; the next
            # scheduled run takes a fresh backup). Nothing was committed: the manifest is the last write.
            failure = f"{type(exc).__name__}: {exc}"
            if exc.__cause__ is not None and str(exc.__cause__) not in failure:
                failure += f" (caused by {type(exc.__cause__).__name__}: {exc.__cause__})"
            record = self._catalog.transition(
                cluster,
                record.backup_id,
                BackupState.FAILED,
                now=self._clock(),
                finished_at=self._clock(),
                failure=failure,
            )
            return BackupOutcome(record, created=created)

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
        if job.volumes.enabled and self._volumes is None:
            raise BackupError(f"the job asks for volume snapshots ({job.volumes.mode}), which need the backup queue")
        if not created and self._volumes is not None and job.volumes.enabled:
            # A duplicate job taking over from a worker that died waiting for snapshots: its draft is the backup.
            waiting = self._volumes.adopt(job, record)
            if waiting is not None:
                return waiting
        if not created and self._sharding is not None:
            # A duplicate job taking over from a dead coordinator: a stored shard plan is the backup.
            adopted = self._sharding.planner().adopt(job, record)
            if adopted is not None:
                return adopted
        client = self._connect_cluster(job.cluster)
        try:
            version = client.version().get("gitVersion", "unknown")
            resources = client.discover()
        except Exception as exc:
            raise ClusterUnavailable(f"cluster {cluster!r}: discovery failed: {exc}") from exc
        scope = job.scope
        namespaces_res = next((r for r in resources if r.group_resource == "namespaces"), None)
        if namespaces_res is None:
            raise BackupError(f"cluster {cluster!r}: discovery did not offer namespaces")
        ns_objects = self._list_namespaces(client, namespaces_res, scope)
        namespaced, cluster_types = select_resources(resources, scope)
        discovery_errors = [
            {"resource": str(failure[0]), "error": f"discovery failed: {failure[1]}"}
            for failure in getattr(client, "discovery_errors", []) or []
        ]
        if self._sharding is not None:
            planner = self._sharding.planner()
            shard, type_counts = planner.wants_shards(job, client, namespaced, len(ns_objects))
            if shard:
                return planner.plan(
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
                )

        repo = self._open_repository()
        from chalicelib.repository import RepositoryReader, RepositoryWriter

        reader = RepositoryReader(repo)
        known = reader.known_blob_ids()
        writer = RepositoryWriter(repo, known=known, **self._writer_options)
        collector = ItemCollector(scope, ns_objects, writer, progress=progress)
        collector.errors.extend(discovery_errors)

        self._heartbeat_at = time.monotonic()
        listed = self._collect(
            client, collector, namespaces_res, ns_objects, namespaced, cluster_types, cluster, backup_id
        )
        if listed == 0 and collector.errors:
            raise BackupError(
                f"cluster {cluster!r}: every resource type failed to list: {collector.errors[0]['error']}"
            )

        trees = collector.write_trees()
        root_id = collector.write_root(trees)
        index_files = writer.finish()
        finished_at = self._clock()
        stats = dict(writer.stats)
        stats.update(
            bytes_raw=collector.bytes_raw,
            bytes_deduplicated=collector.bytes_dedup,
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
        )
        if self._volumes is not None and job.volumes.enabled:
            done = self._volumes.start(
                job.cluster,
                job.scope,
                job.volumes,
                record,
                manifest,
                client=client,
                repo=repo,
                writer=writer,
                namespaces=list(ns_objects),
                finished_at=finished_at,
            )
            # None: the backup waits for its snapshots, and a later invocation commits it.
            return done.record if done is not None else self._catalog.get(cluster, backup_id)
        return commit_manifest(self._catalog, repo, writer, manifest, clock=self._clock, finished_at=finished_at).record

    def _connect_cluster(self, ref: ClusterRef) -> Any:
        try:
            return self._connect(ref)
        except Exception as exc:
            raise ClusterUnavailable(f"cluster {ref.name!r}: cannot build credentials: {exc}") from exc

    def _collect(
        self,
        client: Any,
        collector: ItemCollector,
        namespaces_res: Resource,
        ns_objects: dict[str, dict[str, Any]],
        namespaced: list[Resource],
        cluster_types: list[Resource],
        cluster: str,
        backup_id: BackupId,
    ) -> int:
        """List and store everything in scope; returns how many types were listed (Namespaces included)."""
        scope = collector.scope
        refs = ReferenceCollector(collector.namespaces)
        selector = scope.server_selector()

        # Namespaces themselves: the containers of everything else, kept in every mode.
        collector.handle_page(Page(namespaces_res, list(ns_objects.values())), refs)
        listed = 1
        pages = stream_pages(client, namespaced, selector, workers=self._list_workers, page_size=self._page_size)
        listed += self._consume(pages, namespaced, collector, refs, cluster, backup_id)
        mode = scope.effective_cluster_scoped
        if cluster_types:
            # In auto mode the referring types must be read before the types they name, so list in order.
            ordered = cluster_listing_order(cluster_types)
            workers = 1 if mode == "auto" else self._list_workers
            cluster_selector = scope.server_selector() if mode == "on" else f"{EXCLUDE_LABEL}!=true"
            pages = stream_pages(client, ordered, cluster_selector, workers=workers, page_size=self._page_size)
            cluster_refs = refs if mode == "auto" else None
            listed += self._consume(pages, ordered, collector, cluster_refs, cluster, backup_id)
        return listed

    def _list_namespaces(self, client: Any, res: Resource, scope: BackupScope) -> dict[str, dict[str, Any]]:
        """Selected namespaces by name; a namespace labelled with the exclusion label is left out whole."""
        selected: dict[str, dict[str, Any]] = {}
        for page in client.list_pages(res.collection_path(), limit=self._page_size):
            if page.restarted:
                selected.clear()
            for obj in page.items:
                meta = obj.get("metadata") or {}
                name = meta.get("name", "")
                if (meta.get("labels") or {}).get(EXCLUDE_LABEL) == "true":
                    continue
                if scope.namespace_selected(name):
                    selected[name] = obj
        return selected

    def _consume(
        self,
        pages: Any,
        resources: list[Resource],
        collector: ItemCollector,
        refs: ReferenceCollector | None,
        cluster: str,
        backup_id: BackupId,
    ) -> int:
        failed = 0
        for item in pages:
            if isinstance(item, ListFailure):
                failed += 1
                collector.fail(item.resource, item.error)
                continue
            collector.handle_page(item, refs)
            self._maybe_heartbeat(cluster, backup_id)
        # Used to tell "nothing could be listed" (Failed) from "some types failed" (PartiallyFailed).
        return len(resources) - failed

    def _maybe_heartbeat(self, cluster: str, backup_id: BackupId) -> None:
        if time.monotonic() - self._heartbeat_at >= HEARTBEAT_EVERY_S:
            self._heartbeat_at = time.monotonic()
            self._catalog.heartbeat(cluster, backup_id, now=self._clock())
