"""The database dumps of a backup's wait: start each dump's Job, look at them, and put their records into the manifest.

A dump waits beside the backup's volume snapshots (``volumes.py``): its Job is created once the objects are written,
the draft keeps a ``DumpState`` per dump, and each look settles the Jobs that ended. A dump that fails, cannot start
or outlasts its timeout is recorded as failed in the manifest's ``dumps`` and among its errors, naming the dump, so
the backup is PartiallyFailed; the objects and every other dump are kept.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any

from chalicelib.core.dumps import DumpSpec
from chalicelib.core.events import Event, dump_event
from chalicelib.core.manifest import Manifest
from chalicelib.kube.errors import KubeError
from chalicelib.repository.repo import MANIFEST_NAME, Repository
from chalicelib.retry import is_transient
from chalicelib.snapshots.dump_jobs import RUNNING, DumpJobs, PendingDump
from chalicelib.snapshots.dumps import DumpError, DumpRecord

DUMP_RESOURCE = "dumps"  # the ``resource`` of a failed dump among the manifest's errors


@dataclass(frozen=True)
class DumpState:
    """One dump of a waiting backup: its Job still running (``pending``), or its outcome (``record``)."""

    pending: PendingDump | None = None
    record: DumpRecord | None = None

    @property
    def settled(self) -> bool:
        return self.record is not None

    def to_dict(self) -> dict[str, Any]:
        if self.record is not None:
            return {"record": self.record.to_manifest()}
        assert self.pending is not None
        return {"pending": self.pending.to_dict()}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> DumpState:
        if "record" in data:
            return cls(record=DumpRecord(**{**data["record"]}))
        return cls(pending=PendingDump.from_dict(data["pending"]))


def start_dumps(
    jobs: DumpJobs | None, cluster: str, backup_id: str, specs: Iterable[DumpSpec], now: datetime
) -> list[DumpState]:
    """A Job per dump; a dump that cannot start is settled as failed at once."""
    out: list[DumpState] = []
    for spec in specs:
        if jobs is None:
            error = f"dump {spec.namespace}/{spec.name}: database dumps are not configured in this deployment"
            out.append(DumpState(record=DumpRecord.failed(spec, error)))
            continue
        try:
            out.append(DumpState(pending=jobs.start(cluster, backup_id, spec, now)))
        except DumpError as exc:
            out.append(DumpState(record=DumpRecord.failed(spec, str(exc))))
    return out


def observe_dumps(jobs: DumpJobs, states: Sequence[DumpState], now: datetime) -> tuple[list[DumpState], str]:
    """The states after one look, and why the cluster could not be reached ("" when it could): such a look leaves
    the dumps pending for the next one (until their deadline, when ``time_out_dumps`` settles them)."""
    out: list[DumpState] = []
    unreachable = ""
    for state in states:
        if state.pending is None or unreachable:
            out.append(state)
            continue
        try:
            phase, error = jobs.observe(state.pending, now)
            out.append(state if phase == RUNNING else DumpState(record=jobs.settle(state.pending, phase, error)))
        except KubeError as exc:
            if not is_transient(exc):
                raise
            unreachable = f"cluster unreachable: {exc}"
            out.append(state)
    return out, unreachable


def time_out_dumps(jobs: DumpJobs | None, states: Sequence[DumpState], why: str = "") -> list[DumpState]:
    """Settle every dump still pending as failed (the backup's wait is over); its Job is deleted when possible."""
    out: list[DumpState] = []
    for state in states:
        if state.pending is None:
            out.append(state)
            continue
        error = why or f"the Job {state.pending.job} did not finish within {state.pending.spec.timeout_s}s"
        if jobs is None:
            where = f"dump {state.pending.spec.namespace}/{state.pending.spec.name}"
            out.append(DumpState(record=DumpRecord.failed(state.pending.spec, f"{where}: {error}")))
            continue
        try:
            out.append(DumpState(record=jobs.settle(state.pending, "failed", error)))
        except KubeError:
            where = f"dump {state.pending.spec.namespace}/{state.pending.spec.name}"
            out.append(DumpState(record=DumpRecord.failed(state.pending.spec, f"{where}: {error}")))
    return out


def all_dumps_settled(states: Iterable[DumpState]) -> bool:
    return all(s.settled for s in states)


def with_dumps(manifest: Manifest, states: Sequence[DumpState]) -> Manifest:
    """The manifest with its dump records, and each failed dump among its errors (PartiallyFailed)."""
    records = [s.record for s in states if s.record is not None]
    if not records:
        return manifest
    failed = [{"resource": DUMP_RESOURCE, "error": r.error} for r in records if r.state != "completed"]
    errors = [*manifest.errors, *failed]
    counts = {**manifest.counts, "errors": len(errors), "dumps": sum(1 for r in records if r.state == "completed")}
    return replace(manifest, dumps=[r.to_manifest() for r in records], errors=errors, counts=counts)


def dump_events(manifest: Manifest) -> list[Event]:
    """A Dump Completed or Dump Failed event for each dump the committed ``manifest`` records."""
    directory = Repository.manifest_key(manifest.cluster, manifest.backup_id)[: -len(MANIFEST_NAME)]
    events = []
    for d in manifest.dumps or ():
        completed = d.get("state") == "completed"
        events.append(
            dump_event(
                cluster=manifest.cluster,
                backup_id=manifest.backup_id,
                policy=manifest.policy,
                name=str(d["name"]),
                engine=str(d["engine"]),
                namespace=str(d["namespace"]),
                failed=not completed,
                key=directory + str(d["key"]) if completed else None,
                size=d.get("size") if completed else None,
                sha256=d.get("sha256") if completed else None,
                duration_s=d.get("duration_s") if completed else None,
                engine_version=d.get("version") if completed else None,
                error=None if completed else str(d.get("error", "")),
            )
        )
    return events
