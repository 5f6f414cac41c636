"""One verification run: restore a backup into scratch namespaces, read every object back, clean up, time it.

The restore is the restore engine's own (same plan, same actions), with every namespace of the backup mapped to a
scratch namespace and ``existing_policy: skip``, so a live object is never modified: cluster-scoped objects that
exist are left alone and only the missing ones are created (and deleted again by the cleanup). Every restored object
carries ``lifeboat.io/verification=<id>``, which is how the cleanup, and the janitor after a crash, find them.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from chalicelib.core.manifest import Manifest
from chalicelib.core.restore_check import restored_differences
from chalicelib.core.restore_options import RestoreOptions
from chalicelib.core.restore_plan import NAMESPACES, PlanItem, RestorePlan
from chalicelib.core.trees import CLUSTER_SCOPE
from chalicelib.core.verification import scratch_namespace
from chalicelib.kube.errors import KubeError, NotFound
from chalicelib.repository.errors import RepositoryError
from chalicelib.restore.errors import BackupUnreadable
from chalicelib.restore.results import ObjectResult, Outcome, RestoreResult
from chalicelib.restore.service import RestoreService
from chalicelib.retry import describe

SUCCEEDED = "Succeeded"
FAILED = "Failed"


def _utcnow() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True)
class ObjectProblem:
    """A restored object that is not what the backup holds, or that could not be restored or read back."""

    key: str
    problem: str  # one sentence
    differences: tuple[dict[str, Any], ...] = ()

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"key": self.key, "problem": self.problem}
        if self.differences:
            out["differences"] = list(self.differences)
        return out


@dataclass(frozen=True)
class Cleanup:
    namespaces: int = 0
    cluster_objects: int = 0
    errors: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        return {"namespaces": self.namespaces, "cluster_objects": self.cluster_objects, "errors": list(self.errors)}


@dataclass(frozen=True)
class VerificationResult:
    verification_id: str
    backup_id: str
    cluster: str
    state: str  # Succeeded | Failed
    started_at: str
    finished_at: str
    rto_s: float | None  # start to the last check passing; None when a check failed
    phases: dict[str, float] = field(default_factory=dict)  # seconds per phase: fetch, apply, check, cleanup
    checked: int = 0  # objects restored and read back
    skipped: int = 0  # objects the plan left alone (existing cluster-scoped ones, system objects, ...)
    problems: tuple[ObjectProblem, ...] = ()
    checks: str = "objects"  # what was checked: objects only (no controllers), or readiness too
    message: str = ""
    cleanup: Cleanup = field(default_factory=Cleanup)

    def to_dict(self) -> dict[str, Any]:
        return {
            "verification_id": self.verification_id,
            "backup_id": self.backup_id,
            "cluster": self.cluster,
            "state": self.state,
            "started_at": self.started_at,
            "finished_at": self.finished_at,
            "rto_s": self.rto_s,
            "phases": dict(self.phases),
            "checked": self.checked,
            "skipped": self.skipped,
            "problems": [p.to_dict() for p in self.problems],
            "checks": self.checks,
            "message": self.message,
            "cleanup": self.cleanup.to_dict(),
        }


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
    """Restores ``manifest`` through ``restore`` into the cluster ``client`` talks to, and checks what it made."""

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

    def run(self, manifest: Manifest, verification_id: str, *, scratch_prefix: str = "lbv-") -> VerificationResult:
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
            mapping = {ns: scratch_namespace(scratch_prefix, verification_id, ns) for ns in self._namespaces(manifest)}
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
        if outcome is not None:
            message = outcome.message
            check_start = self._monotonic()
            checked, skipped = self._check(plans[0] if plans else None, outcome.results, problems)
            phases["check"] = round(self._monotonic() - check_start, 3)
        passed = outcome is not None and not problems and not message
        rto = round(self._monotonic() - t0, 3) if passed else None
        cleanup_start = self._monotonic()
        cleanup = self.cleanup(mapping.values(), plans[0].items if plans else (), outcome)
        phases["cleanup"] = round(self._monotonic() - cleanup_start, 3)
        return VerificationResult(
            verification_id=verification_id,
            backup_id=manifest.backup_id,
            cluster=manifest.cluster,
            state=SUCCEEDED if passed else FAILED,
            started_at=_iso(started_at),
            finished_at=_iso(self._clock()),
            rto_s=rto,
            phases=phases,
            checked=checked,
            skipped=skipped,
            problems=tuple(problems),
            message=message or _summary(problems),
            cleanup=cleanup,
        )

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

    def cleanup(self, namespaces: Iterable[str], items: Iterable[PlanItem], outcome: RestoreResult | None) -> Cleanup:
        """Delete the scratch namespaces and the cluster-scoped objects this run created; never anything else."""
        created = {r.key for r in (outcome.results if outcome else ()) if r.outcome == Outcome.CREATED}
        errors: list[str] = []
        deleted_objects = 0
        for item in items:
            cluster_object = item.namespace is None and item.resource.group_resource != "namespaces"
            if cluster_object and item.key in created and self._delete(item.resource, item.name, None, errors):
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
