"""The backup orchestrator: claim the job, collect, write blobs and trees, commit the manifest, record the outcome."""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from chalicelib.backup.collect import ListFailure, Page, select_resources, stream_pages
from chalicelib.backup.errors import BackupError, ClusterUnavailable
from chalicelib.core.canonical import blob_id, canonical_json
from chalicelib.core.ids import BackupId, BlobId, new_backup_id
from chalicelib.core.jobs import BackupJob, ClusterRef
from chalicelib.core.manifest import Manifest
from chalicelib.core.models import TERMINAL, BackupRecord, BackupState
from chalicelib.core.references import ReferenceCollector, cluster_listing_order
from chalicelib.core.resources import Resource
from chalicelib.core.sanitize import sanitize
from chalicelib.core.scope import EXCLUDE_LABEL, BackupScope
from chalicelib.core.trees import CLUSTER_SCOPE, TreeEntry, encode_root, encode_tree

# A Running record whose heartbeat is younger than this belongs to a live worker: a duplicate delivery leaves it be.
HEARTBEAT_STALE_S = 300
HEARTBEAT_EVERY_S = 30


def _utcnow() -> datetime:
    return datetime.now(UTC)


def _iso(ts: datetime) -> str:
    return ts.strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass(frozen=True)
class BackupOutcome:
    record: BackupRecord
    created: bool  # False when the job had been claimed before (a duplicate delivery)


@dataclass
class _Run:
    """Mutable state of one backup run."""

    scope: BackupScope
    namespaces: frozenset[str] = frozenset()
    by_resource: dict[Resource, list[tuple[str, TreeEntry]]] = field(default_factory=dict)
    errors: list[dict[str, str]] = field(default_factory=list)
    kinds: Counter[str] = field(default_factory=Counter)
    bytes_raw: int = 0
    bytes_dedup: int = 0
    listed_types: int = 0
    progress: Callable[[int, str], None] | None = None  # (objects so far, resource type)


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
    ) -> None:
        self._catalog = catalog
        self._open_repository = open_repository
        self._connect = connect
        self._clock = clock
        self._list_workers = list_workers
        self._page_size = page_size
        self._writer_options = writer_options or {}

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
            return BackupOutcome(self._execute(job, record, progress), created=created)
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
        self, job: BackupJob, record: BackupRecord, progress: Callable[[int, str], None] | None
    ) -> BackupRecord:
        started = time.monotonic()
        started_at = self._clock()
        cluster = job.cluster.name
        backup_id = BackupId(record.backup_id)
        client = self._connect_cluster(job.cluster)
        try:
            version = client.version().get("gitVersion", "unknown")
            resources = client.discover()
        except Exception as exc:
            raise ClusterUnavailable(f"cluster {cluster!r}: discovery failed: {exc}") from exc

        repo = self._open_repository()
        from chalicelib.repository import RepositoryReader, RepositoryWriter

        reader = RepositoryReader(repo)
        known = reader.known_blob_ids()
        writer = RepositoryWriter(repo, known=known, **self._writer_options)
        run = _Run(scope=job.scope, progress=progress)
        for failure in getattr(client, "discovery_errors", []) or []:
            run.errors.append({"resource": str(failure[0]), "error": f"discovery failed: {failure[1]}"})

        self._heartbeat_at = time.monotonic()
        self._collect(client, resources, run, writer, cluster, backup_id)
        if run.listed_types == 0 and run.errors:
            raise BackupError(f"cluster {cluster!r}: every resource type failed to list: {run.errors[0]['error']}")

        root_id, tree_count = self._write_trees(run, writer)
        index_files = writer.finish()
        finished_at = self._clock()
        objects = sum(run.kinds.values())
        stats = dict(writer.stats)
        stats.update(
            bytes_raw=run.bytes_raw,
            bytes_deduplicated=run.bytes_dedup,
            duration_ms=int((time.monotonic() - started) * 1000),
        )
        counts = {
            "objects": objects,
            "blobs_new": int(stats.get("blobs_new", 0)),
            "trees": tree_count,
            "namespaces": len(run.namespaces),
            "errors": len(run.errors),
        }
        manifest = Manifest(
            backup_id=backup_id,
            cluster=cluster,
            policy=job.policy,
            parent=BackupId(record.parent) if record.parent else None,
            started_at=_iso(started_at),
            finished_at=_iso(finished_at),
            kubernetes_version=version,
            scope=job.scope.to_dict(),
            root_tree=root_id,
            counts=counts,
            kinds=dict(sorted(run.kinds.items())),
            index_files=list(index_files),
            stats=stats,
            errors=run.errors,
        )
        key = writer.write_manifest(manifest)  # the commit point
        stats["bytes_uploaded"] = int(writer.stats.get("bytes_uploaded", stats.get("bytes_uploaded", 0)))
        stats["puts"] = int(writer.stats.get("puts", stats.get("puts", 0)))
        state = BackupState.PARTIALLY_FAILED if run.errors else BackupState.COMPLETED
        final: BackupRecord = self._catalog.transition(
            cluster,
            backup_id,
            state,
            now=self._clock(),
            finished_at=finished_at,
            manifest_key=key,
            counts=counts,
            stats=stats,
            errors=run.errors,
        )
        return final

    def _connect_cluster(self, ref: ClusterRef) -> Any:
        try:
            return self._connect(ref)
        except Exception as exc:
            raise ClusterUnavailable(f"cluster {ref.name!r}: cannot build credentials: {exc}") from exc

    def _collect(
        self, client: Any, resources: list[Resource], run: _Run, writer: Any, cluster: str, backup_id: BackupId
    ) -> None:
        scope = run.scope
        namespaces_res = next((r for r in resources if r.group_resource == "namespaces"), None)
        if namespaces_res is None:
            raise BackupError(f"cluster {cluster!r}: discovery did not offer namespaces")
        ns_objects = self._list_namespaces(client, namespaces_res, scope)
        run.namespaces = frozenset(ns_objects)
        namespaced, cluster_types = select_resources(resources, scope)
        refs = ReferenceCollector(run.namespaces)
        selector = scope.server_selector()

        # Namespaces themselves: the containers of everything else, kept in every mode.
        self._handle_page(Page(namespaces_res, list(ns_objects.values())), run, writer, refs, cluster_scope=True)
        run.listed_types += 1
        self._consume(
            stream_pages(client, namespaced, selector, workers=self._list_workers, page_size=self._page_size),
            namespaced,
            run,
            writer,
            refs,
            cluster,
            backup_id,
        )
        mode = scope.effective_cluster_scoped
        if cluster_types:
            # In auto mode the referring types must be read before the types they name, so list in order.
            ordered = cluster_listing_order(cluster_types)
            workers = 1 if mode == "auto" else self._list_workers
            cluster_selector = scope.server_selector() if mode == "on" else f"{EXCLUDE_LABEL}!=true"
            pages = stream_pages(client, ordered, cluster_selector, workers=workers, page_size=self._page_size)
            self._consume(pages, ordered, run, writer, refs if mode == "auto" else None, cluster, backup_id)

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
        run: _Run,
        writer: Any,
        refs: ReferenceCollector | None,
        cluster: str,
        backup_id: BackupId,
    ) -> None:
        failed = 0
        for item in pages:
            if isinstance(item, ListFailure):
                failed += 1
                run.errors.append({"resource": item.resource.group_resource, "error": str(item.error)})
                run.by_resource.pop(item.resource, None)
                continue
            self._handle_page(item, run, writer, refs, cluster_scope=not item.resource.namespaced)
            self._maybe_heartbeat(cluster, backup_id)
        # Used to tell "nothing could be listed" (Failed) from "some types failed" (PartiallyFailed).
        run.listed_types += len(resources) - failed

    def _handle_page(
        self, page: Page, run: _Run, writer: Any, refs: ReferenceCollector | None, cluster_scope: bool
    ) -> None:
        res = page.resource
        entries = run.by_resource.setdefault(res, [])
        if page.restarted:
            entries.clear()
        kind_key = f"{res.group}/{res.kind}" if res.group else res.kind
        api_version = res.api_version
        for obj in page.items:
            meta = obj.get("metadata") or {}
            if cluster_scope:
                # Referenced cluster objects (auto mode) are kept whatever their labels: the backup needs them.
                if res.group_resource != "namespaces":
                    if refs is not None:
                        if not refs.wants(res, obj):
                            continue
                    elif not run.scope.object_selected(obj):
                        continue
                scope_key = CLUSTER_SCOPE
            else:
                ns = meta.get("namespace", "")
                if ns not in run.namespaces or not run.scope.object_selected(obj):
                    continue
                if refs is not None:
                    refs.observe(res, obj)
                scope_key = ns
            data = canonical_json(sanitize(obj, res.kind, api_version))
            bid: BlobId = blob_id(data)
            if not writer.add(bid, data):
                run.bytes_dedup += len(data)
            run.bytes_raw += len(data)
            entries.append(
                (
                    scope_key,
                    TreeEntry(res.group, res.plural, meta.get("name", ""), res.version, res.kind, bid, len(data)),
                )
            )
            run.kinds[kind_key] += 1
        if run.progress is not None:
            run.progress(sum(run.kinds.values()), res.group_resource)

    def _write_trees(self, run: _Run, writer: Any) -> tuple[BlobId, int]:
        scopes: dict[str, list[TreeEntry]] = {}
        for entries in run.by_resource.values():
            for scope_key, entry in entries:
                scopes.setdefault(scope_key, []).append(entry)
        root: dict[str, BlobId] = {}
        for scope_key, scope_entries in scopes.items():
            tid, data = encode_tree(scope_entries)
            if not writer.add(tid, data, type="tree"):
                run.bytes_dedup += len(data)
            run.bytes_raw += len(data)
            root[scope_key] = tid
        rid, rdata = encode_root(root)
        if not writer.add(rid, rdata, type="tree"):
            run.bytes_dedup += len(rdata)
        return rid, len(root) + 1

    def _maybe_heartbeat(self, cluster: str, backup_id: BackupId) -> None:
        if time.monotonic() - self._heartbeat_at >= HEARTBEAT_EVERY_S:
            self._heartbeat_at = time.monotonic()
            self._catalog.heartbeat(cluster, backup_id, now=self._clock())
