"""One verification run: restore a backup into scratch namespaces, read every object back, clean up, time it.

The restore is the restore engine's own (same plan, same actions), with every namespace of the backup mapped to a
scratch namespace and ``existing_policy: skip``, so a live object is never modified: cluster-scoped objects that
exist are left alone and only the missing ones are created (and deleted again by the cleanup). Every restored object
carries ``lifeboat.io/verification=<id>``, which is how the cleanup, and the janitor after a crash, find them.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

from chalicelib.core.dumps import DumpSpec
from chalicelib.core.manifest import Manifest
from chalicelib.core.readiness import Target, check_job, readiness, targets
from chalicelib.core.resources import Resource
from chalicelib.core.restore_check import restored_differences
from chalicelib.core.restore_options import VERIFICATION_LABEL, RestoreOptions
from chalicelib.core.restore_plan import NAMESPACES, PlanItem, RestorePlan
from chalicelib.core.trees import CLUSTER_SCOPE
from chalicelib.core.verification import DEFAULT_TIMEOUT_S, Check, scratch_namespace
from chalicelib.kube.controllers import controller_manager_running
from chalicelib.kube.errors import KubeError, NotFound
from chalicelib.repository.errors import RepositoryError
from chalicelib.restore.errors import BackupUnreadable
from chalicelib.restore.results import ObjectResult, Outcome, RestoreResult
from chalicelib.restore.service import RestoreService
from chalicelib.retry import describe
from chalicelib.verification import dumps as dump_kind
from chalicelib.verification.results import Cleanup, ObjectProblem, Progress, VerificationResult

SUCCEEDED = "Succeeded"
FAILED = "Failed"
JOBS = Resource("batch", "v1", "Job", "jobs", True, frozenset({"create", "get", "delete"}))


def _utcnow() -> datetime:
    return datetime.now(UTC)


def backup_namespaces(reader: Any, manifest: Manifest) -> list[str]:
    """Every namespace a backup holds objects of, or holds as a Namespace object."""
    names = set()
    for scope, entry in reader.walk(manifest):
        if scope != CLUSTER_SCOPE:
            names.add(scope)
        elif (entry.group, entry.resource) == ("", "namespaces"):
            names.add(entry.name)
    return sorted(names)


class VerificationRun:
    """Restores ``manifest`` through ``restore`` into the cluster ``client`` talks to, and checks what it made.

    ``start`` restores and compares; ``poll`` reads the readiness targets again (Deployments, StatefulSets, claims,
    Jobs, the user's check Jobs) where controllers run; ``finish`` cleans up and gives the result. ``run`` does the
    three in one process (the CLI and tests); the worker checkpoints between polls instead of sleeping.
    """

    def __init__(
        self,
        reader: Any,
        client: Any,
        restore: RestoreService,
        *,
        clock: Callable[[], datetime] = _utcnow,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self._reader = reader
        self._client = client
        self._restore = restore
        self._clock = clock
        self._monotonic = monotonic

    def run(
        self,
        manifest: Manifest,
        verification_id: str,
        *,
        sleep: Callable[[float], None] = time.sleep,
        poll_every_s: float = 2.0,
        **options: Any,
    ) -> VerificationResult:
        """``start`` (with ``options``: scratch_prefix, checks, wait_for_ready, timeout_s, scratch_id), ``poll``
        until nothing is left to wait for, ``finish``."""
        progress = self.start(manifest, verification_id, **options)
        while progress.waiting:
            sleep(poll_every_s)
            progress = self.poll(progress)
        return self.finish(progress)

    def start(
        self,
        manifest: Manifest,
        verification_id: str,
        *,
        scratch_prefix: str = "lbv-",
        checks: tuple[Check, ...] = (),
        wait_for_ready: bool | None = None,
        timeout_s: int = DEFAULT_TIMEOUT_S,
        scratch_id: str | None = None,
        dumps: tuple[DumpSpec, ...] | None = None,
    ) -> Progress:
        """Restore and compare every object; then what is left to wait for (nothing on a cluster without controllers).

        ``wait_for_ready`` None asks the cluster whether kube-controller-manager runs. ``scratch_id`` names the scratch
        namespaces (default the run's id): a takeover uses its own, so it never restores into namespaces the crashed
        delivery left terminating. ``dumps`` (the policy's, for the dumps kind) restores every dump of the backup
        into a scratch database once the restored workloads are ready."""
        started_at, t0 = self._clock(), self._monotonic()
        phases: dict[str, float] = {}
        plans: list[RestorePlan] = []
        mapping: dict[str, str] = {}

        def planned(plan: RestorePlan) -> None:
            phases["fetch"] = round(self._monotonic() - t0, 3)
            plans.append(plan)

        problems: list[ObjectProblem] = []
        outcome: RestoreResult | None = None
        message = ""
        try:
            scratch = scratch_id or verification_id
            mapping = {ns: scratch_namespace(scratch_prefix, scratch, ns) for ns in self._namespaces(manifest)}
            options = RestoreOptions(
                namespace_mapping=mapping,
                existing_policy="skip",
                restore_id=verification_id,
                verification_id=verification_id,
            )
            outcome = self._restore.run(manifest, options, on_plan=planned)
        except BackupUnreadable as exc:
            message = str(exc)
        phases["apply"] = round(self._monotonic() - t0 - phases.get("fetch", 0.0), 3)
        checked = skipped = 0
        items = plans[0].items if plans else ()
        created = {r.key for r in (outcome.results if outcome else ()) if r.outcome == Outcome.CREATED}
        if outcome is not None:
            message = outcome.message
            check_start = self._monotonic()
            checked, skipped = self._check(plans[0] if plans else None, outcome.results, problems)
            phases["check"] = round(self._monotonic() - check_start, 3)
        controllers = wait_for_ready if wait_for_ready is not None else controller_manager_running(self._client)
        pending: list[Target] = []
        checks_done = "objects"
        if controllers and not problems and not message:
            checks_done = "objects+readiness" + ("+checks" if checks else "")
            pending = targets(_created_triples(items, created))
            pending += self._start_checks(checks, mapping, verification_id, problems)
        elif checks and not problems and not message:
            message = (
                f"no kube-controller-manager runs on the target cluster: {len(checks)} user checks and the readiness "
                "of workloads were not checked (objects only)"
            )
            problems.append(ObjectProblem("checks", message))
        dump_entries: tuple[dict[str, Any], ...] = ()
        if dumps is not None:
            scratch = scratch_id or verification_id
            dump_entries = dump_kind.plan(manifest, dumps, mapping, scratch, controllers=bool(controllers))
        now = self._clock()
        return Progress(
            verification_id=verification_id,
            backup_id=manifest.backup_id,
            cluster=manifest.cluster,
            started_at=_iso(started_at),
            deadline=_iso(started_at + timedelta(seconds=timeout_s)),
            elapsed_s=round(self._monotonic() - t0, 3),
            checkpoint_at=_iso(now),
            namespaces=tuple(mapping.values()),
            cluster_objects=tuple(_cluster_object(i) for i in items if _created_cluster_object(i, created)),
            pending=tuple(t.to_dict() for t in pending),
            phases=phases,
            checked=checked,
            skipped=skipped,
            problems=tuple(problems),
            checks=checks_done,
            message=message,
            dumps=dump_entries,
        )

    def poll(self, progress: Progress) -> Progress:
        """Read every pending target once; ready ones are dropped, failed ones become problems, and past the deadline
        every pending one becomes a problem."""
        t0, now = self._monotonic(), self._clock()
        waited = progress.elapsed_s + max(0.0, (now - _parse(progress.checkpoint_at)).total_seconds())
        still: list[dict[str, str]] = []
        problems = list(progress.problems)
        ready_counts = dict(progress.ready)
        for data in progress.pending:
            target = Target.from_dict(data)
            try:
                obj = self._client.get_object(_resource(target), target.name, target.namespace)
            except KubeError as exc:
                problems.append(ObjectProblem(target.key, f"{target.key} could not be read: {describe(exc)}"))
                continue
            ready, why = readiness(target, obj)
            if ready is False:
                problems.append(ObjectProblem(target.key, _check_failed(target, why)))
            elif ready is None:
                still.append(data)
            else:
                ready_counts[target.plural] = ready_counts.get(target.plural, 0) + 1
        message = progress.message
        if still and now >= _parse(progress.deadline):
            for data in still:
                target = Target.from_dict(data)
                problems.append(ObjectProblem(target.key, f"{target.key} was not ready before the run's timeout"))
            message = f"timed out after {int(waited)} s with {len(still)} objects not ready"
            still = []
        entries = self._poll_dumps(progress, still, problems, now >= _parse(progress.deadline))
        phases = dict(progress.phases)
        elapsed = round(waited + (self._monotonic() - t0), 3)
        phases["ready"] = round(elapsed - sum(v for k, v in phases.items() if k not in ("ready", "cleanup")), 3)
        return replace(
            progress,
            pending=tuple(still),
            problems=tuple(problems),
            message=message,
            phases=phases,
            elapsed_s=elapsed,
            checkpoint_at=_iso(self._clock()),
            ready=ready_counts,
            dumps=entries,
        )

    def _poll_dumps(
        self, progress: Progress, still: list[dict[str, str]], problems: list[ObjectProblem], timed_out: bool
    ) -> tuple[dict[str, Any], ...]:
        """The dumps kind: its Jobs start once nothing else is pending (the databases are ready), then are watched."""
        entries = progress.dumps
        if still or problems or not dump_kind.waiting(entries):
            return entries
        if not dump_kind.running(entries):
            return dump_kind.start(self._client, self._reader.repo, progress.cluster, progress.backup_id, entries)
        return dump_kind.poll(self._client, entries, timed_out=timed_out)

    def finish(self, progress: Progress) -> VerificationResult:
        """Clean up (always) and the result; the RTO is the time to the last check passing, None when one failed."""
        passed = not progress.problems and not progress.message and not progress.pending
        cleanup_start = self._monotonic()
        cleanup = self.cleanup(progress.namespaces, progress.cluster_objects)
        phases = {**progress.phases, "cleanup": round(self._monotonic() - cleanup_start, 3)}
        return VerificationResult(
            verification_id=progress.verification_id,
            backup_id=progress.backup_id,
            cluster=progress.cluster,
            state=SUCCEEDED if passed else FAILED,
            started_at=progress.started_at,
            finished_at=_iso(self._clock()),
            rto_s=progress.elapsed_s if passed else None,
            phases=phases,
            checked=progress.checked,
            skipped=progress.skipped,
            problems=progress.problems,
            checks=progress.checks,
            message=progress.message or _summary(list(progress.problems)),
            cleanup=cleanup,
            ready=dict(progress.ready),
            dumps=progress.dumps,
        )

    def _start_checks(
        self, checks: tuple[Check, ...], mapping: dict[str, str], run_id: str, problems: list[ObjectProblem]
    ) -> list[Target]:
        """Create one Job per user check in its scratch namespace; the Jobs are readiness targets."""
        started = []
        labels = {VERIFICATION_LABEL: run_id}
        for index, check in enumerate(checks):
            namespace = mapping.get(check.namespace)
            if namespace is None:
                problems.append(
                    ObjectProblem(
                        f"check {index}", f"check {check.name}: namespace {check.namespace!r} is not in the backup"
                    )
                )
                continue
            name = f"lifeboat-check-{index}"
            try:
                self._client.create(JOBS, check_job(check, namespace=namespace, name=name, labels=labels), namespace)
            except KubeError as exc:
                problems.append(ObjectProblem(f"check {index}", f"check {check.name} could not start: {describe(exc)}"))
                continue
            started.append(Target("batch", "v1", "jobs", "Job", namespace, name, check=check.name))
        return started

    def _namespaces(self, manifest: Manifest) -> list[str]:
        try:
            return backup_namespaces(self._reader, manifest)
        except RepositoryError as exc:
            where = f"backup {manifest.cluster}/{manifest.backup_id}"
            raise BackupUnreadable(f"{where} cannot be read; nothing was restored: {exc}") from exc

    def _check(
        self, plan: RestorePlan | None, results: Iterable[ObjectResult], problems: list[ObjectProblem]
    ) -> tuple[int, int]:
        """Read every created object back and compare it with what was sent; (checked, skipped)."""
        sent = {item.key: item for item in (plan.items if plan else ())}
        checked = skipped = 0
        for result in results:
            if result.outcome == Outcome.SKIPPED:
                skipped += 1
                continue
            if result.outcome == Outcome.FAILED:
                problems.append(ObjectProblem(result.key, f"{result.key} was not restored: {result.message}"))
                continue
            item = sent.get(result.key)
            if item is None or item.desired is None:
                continue
            checked += 1
            problem = self._compare(item)
            if problem is not None:
                problems.append(problem)
        return checked, skipped

    def _compare(self, item: PlanItem) -> ObjectProblem | None:
        try:
            live = self._client.get_object(item.resource, item.name, item.namespace)
        except KubeError as exc:
            return ObjectProblem(item.key, f"{item.key} could not be read back: {describe(exc)}")
        if live is None:
            return ObjectProblem(item.key, f"{item.key} was created but is gone from the cluster")
        assert item.desired is not None
        differences = restored_differences(item.desired, live)
        if not differences:
            return None
        first = differences[0].describe()
        more = f" (and {len(differences) - 1} more)" if len(differences) > 1 else ""
        return ObjectProblem(
            item.key, f"{item.key} differs from the backup: {first}{more}", tuple(d.to_dict() for d in differences)
        )

    def cleanup(self, namespaces: Iterable[str], cluster_objects: Iterable[dict[str, str]] = ()) -> Cleanup:
        """Delete the scratch namespaces and the cluster-scoped objects this run created; never anything else."""
        errors: list[str] = []
        deleted_objects = 0
        for obj in cluster_objects:
            resource = Resource(obj["group"], obj["version"], obj["kind"], obj["plural"], False, frozenset({"delete"}))
            if self._delete(resource, obj["name"], None, errors):
                deleted_objects += 1
        deleted_namespaces = 0
        for name in namespaces:
            if self._delete(NAMESPACES, name, None, errors):
                deleted_namespaces += 1
        return Cleanup(deleted_namespaces, deleted_objects, tuple(errors))

    def _delete(self, resource: Any, name: str, namespace: str | None, errors: list[str]) -> bool:
        try:
            self._client.delete(resource, name, namespace, propagation_policy="Background")
        except NotFound:
            return False  # already gone (a namespace the restore did not create, or a second cleanup)
        except KubeError as exc:
            errors.append(f"{resource.group_resource}/{name} was not deleted: {describe(exc)}")
            return False
        return True


def _summary(problems: list[ObjectProblem]) -> str:
    if not problems:
        return ""
    more = f"; {len(problems) - 1} more objects failed" if len(problems) > 1 else ""
    return problems[0].problem + more


def _iso(ts: datetime) -> str:
    return ts.strftime("%Y-%m-%dT%H:%M:%SZ")


def _parse(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def _created_cluster_object(item: PlanItem, created: set[str]) -> bool:
    return item.namespace is None and item.resource.group_resource != "namespaces" and item.key in created


def _cluster_object(item: PlanItem) -> dict[str, str]:
    r = item.resource
    return {"group": r.group, "version": r.version, "kind": r.kind, "plural": r.plural, "name": item.name}


def _created_triples(items: Iterable[PlanItem], created: set[str]) -> list[tuple[str, str, str, str, str | None, str]]:
    return [
        (i.resource.group, i.resource.version, i.resource.plural, i.resource.kind, i.namespace, i.name)
        for i in items
        if i.key in created
    ]


def _resource(target: Target) -> Resource:
    return Resource(target.group, target.version, target.kind, target.plural, True, frozenset({"get"}))


def _check_failed(target: Target, why: str) -> str:
    return f"check {target.check} failed: {why}" if target.check else why
