"""The daily maintenance run: exclusive lease -> retention (manifests, then records) -> mark -> sweep (packs, then
volume snapshots) -> check (the backups that reach a damaged blob are marked damaged)."""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from chalicelib.aws.events import Publisher, announce
from chalicelib.catalog.backups import MAX_DAMAGED_BLOBS
from chalicelib.catalog.errors import RecordNotFound
from chalicelib.core.events import Event, maintenance_completed, maintenance_failed
from chalicelib.core.ids import BlobId
from chalicelib.maintenance.errors import RepositoryBusy
from chalicelib.maintenance.gc import DEFAULT_SAFETY_MARGIN, CollectionReport, collect_garbage
from chalicelib.maintenance.lock import RepositoryLock
from chalicelib.maintenance.repair import RepairReport, repair_blobs
from chalicelib.maintenance.retention import Expired, RetentionService
from chalicelib.maintenance.snapshots import SnapshotCollector, SnapshotReport
from chalicelib.observability import logger
from chalicelib.repository.errors import RepositoryNotFound

if TYPE_CHECKING:
    from chalicelib.catalog.backups import BackupCatalog
    from chalicelib.repository.check import CheckReport, Problem

# Blobs the daily check re-reads at random (and their packs' headers): a bounded cost each day, the whole repository
# covered over time; a damaged blob is reported in the metric RepositoryDamagedBlobs, which alarms.
DEFAULT_CHECK_BLOBS = 2000
_DAMAGE = frozenset({"blob_corrupt", "tree_corrupt", "pack_corrupt", "pack_missing", "blob_missing"})
_REPORTED_PROBLEMS = 50

# Long enough for the backups running at 03:00 to finish (new ones cannot start while we wait), short enough to
# leave most of the 15-minute Lambda for the collection itself.
DEFAULT_WAIT_S = 300


def _utcnow() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True)
class MaintenanceReport:
    status: str  # done | busy
    message: str = ""
    expired: list[Expired] = field(default_factory=list)
    collection: CollectionReport | None = None
    # The sampled read-data check: blobs_checked, damaged_blobs, problems (the first few, as dicts)
    check: dict[str, Any] | None = None
    snapshots: SnapshotReport | None = None

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        if self.collection is not None:
            # Key lists can be long; the log and the API answer carry counts, the CLI prints the details.
            data["collection"]["packs_deleted"] = len(self.collection.packs_deleted)
            data["collection"]["index_files_deleted"] = len(self.collection.index_files_deleted)
            data["collection"]["artifacts_deleted"] = len(self.collection.artifacts_deleted)
        return data


class MaintenanceService:
    def __init__(
        self,
        lock: RepositoryLock,
        retention: RetentionService,
        open_repository: Callable[[], Any],
        *,
        clock: Callable[[], datetime] = _utcnow,
        safety_margin: timedelta = DEFAULT_SAFETY_MARGIN,
        wait_s: float = DEFAULT_WAIT_S,
        check_blobs: int = DEFAULT_CHECK_BLOBS,
        snapshots: SnapshotCollector | None = None,
        catalog: BackupCatalog | None = None,
        repair: Callable[[str], Any] | None = None,
        events: Publisher | None = None,
    ) -> None:
        """``snapshots`` also collects the volume snapshots no remaining backup references; ``catalog`` is where
        the backups that reach a damaged blob the check found are marked damaged. ``repair`` (a registered cluster's
        name -> its Kubernetes client) lets the check re-upload a damaged blob from the cluster's current object
        when that is identical (``repair.py``). ``events`` announces each pass that is not a dry run (Maintenance
        Completed, or Failed when it stopped on an error)."""
        self._lock = lock
        self._retention = retention
        self._open_repository = open_repository
        self._clock = clock
        self._margin = safety_margin
        self._wait_s = wait_s
        self._check_blobs = check_blobs
        self._snapshots = snapshots
        self._catalog = catalog
        self._repair = repair
        self._events = events

    def run(self, *, dry_run: bool = False) -> MaintenanceReport:
        """One maintenance pass; ``busy`` (nothing done) when the lease could not be taken in time.

        A dry run deletes nothing, so it takes no lease and never delays a backup.
        """
        if dry_run:
            return self._pass(dry_run=True, check_lease=None)
        try:
            report = self._leased_pass()
        except Exception as exc:
            announce(self._events, maintenance_failed(f"{type(exc).__name__}: {exc}"))
            raise
        announce(self._events, maintenance_event(report))
        return report

    def _leased_pass(self) -> MaintenanceReport:
        holder = f"maintenance-{uuid.uuid4().hex[:12]}"
        try:
            held = self._lock.acquire_exclusive(holder, wait_s=self._wait_s)
        except RepositoryBusy as exc:
            logger().warning("maintenance skipped: repository busy", extra={"reason": str(exc)})
            return MaintenanceReport(status="busy", message=str(exc))
        try:
            return self._pass(dry_run=False, check_lease=held.check)
        finally:
            held.release()

    def _pass(self, *, dry_run: bool, check_lease: Callable[[], None] | None) -> MaintenanceReport:
        try:
            repo = self._open_repository()
        except RepositoryNotFound:
            return MaintenanceReport(status="done", message="no repository yet")
        plans = self._retention.plans()
        excluded: set[tuple[str, str]] = set()
        if dry_run:
            expired = [Expired(p.policy, p.cluster, d.backup_id, "would_expire") for p in plans for d in p.dropped]
            excluded = {(e.cluster, e.backup_id) for e in expired}
        else:
            expired = self._retention.expire(repo, plans, check_lease=check_lease)
        collection = collect_garbage(
            repo,
            now=self._clock(),
            safety_margin=self._margin,
            dry_run=dry_run,
            exclude_manifests=excluded,
            check_lease=check_lease,
        )
        snapshots = None
        if self._snapshots is not None:
            from chalicelib.repository import RepositoryReader

            snapshots = self._snapshots.collect(
                RepositoryReader(repo),
                now=self._clock(),
                dry_run=dry_run,
                exclude_manifests=excluded,
                check_lease=check_lease,
            )
        check = None if dry_run or self._check_blobs <= 0 else self._sampled_check(repo)
        report = MaintenanceReport(
            status="done", expired=expired, collection=collection, snapshots=snapshots, check=check
        )
        logger().info("maintenance finished", extra={"dry_run": dry_run, "report": report.to_dict()})
        return report

    def _sampled_check(self, repo: Any) -> dict[str, Any]:
        """``repo check --read-data`` on a random sample of blobs, after the collection (under the same lease)."""
        from chalicelib.repository import RepositoryReader, check_repository

        result = check_repository(RepositoryReader(repo), read_data=True, sample=self._check_blobs)
        damaged = [p for p in result.problems if p.kind in _DAMAGE]
        repair = self._repair_damaged(repo, result, damaged)
        backups = self._mark_damaged(result, [p for p in damaged if p.blob_id not in repair.repaired])
        if damaged:
            logger().error(
                "repository check found damaged data",
                extra={"damaged": len(damaged), "first": asdict(damaged[0]), "damaged_backups": backups},
            )
        return {
            "blobs_checked": result.blobs_checked,
            "damaged_blobs": len(damaged),
            "problems": [asdict(p) for p in result.problems[:_REPORTED_PROBLEMS]],
            "damaged_backups": backups,
            "repaired_blobs": len(repair.repaired),
            "repaired": repair.repaired,
            "not_repaired": repair.not_repaired,
        }

    def _repair_damaged(self, repo: Any, result: CheckReport, damaged: list[Problem]) -> RepairReport:
        """Re-upload what can be re-uploaded, then clear the mark of the backups whose damaged blobs all were."""
        blobs = [BlobId(p.blob_id) for p in damaged if p.blob_id is not None]
        if self._repair is None or not blobs or result.reach is None:
            return RepairReport()
        repair = repair_blobs(repo, result.reach, blobs, self._repair)
        if repair.repaired:
            logger().warning("repository check repaired damaged blobs", extra={"repaired": repair.repaired})
            still = set(blobs) - set(repair.repaired)
            affected = result.reach.backups_reaching([BlobId(b) for b in repair.repaired])
            for (cluster, backup_id), hits in sorted(affected.items()):
                if self._catalog is None or set(result.reach.backups_reaching(still).get((cluster, backup_id), ())):
                    continue  # still damaged elsewhere: marked below with what remains
                with contextlib.suppress(RecordNotFound):
                    self._catalog.clear_damaged(cluster, backup_id, repaired=[str(b) for b in hits], now=self._clock())
        return repair

    def _mark_damaged(self, result: CheckReport, damaged: list[Problem]) -> list[dict[str, Any]]:
        """Mark every backup that reaches one of the ``damaged`` blobs, from the check's own walk."""
        blobs = [BlobId(p.blob_id) for p in damaged if p.blob_id is not None]
        if not blobs or result.reach is None:
            return []
        affected = result.reach.backups_reaching(blobs)
        now = self._clock()
        marked = []
        for (cluster, backup_id), hits in sorted(affected.items()):
            entry: dict[str, Any] = {"cluster": cluster, "backup_id": backup_id, "count": len(hits)}
            entry["blobs"] = [str(b) for b in hits[:MAX_DAMAGED_BLOBS]]
            if self._catalog is not None:
                # A backup in the repository with no record (a manual import): the report still names it.
                with contextlib.suppress(RecordNotFound):
                    self._catalog.mark_damaged(cluster, backup_id, blobs=entry["blobs"], count=len(hits), now=now)
            marked.append(entry)
        return marked


def maintenance_event(report: MaintenanceReport) -> Event:
    """The Maintenance Completed event of a pass: what it expired, deleted and found damaged."""
    collection, check = report.collection, report.check or {}
    return maintenance_completed(
        status=report.status,
        message=report.message,
        expired=sum(1 for e in report.expired if e.outcome == "expired"),
        packs_deleted=len(collection.packs_deleted) if collection is not None else 0,
        bytes_freed=collection.bytes_deleted if collection is not None else 0,
        snapshots_deleted=len(report.snapshots.swept) if report.snapshots is not None else 0,
        blobs_checked=check.get("blobs_checked") if report.check is not None else None,
        damaged_blobs=check.get("damaged_blobs") if report.check is not None else None,
    )


def publish_maintenance_metrics(report: MaintenanceReport) -> None:
    from aws_lambda_powertools.metrics import MetricUnit

    from chalicelib.observability import metrics

    m = metrics()
    m.add_metric(name="MaintenanceSkipped", unit=MetricUnit.Count, value=1 if report.status == "busy" else 0)
    m.add_metric(
        name="BackupsExpired", unit=MetricUnit.Count, value=sum(1 for e in report.expired if e.outcome == "expired")
    )
    if report.collection is not None:
        m.add_metric(name="PacksDeleted", unit=MetricUnit.Count, value=len(report.collection.packs_deleted))
        m.add_metric(name="BytesFreed", unit=MetricUnit.Bytes, value=report.collection.bytes_deleted)
        m.add_metric(name="GarbageCollectionDuration", unit=MetricUnit.Seconds, value=report.collection.seconds)
    if report.check is not None:
        m.add_metric(name="RepositoryDamagedBlobs", unit=MetricUnit.Count, value=report.check["damaged_blobs"])
        m.add_metric(
            name="RepositoryRepairedBlobs", unit=MetricUnit.Count, value=report.check.get("repaired_blobs", 0)
        )
    m.flush_metrics()
