"""The restore orchestrator: read and verify the backup, plan, then apply level by level."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from datetime import UTC, datetime
from functools import lru_cache
from typing import Any

import orjson

from chalicelib.core.ids import BlobId
from chalicelib.core.manifest import Manifest
from chalicelib.core.resources import Resource
from chalicelib.core.restore_jobs import RestoreState
from chalicelib.core.restore_options import RestoreOptions
from chalicelib.core.restore_order import CRD_RESOURCE
from chalicelib.core.restore_plan import NAMESPACES, PlanItem, Reason, RestorePlan, build_plan
from chalicelib.core.trees import CLUSTER_SCOPE, TreeEntry
from chalicelib.core.volume_facts import snapshot_handles
from chalicelib.core.volume_restore import in_region
from chalicelib.kube.errors import KubeError, WaitTimeout
from chalicelib.observability import logger
from chalicelib.repository.errors import RepositoryError
from chalicelib.restore.errors import BackupUnreadable, ClusterUnavailable, NothingToRestore
from chalicelib.restore.executor import ObjectApplier, run_parallel
from chalicelib.restore.gc_policy import rare_full_collections
from chalicelib.restore.results import ObjectResult, Outcome, RestoreResult, final_state

# Above this many objects of one collection, a dry run lists the collection instead of GETting each.
LIST_INSTEAD_OF_GET = 20

DEFAULT_CONCURRENCY = 16
CRD_TIMEOUT_S = 60.0
_VERBS = frozenset({"create", "get", "list", "update"})

Served = dict[tuple[str, str], list[Resource]]  # (group, plural) -> served versions


def _utcnow() -> datetime:
    return datetime.now(UTC)


def _iso(ts: datetime) -> str:
    return ts.strftime("%Y-%m-%dT%H:%M:%SZ")


class RestoreService:
    """Restores one backup into the cluster ``client`` talks to."""

    def __init__(
        self,
        reader: Any,
        client: Any,
        *,
        concurrency: int = DEFAULT_CONCURRENCY,
        crd_timeout: float = CRD_TIMEOUT_S,
        clock: Callable[[], datetime] = _utcnow,
        region: str | None = None,
    ) -> None:
        """``region`` is where the restore reads from (the replica's region when it reads the replica bucket): an
        EBS snapshot is restored from its copy there (``core.volume_restore.in_region``)."""
        if concurrency < 1:
            raise ValueError("concurrency must be at least 1")
        self._reader = reader
        self._client = client
        self._concurrency = concurrency
        self._crd_timeout = crd_timeout
        self._clock = clock
        self._region = region

    # -- planning ------------------------------------------------------------------------------------------------

    def plan(self, manifest: Manifest, options: RestoreOptions) -> RestorePlan:
        """What a restore would do, from the backup and the objects on the cluster; only GETs reach the cluster."""
        with rare_full_collections():  # the selection and its plan are held whole (gc_policy.py)
            return self._plan(manifest, options)

    def _plan(self, manifest: Manifest, options: RestoreOptions) -> RestorePlan:
        objects = self._resolve(self._load(manifest, options), self._served())
        handles = snapshot_handles(self._volume_snapshots(manifest))
        recorded = self._volume_snapshots(manifest)
        draft = build_plan(
            objects, options, backup_id=manifest.backup_id, snapshot_handles=handles, volume_snapshots=recorded
        )
        wanted = {(i.resource, i.namespace, i.name) for i in draft.items if i.action == "create"}
        live = self._get_all(wanted)
        if not live:
            # None of the objects it would create is there (a restore into new namespaces, or a new cluster): the
            # draft, which assumed nothing exists, is the plan. Planning again would cost as much as the draft.
            return draft
        return build_plan(
            objects,
            options,
            backup_id=manifest.backup_id,
            existing=lambda resource, namespace, name: live.get((resource.group_resource, namespace, name)),
            snapshot_handles=handles,
            volume_snapshots=recorded,
        )

    def _volume_snapshots(self, manifest: Manifest) -> list[dict[str, Any]]:
        return in_region(manifest.volume_snapshots or (), self._region)

    def _load(self, manifest: Manifest, options: RestoreOptions) -> list[tuple[Resource, dict[str, Any]]]:
        """Every object of the selected namespaces and types, read and verified before anything is applied."""
        where = f"backup {manifest.cluster}/{manifest.backup_id}"
        if manifest.etcd_only:
            raise NothingToRestore(
                f"{where} is an etcd-only backup: it holds an etcd snapshot and no Kubernetes resources, so nothing "
                f"was restored (restore etcd with: lifeboat etcd restore-plan {manifest.backup_id} --members ...)"
            )
        try:
            entries = [(scope, e) for scope, e in self._reader.walk(manifest) if _wanted(scope, e, options)]
            blobs: dict[BlobId, bytes] = dict(self._reader.read_blobs({e.blob for _, e in entries}, where=where))
        except RepositoryError as exc:
            raise BackupUnreadable(f"{where} cannot be read; nothing was restored: {exc}") from exc
        objects = []
        for scope, entry in entries:
            try:
                obj = orjson.loads(blobs[entry.blob])
            except orjson.JSONDecodeError as exc:
                raise BackupUnreadable(
                    f"{where}: blob {entry.blob} of {entry.kind} {scope}/{entry.name} is not JSON; nothing was restored"
                ) from exc
            if entry.uid and isinstance(obj.get("metadata"), dict):
                # Blobs hold no uid; the tree entry does. Owner references name owners by it (the plan keeps
                # references to restored owners, and the run re-links them to the new uids).
                obj["metadata"]["uid"] = entry.uid
            objects.append((_entry_resource(scope, entry), obj))
        return objects

    def _served(self) -> Served:
        try:
            resources = self._client.discover()
        except KubeError as exc:
            raise ClusterUnavailable(f"discovery on the target cluster failed: {exc}") from exc
        served: Served = {}
        for resource in resources:
            served.setdefault((resource.group, resource.plural), []).append(resource)
        return served

    @staticmethod
    def _resolve(
        objects: Iterable[tuple[Resource, dict[str, Any]]], served: Served
    ) -> list[tuple[Resource, dict[str, Any]]]:
        """Each object's type as the cluster serves it: the backed-up version if served, else the preferred one.

        A type served nowhere keeps its backed-up form: a CRD of this restore may define it later.
        """
        out = []
        for resource, obj in objects:
            versions = served.get((resource.group, resource.plural))
            if versions:
                same = next((r for r in versions if r.version == resource.version), None)
                if same is None:
                    same = versions[0]
                    obj = {**obj, "apiVersion": same.api_version}
                resource = same
            out.append((resource, obj))
        return out

    def _get_all(self, wanted: set[tuple[Resource, str | None, str]]) -> dict[tuple[str, str | None, str], Any]:
        """The live objects among ``wanted``: one paged list per busy collection, single GETs for the rest.

        A dry run of a large namespace would otherwise cost one GET per object.
        """
        groups: dict[tuple[Resource, str | None], set[str]] = {}
        for resource, namespace, name in wanted:
            groups.setdefault((resource, namespace), set()).add(name)
        singles: list[tuple[Resource, str | None, str]] = []
        found: dict[tuple[str, str | None, str], Any] = {}
        for (resource, namespace), names in sorted(groups.items(), key=lambda g: _sort_key((g[0][0], g[0][1], ""))):
            if len(names) < LIST_INSTEAD_OF_GET or "list" not in resource.verbs:
                singles.extend((resource, namespace, name) for name in names)
                continue
            try:
                for page in self._client.list_pages(resource.collection_path(namespace)):
                    if page.restarted:
                        found = {k: v for k, v in found.items() if k[:2] != (resource.group_resource, namespace)}
                    for obj in page.items:
                        listed = (obj.get("metadata") or {}).get("name")
                        if listed in names:
                            found[(resource.group_resource, namespace, listed)] = obj
            except KubeError:
                singles.extend((resource, namespace, name) for name in names)  # e.g. list forbidden, get allowed

        def get(key: tuple[Resource, str | None, str]) -> tuple[tuple[str, str | None, str], Any]:
            resource, namespace, name = key
            try:
                return (resource.group_resource, namespace, name), self._client.get_object(resource, name, namespace)
            except KubeError as exc:
                raise ClusterUnavailable(
                    f"cannot read {resource.group_resource} {namespace or ''}/{name}: {exc}"
                ) from exc

        with ThreadPoolExecutor(max_workers=self._concurrency) as pool:
            found.update({k: v for k, v in pool.map(get, sorted(singles, key=_sort_key)) if v is not None})
        return found

    # -- running -------------------------------------------------------------------------------------------------

    def run(
        self,
        manifest: Manifest,
        options: RestoreOptions,
        *,
        progress: Callable[[int, int], None] | None = None,
        on_result: Callable[[ObjectResult], None] | None = None,
        completed: set[str] | None = None,
        stop: Callable[[], bool] | None = None,
        on_plan: Callable[[RestorePlan], None] | None = None,
    ) -> RestoreResult:
        """Restore ``manifest`` as ``options`` say; a dry run returns the plan instead.

        ``on_result`` sees every object's outcome as it happens (on this thread), so a worker can persist progress;
        ``completed`` holds keys a previous run finished, which this one skips; ``stop`` is polled between objects
        and levels, and a true answer ends the run as Interrupted (resume it with ``completed``); ``on_plan`` sees
        the plan, with the body of every object, once the selection is read and verified and before the first write.
        Raises BackupUnreadable before any write when a blob of the selection is missing or corrupt.
        """
        with rare_full_collections():  # the selection and its plan live to the end (gc_policy.py)
            return self._run(
                manifest,
                options,
                progress=progress,
                on_result=on_result,
                completed=completed,
                stop=stop,
                on_plan=on_plan,
            )

    def _run(
        self,
        manifest: Manifest,
        options: RestoreOptions,
        *,
        progress: Callable[[int, int], None] | None,
        on_result: Callable[[ObjectResult], None] | None,
        completed: set[str] | None,
        stop: Callable[[], bool] | None,
        on_plan: Callable[[RestorePlan], None] | None,
    ) -> RestoreResult:
        started = _iso(self._clock())

        def result(state: RestoreState, **fields: Any) -> RestoreResult:
            return RestoreResult(
                backup_id=manifest.backup_id,
                cluster=manifest.cluster,
                restore_id=options.restore_id,
                state=state,
                started_at=started,
                finished_at=_iso(self._clock()),
                **fields,
            )

        if options.dry_run:
            try:
                plan = self.plan(manifest, options)
            except ClusterUnavailable as exc:
                return result(RestoreState.FAILED, message=str(exc), dry_run=True)
            return result(RestoreState.COMPLETED, plan=plan.to_dict(), dry_run=True)
        objects = self._load(manifest, options)  # the whole selection is verified before the first write
        try:
            served = self._served()
        except ClusterUnavailable as exc:
            return result(RestoreState.FAILED, message=str(exc))
        plan = build_plan(
            self._resolve(objects, served),
            options,
            backup_id=manifest.backup_id,
            snapshot_handles=snapshot_handles(self._volume_snapshots(manifest)),
            volume_snapshots=self._volume_snapshots(manifest),
        )
        if on_plan:
            on_plan(plan)
        run = _Run(plan, completed or set(), on_result, progress)
        applier = ObjectApplier(self._client, options.existing_policy)
        interrupted = False
        for level in plan.levels:
            if stop and stop():
                interrupted = True
                break
            todo = self._check_served(run.record_skips(level), served, run)
            for outcome in run_parallel(todo, applier.apply, concurrency=self._concurrency, stop=stop):
                run.record(outcome)
            if len(run.results) < run.expected:  # stop() ended the level early
                interrupted = True
                break
            if level[0].resource.group_resource == CRD_RESOURCE:
                served = self._after_crds(level, run, served)
        state = final_state(run.results, interrupted=interrupted)
        message = ""
        if applier.cluster_gone:
            message = "the cluster stopped answering; objects after that point were not attempted"
        elif interrupted:
            message = "stopped before the end; resume with the completed keys"
        fields: dict[str, Any] = {"backup_id": manifest.backup_id, "restore_id": options.restore_id}
        logger().info("restore finished", extra={**fields, "state": str(state), "counts": run.counts()})
        return result(state, results=tuple(run.results), message=message, warnings=tuple(run.warnings))

    def _after_crds(self, level: tuple[PlanItem, ...], run: _Run, served: Served) -> Served:
        """Wait until the CRDs now on the cluster are Established, then learn the types they serve."""
        in_place = {r.key for r in run.results if r.done}
        for item in level:
            if item.key not in in_place:  # failed, or skipped on purpose: nothing to wait for
                continue
            try:
                self._client.wait_for_crd_established(item.name, self._crd_timeout)
            except WaitTimeout as exc:
                run.warnings.append(f"CustomResourceDefinition {item.name}: {exc}; its objects may fail")
            except KubeError as exc:
                run.warnings.append(f"CustomResourceDefinition {item.name}: cannot check Established: {exc}")
        try:
            return self._served()
        except ClusterUnavailable as exc:
            run.warnings.append(str(exc))
            return served

    def _check_served(self, items: list[PlanItem], served: Served, run: _Run) -> list[PlanItem]:
        """Objects whose type the cluster does not serve fail at once, with the reason, instead of a bare 404."""
        if not served:
            return items
        todo = []
        for item in items:
            versions = served.get((item.resource.group, item.resource.plural))
            if versions is None:
                message = f"{item.resource.group_resource} is not served by the target cluster (no CRD or API)"
                run.record(ObjectResult.of(item, Outcome.FAILED, "type-not-served", message))
            elif item.resource.version not in {r.version for r in versions}:
                # Served in another version only since the plan was made (a CRD restored in this run).
                resource = versions[0]
                desired = {**(item.desired or {}), "apiVersion": resource.api_version}
                todo.append(replace(item, resource=resource, desired=desired))
            else:
                todo.append(item)
        return todo


class _Run:
    """Mutable bookkeeping of one run: outcomes, counters and callbacks, touched only on the caller's thread."""

    def __init__(
        self,
        plan: RestorePlan,
        completed: set[str],
        on_result: Callable[[ObjectResult], None] | None,
        progress: Callable[[int, int], None] | None,
    ) -> None:
        self.completed = completed
        self.results: list[ObjectResult] = []
        self.warnings: list[str] = []
        self.expected = 0  # objects of the levels started so far
        self._on_result = on_result
        self._progress = progress
        self._total = len(plan.items)

    def record(self, result: ObjectResult) -> None:
        self.results.append(result)
        if self._on_result is not None:
            self._on_result(result)
        if self._progress is not None:
            self._progress(len(self.results), self._total)

    def record_skips(self, level: tuple[PlanItem, ...]) -> list[PlanItem]:
        """Record the level's planned skips and already-completed objects; the items still to write."""
        self.expected += len(level)
        todo = []
        for item in level:
            if item.action == "skip":
                self.record(ObjectResult.of(item, Outcome.SKIPPED, item.reason, item.detail))
            elif item.key in self.completed:
                self.record(ObjectResult.of(item, Outcome.SKIPPED, Reason.COMPLETED, "done by an earlier run"))
            else:
                todo.append(item)
        return todo

    def counts(self) -> dict[str, int]:
        out: dict[str, int] = {}
        for result in self.results:
            out[str(result.outcome)] = out.get(str(result.outcome), 0) + 1
        return out


def _wanted(scope: str, entry: TreeEntry, options: RestoreOptions) -> bool:
    """Whether a tree entry can be in the restore at all, judged before its blob is read."""
    if not options.resource_selected(_entry_resource(scope, entry)):
        return False
    if scope != CLUSTER_SCOPE:
        return options.namespace_selected(scope)
    if (entry.group, entry.resource) == ("", "namespaces"):
        return options.namespace_selected(entry.name)
    return True


def _entry_resource(scope: str, entry: TreeEntry) -> Resource:
    return _resource(entry.group, entry.version, entry.kind, entry.resource, scope != CLUSTER_SCOPE)


@lru_cache(maxsize=4096)
def _resource(group: str, version: str, kind: str, plural: str, namespaced: bool) -> Resource:
    """One ``Resource`` per type a backup holds, shared by its entries (a restore reads thousands per type)."""
    if (group, plural) == ("", "namespaces"):
        return NAMESPACES
    return Resource(group, version, kind, plural, namespaced, _VERBS)


def _sort_key(key: tuple[Resource, str | None, str]) -> tuple[str, str, str]:
    return key[0].group_resource, key[1] or "", key[2]
