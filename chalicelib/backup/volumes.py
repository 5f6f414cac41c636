"""The volume stage of a backup: snapshot its claims, wait for them across invocations, then commit (``commit.py``).

The packs, index and trees are durable before this stage starts, so waiting costs only a small draft: the manifest
as it will be committed (without its volume records) and one record per claim, stored once as a checkpoint object
(``checkpoints/<cluster>/<backup id>/_volumes/draft``). A ``volumes`` message on the backup queue, sent with a
delay, looks at the snapshots again; no invocation sleeps while a storage system takes its snapshots. When every
snapshot is ready or has failed, or the policy's ``ready_timeout`` has passed, the manifest is committed with the
records; a failed or timed-out snapshot makes the backup PartiallyFailed, naming the claim.

EBS direct snapshots (``snapshots/ebs.py``) wait the same way; they need EC2, not the cluster. A cluster that
cannot be reached during the wait is looked at again until the deadline, and its pending claims then fail naming
the endpoint that could not be reached.

Database dump Jobs (``dumps.py``) wait in the same draft: started with the snapshots, looked at on each look, the
draft stored anew when one settles (its Job is deleted then), and the commit waits for the last of them.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Any

import orjson

from chalicelib.aws.events import Publisher, announce
from chalicelib.backup.commit import REJECTED, Commit, commit_manifest, iso
from chalicelib.backup.dumps import (
    DumpState,
    all_dumps_settled,
    dump_events,
    observe_dumps,
    start_dumps,
    time_out_dumps,
    with_dumps,
)
from chalicelib.backup.errors import CheckpointError
from chalicelib.backup.sharded.checkpoints import backup_checkpoints_prefix
from chalicelib.catalog.errors import StaleState
from chalicelib.core.dumps import DumpSpec
from chalicelib.core.jobs import BackupJob, ClusterRef, VolumesMessage
from chalicelib.core.manifest import Manifest
from chalicelib.core.models import TERMINAL, BackupRecord
from chalicelib.core.scope import BackupScope
from chalicelib.core.volume_snapshots import (
    AUTO,
    CSI,
    EBS,
    SETTLED,
    VolumeRecord,
    VolumeSettings,
    all_settled,
    plan_claims,
    time_out,
    volume_errors,
)
from chalicelib.repository.errors import ObjectExists, ObjectNotFound, StorageError
from chalicelib.retry import is_transient
from chalicelib.snapshots.csi import CsiSnapshots
from chalicelib.snapshots.dump_jobs import DumpJobs
from chalicelib.snapshots.ebs import EbsSnapshots

DEFAULT_POLL_DELAY_S = 30


@dataclass(frozen=True)
class Draft:
    """A backup waiting for its volume snapshots: the manifest to commit, the claims' records, the deadline."""

    manifest: Manifest
    records: tuple[VolumeRecord, ...]
    deadline: str  # ISO-8601 UTC
    ready_timeout_s: int
    dumps: tuple[DumpState, ...] = ()  # the backup's database dump Jobs (``dumps.py``)

    def encode(self) -> bytes:
        return orjson.dumps(
            {
                "manifest": orjson.loads(self.manifest.to_json()),
                "records": [r.to_dict() for r in self.records],
                "deadline": self.deadline,
                "ready_timeout_s": self.ready_timeout_s,
                "dumps": [d.to_dict() for d in self.dumps],
            }
        )

    @classmethod
    def decode(cls, data: bytes) -> Draft:
        doc = orjson.loads(data)
        return cls(
            manifest=Manifest.from_json(orjson.dumps(doc["manifest"])),
            records=tuple(VolumeRecord.from_dict(r) for r in doc["records"]),
            deadline=str(doc["deadline"]),
            ready_timeout_s=int(doc["ready_timeout_s"]),
            dumps=tuple(DumpState.from_dict(d) for d in doc.get("dumps") or ()),
        )


def draft_key(cluster: str, backup_id: str) -> str:
    # "_volumes" cannot be a namespace's segment (namespaces have no "_"), so it never meets a shard's checkpoints.
    return f"{backup_checkpoints_prefix(cluster, backup_id)}_volumes/draft"


def with_volumes(manifest: Manifest, records: tuple[VolumeRecord, ...] | list[VolumeRecord]) -> Manifest:
    """The manifest with its volume records, and the failed claims among its errors."""
    errors = [*manifest.errors, *volume_errors(records)]
    counts = {**manifest.counts, "errors": len(errors), "volume_snapshots": sum(1 for r in records if r.snapshot_name)}
    return replace(manifest, volume_snapshots=[r.to_dict() for r in records], errors=errors, counts=counts)


class VolumeStage:
    """Snapshots a backup's claims and commits it once they are settled, through as many invocations as needed."""

    def __init__(
        self,
        catalog: Any,
        queue: Any,
        open_repository: Callable[[], Any],
        connect: Callable[[ClusterRef], Any],
        *,
        clock: Callable[[], datetime],
        poll_delay_s: int = DEFAULT_POLL_DELAY_S,
        snapshots: Callable[[Any], CsiSnapshots] = CsiSnapshots,
        ebs: Callable[[], EbsSnapshots | None] | None = None,
        dump_jobs: Callable[[Any], DumpJobs] | None = None,
        events: Publisher | None = None,
    ) -> None:
        self._catalog = catalog
        self._queue = queue
        self._open_repository = open_repository
        self._connect = connect
        self._clock = clock
        self._poll_delay_s = poll_delay_s
        self._snapshots = snapshots
        self._ebs = ebs
        self._dump_jobs = dump_jobs
        self._events = events

    def start(
        self,
        ref: ClusterRef,
        scope: BackupScope,
        settings: VolumeSettings,
        record: BackupRecord,
        manifest: Manifest,
        *,
        client: Any,
        repo: Any,
        writer: Any,
        namespaces: list[str],
        finished_at: datetime | None = None,
        check_reach: bool = False,
        worker: str | None = None,
        dumps: tuple[DumpSpec, ...] = (),
    ) -> Commit | None:
        """Snapshot the claims ``manifest``'s backup holds and commit now if they are all settled (the commit, with
        ``check_reach`` and the fencing ``worker`` token as ``commit_manifest`` takes them); None when the backup now
        waits for them."""
        records = self._snapshot(settings, record, client, scope, namespaces) if settings.enabled else []
        jobs = self._dump_jobs(client) if self._dump_jobs is not None and dumps else None
        states = start_dumps(jobs, record.cluster, record.backup_id, dumps, self._clock())
        if all_settled(records) and all_dumps_settled(states):
            return commit_manifest(
                self._catalog,
                repo,
                writer,
                with_dumps(with_volumes(manifest, records), states),
                clock=self._clock,
                finished_at=finished_at,
                check_reach=check_reach,
                worker=worker,
                on_recorded=self._announce_dumps,
            )
        # The wait lasts until the snapshots' timeout, or the last dump Job's deadline when that is later.
        deadline = max(
            [self._clock() + timedelta(seconds=settings.ready_timeout_s if records else 0)]
            + [s.pending.deadline for s in states if s.pending is not None]
        )
        self._store(Draft(manifest, tuple(records), iso(deadline), settings.ready_timeout_s, tuple(states)), repo)
        self._queue.send(VolumesMessage(ref, record.backup_id).to_dict(), delay_s=self._poll_delay_s)
        self._catalog.heartbeat(record.cluster, record.backup_id, now=self._clock(), worker=worker)
        return None

    def waiting(self, repo: Any, cluster: str, backup_id: str) -> bool:
        """Whether the backup has been handed to this stage already (its draft is stored)."""
        return self._load(repo, cluster, backup_id) is not None

    def adopt(self, job: BackupJob, record: BackupRecord) -> BackupRecord | None:
        """A takeover of a backup that was waiting for its snapshots: send the look it lost; None without a draft."""
        if self._load(self._open_repository(), record.cluster, record.backup_id) is None:
            return None
        self._queue.send(VolumesMessage(job.cluster, record.backup_id).to_dict())
        return self._catalog.heartbeat(record.cluster, record.backup_id, now=self._clock())  # type: ignore[no-any-return]

    def resume(self, msg: VolumesMessage) -> tuple[BackupRecord | None, str]:
        """Look at a waiting backup's snapshots again: (record, committed | rejected | waiting | duplicate)."""
        cluster, backup_id = msg.cluster.name, msg.backup_id
        record: BackupRecord = self._catalog.get(cluster, backup_id)
        if record.state in TERMINAL:
            return record, "duplicate"
        repo = self._open_repository()
        draft = self._load(repo, cluster, backup_id)
        if draft is None:
            return record, "rejected"
        records, unreachable = self._observe_csi(msg, list(draft.records))
        ebs = self._ebs() if self._ebs is not None and any(r.type != CSI for r in records) else None
        if ebs is not None:
            records = ebs.observe(records, iso(self._clock()), cluster, backup_id)
        states, dumps_unreachable = self._observe_dumps(msg, list(draft.dumps))
        settled = all_settled(records) and all_dumps_settled(states)
        if not settled and iso(self._clock()) < draft.deadline:
            if states != list(draft.dumps):
                # A settled dump's Job is deleted and its upload completed: the next look must not do it again.
                self._replace(replace(draft, records=tuple(records), dumps=tuple(states)), repo)
            self._catalog.heartbeat(cluster, backup_id, now=self._clock())
            self._queue.send(msg.to_dict(), delay_s=self._poll_delay_s)
            return record, "waiting"
        records = [time_out(r, draft.ready_timeout_s, unreachable if r.type == CSI else "") for r in records]
        states = self._time_out_dumps(msg, states, dumps_unreachable)
        from chalicelib.repository import RepositoryWriter

        writer = RepositoryWriter(repo, known=())
        writer.finish()  # nothing to pack: the draft's index files are written; this only opens the commit
        try:
            # A wait may outlast the repository lease of the backup's first invocation: check what it reaches.
            done = commit_manifest(
                self._catalog,
                repo,
                writer,
                with_dumps(with_volumes(draft.manifest, records), states),
                clock=self._clock,
                check_reach=True,
                on_recorded=self._announce_dumps,
            )
        except StaleState:
            return self._catalog.get(cluster, backup_id), "duplicate"
        return done.record, "rejected" if done.outcome == REJECTED else "committed"

    def _snapshot(
        self, settings: VolumeSettings, record: BackupRecord, client: Any, scope: BackupScope, namespaces: list[str]
    ) -> list[VolumeRecord]:
        csi = self._snapshots(client)
        # EC2 clients only for a mode that may use them.
        ebs = self._ebs() if self._ebs is not None and settings.mode in (EBS, AUTO) else None
        claims = csi.claims(scope, namespaces)
        records = plan_claims(
            settings,
            record.backup_id,
            claims,
            csi.classes(),
            ebs_region=ebs.region if ebs is not None else None,
            copy_region=ebs.copy_region if ebs is not None else None,
        )
        records = csi.create(records, record.backup_id)
        records = csi.observe(records, iso(self._clock()), record.backup_id)
        if ebs is not None:
            records = ebs.create(records, record.cluster, record.backup_id)
            records = ebs.observe(records, iso(self._clock()), record.cluster, record.backup_id)
        return records

    def _announce_dumps(self, record: BackupRecord, manifest: Manifest) -> None:
        """Each dump's event, once the catalog recorded the manifest holding its record (once per backup: a dump
        settled in a look that died before storing its draft is settled again, so the settle step could repeat)."""
        for event in dump_events(manifest):
            announce(self._events, event)

    def _observe_dumps(self, msg: VolumesMessage, states: list[DumpState]) -> tuple[list[DumpState], str]:
        """The dumps after one look at their Jobs, and why the cluster could not be reached ("" when it could)."""
        if all_dumps_settled(states) or self._dump_jobs is None:
            return states, ""
        try:
            client = self._connect(msg.cluster)
        except Exception as exc:
            if not is_transient(exc):
                raise
            return states, f"cluster unreachable: {exc}"
        try:
            return observe_dumps(self._dump_jobs(client), states, self._clock())
        finally:
            close = getattr(client, "close", None)
            if close is not None:
                close()

    def _time_out_dumps(self, msg: VolumesMessage, states: list[DumpState], unreachable: str) -> list[DumpState]:
        if all_dumps_settled(states):
            return states
        if unreachable or self._dump_jobs is None:
            return time_out_dumps(None, states, unreachable)
        try:
            client = self._connect(msg.cluster)
        except Exception as exc:
            if not is_transient(exc):
                raise
            return time_out_dumps(None, states, f"cluster unreachable: {exc}")
        try:
            return time_out_dumps(self._dump_jobs(client), states)
        finally:
            close = getattr(client, "close", None)
            if close is not None:
                close()

    def _observe_csi(self, msg: VolumesMessage, records: list[VolumeRecord]) -> tuple[list[VolumeRecord], str]:
        """The CSI records as they stand, and why the cluster could not be reached ("" when it could): a cluster
        that cannot be reached leaves them pending for the next look instead of failing the message."""
        if not any(r.type == CSI and r.state not in SETTLED for r in records):
            return records, ""
        try:
            client = self._connect(msg.cluster)
        except Exception as exc:
            if not is_transient(exc):
                raise
            return records, f"cluster unreachable: {exc}"
        try:
            csi = self._snapshots(client)
            seen = csi.observe(records, iso(self._clock()), msg.backup_id)
            endpoint = getattr(client, "server", msg.cluster.name)
            why = getattr(csi, "unreachable", None)
            return seen, f"cluster unreachable at {endpoint} ({why})" if why else ""
        finally:
            close = getattr(client, "close", None)
            if close is not None:
                close()

    def _store(self, draft: Draft, repo: Any) -> None:
        key = draft_key(draft.manifest.cluster, draft.manifest.backup_id)
        try:
            repo.store.put(key, draft.encode(), create_only=True)
        except ObjectExists:
            pass  # a takeover of this backup stored it first; the records are the same claims and names
        except StorageError as exc:
            raise CheckpointError(f"storing {key} failed: {exc}") from exc

    def _replace(self, draft: Draft, repo: Any) -> None:
        """Store the draft anew: a checkpoint, not part of the repository format, so it may be overwritten."""
        key = draft_key(draft.manifest.cluster, draft.manifest.backup_id)
        try:
            repo.store.put(key, draft.encode(), create_only=False)
        except StorageError as exc:
            raise CheckpointError(f"storing {key} failed: {exc}") from exc

    def _load(self, repo: Any, cluster: str, backup_id: str) -> Draft | None:
        key = draft_key(cluster, backup_id)
        try:
            return Draft.decode(repo.store.get(key))
        except ObjectNotFound:
            return None
        except StorageError as exc:
            raise CheckpointError(f"reading {key} failed: {exc}") from exc
