"""A verification run's values: its result, the problems it found, its cleanup, and its progress between phases."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from chalicelib.verification import dumps as dump_kind


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
    ready: dict[str, int] = field(default_factory=dict)  # restored objects that became ready, per plural
    dumps: tuple[dict[str, Any], ...] = ()  # the dumps kind: one entry per dump (verification/dumps.py)

    def to_dict(self) -> dict[str, Any]:
        return {
            "ready": dict(self.ready),
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


@dataclass(frozen=True)
class Progress:
    """A run between its phases: kept in the catalog while it waits for readiness across invocations."""

    verification_id: str
    backup_id: str
    cluster: str
    started_at: str
    deadline: str  # wall time after which waiting gives up (the run's timeout)
    elapsed_s: float  # RTO clock so far (cleanup excluded), at ``checkpoint_at``
    checkpoint_at: str
    namespaces: tuple[str, ...] = ()  # scratch namespaces to delete
    cluster_objects: tuple[dict[str, str], ...] = ()  # cluster-scoped objects the restore created: to delete
    pending: tuple[dict[str, str], ...] = ()  # readiness targets not yet ready (core.readiness.Target dicts)
    phases: dict[str, float] = field(default_factory=dict)
    checked: int = 0
    skipped: int = 0
    problems: tuple[ObjectProblem, ...] = ()
    checks: str = "objects"
    message: str = ""
    ready: dict[str, int] = field(default_factory=dict)  # targets that became ready, per plural
    dumps: tuple[dict[str, Any], ...] = ()  # the dumps kind's entries (verification/dumps.py), started once ready

    @property
    def waiting(self) -> bool:
        if self.problems or self.message:
            return False
        return bool(self.pending) or dump_kind.waiting(self.dumps)

    def to_dict(self) -> dict[str, Any]:
        out = {name: getattr(self, name) for name in self.__dataclass_fields__}
        out["problems"] = [p.to_dict() for p in self.problems]
        for name in ("namespaces", "cluster_objects", "pending", "dumps"):
            out[name] = list(out[name])
        return out

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Progress:
        values = {name: data[name] for name in cls.__dataclass_fields__ if name in data}
        values["problems"] = tuple(
            ObjectProblem(str(p["key"]), str(p["problem"]), tuple(p.get("differences") or ()))
            for p in data.get("problems") or ()
        )
        for name in ("namespaces", "cluster_objects", "pending", "dumps"):
            values[name] = tuple(data.get(name) or ())
        values["elapsed_s"] = float(values.get("elapsed_s", 0.0))
        values["phases"] = {k: float(v) for k, v in (data.get("phases") or {}).items()}
        values["ready"] = {k: int(v) for k, v in (data.get("ready") or {}).items()}
        for name in ("checked", "skipped"):
            values[name] = int(values.get(name, 0))
        return cls(**values)
