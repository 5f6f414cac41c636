"""What a restore did: one outcome per object, and the overall state (one of ``core.restore_jobs.RUN_STATES``)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from chalicelib.core.restore_jobs import RestoreState
from chalicelib.core.restore_plan import SATISFIED_SKIPS, PlanItem


class Outcome(StrEnum):
    CREATED = "created"
    UPDATED = "updated"
    SKIPPED = "skipped"
    FAILED = "failed"


@dataclass(frozen=True)
class ObjectResult:
    key: str  # restore_plan.object_key of the target object: stable across resumed runs
    api_version: str
    kind: str
    namespace: str | None
    name: str
    outcome: Outcome
    reason: str  # a plan Reason for skips, a failure code (invalid, forbidden, not-found, ...) for failures
    message: str = ""
    diff: tuple[str, ...] = ()

    @classmethod
    def of(
        cls, item: PlanItem, outcome: Outcome, reason: str, message: str = "", diff: tuple[str, ...] = ()
    ) -> ObjectResult:
        return cls(
            key=item.key,
            api_version=item.resource.api_version,
            kind=item.resource.kind,
            namespace=item.namespace,
            name=item.name,
            outcome=outcome,
            reason=str(reason),
            message=message,
            diff=diff,
        )

    @property
    def done(self) -> bool:
        """Whether a resumed restore may skip this object."""
        return self.outcome in (Outcome.CREATED, Outcome.UPDATED) or (
            self.outcome == Outcome.SKIPPED and self.reason in SATISFIED_SKIPS
        )

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "key": self.key,
            "apiVersion": self.api_version,
            "kind": self.kind,
            "namespace": self.namespace,
            "name": self.name,
            "outcome": str(self.outcome),
            "reason": self.reason,
        }
        if self.message:
            out["message"] = self.message
        if self.diff:
            out["diff"] = list(self.diff)
        return out

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ObjectResult:
        return cls(
            key=data["key"],
            api_version=data["apiVersion"],
            kind=data["kind"],
            namespace=data.get("namespace"),
            name=data["name"],
            outcome=Outcome(data["outcome"]),
            reason=data["reason"],
            message=data.get("message", ""),
            diff=tuple(data.get("diff") or ()),
        )


@dataclass(frozen=True)
class RestoreResult:
    backup_id: str
    cluster: str  # the cluster the backup was taken of
    restore_id: str | None
    state: RestoreState
    started_at: str
    finished_at: str
    results: tuple[ObjectResult, ...] = ()
    message: str = ""  # why the restore failed or stopped, when it did as a whole
    warnings: tuple[str, ...] = ()  # e.g. a CRD that did not become Established in time
    plan: dict[str, Any] | None = None  # the plan, for a dry run
    dry_run: bool = False

    @property
    def failures(self) -> list[ObjectResult]:
        return [r for r in self.results if r.outcome == Outcome.FAILED]

    def counts(self) -> dict[str, int]:
        out = {str(o): 0 for o in Outcome}
        for result in self.results:
            out[str(result.outcome)] += 1
        return out

    def to_dict(self, *, include_results: bool = True) -> dict[str, Any]:
        out: dict[str, Any] = {
            "backup_id": self.backup_id,
            "cluster": self.cluster,
            "restore_id": self.restore_id,
            "state": str(self.state),
            "dry_run": self.dry_run,
            "started_at": self.started_at,
            "finished_at": self.finished_at,
            "counts": self.counts(),
            "failures": [f.to_dict() for f in self.failures],
        }
        if self.message:
            out["message"] = self.message
        if self.warnings:
            out["warnings"] = list(self.warnings)
        if include_results:
            out["results"] = [r.to_dict() for r in self.results]
        if self.plan is not None:
            out["plan"] = self.plan
        return out


def final_state(results: list[ObjectResult] | tuple[ObjectResult, ...], *, interrupted: bool = False) -> RestoreState:
    """Completed without failures; Failed when failures left nothing in place; PartiallyFailed otherwise."""
    if interrupted:
        return RestoreState.INTERRUPTED
    failed = any(r.outcome == Outcome.FAILED for r in results)
    if not failed:
        return RestoreState.COMPLETED
    return RestoreState.PARTIALLY_FAILED if any(r.done for r in results) else RestoreState.FAILED
