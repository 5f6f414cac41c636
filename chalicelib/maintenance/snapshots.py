"""Volume snapshot collection: delete the CSI snapshots no remaining backup references, on every registered cluster.

Runs in the daily maintenance under the exclusive repository lease, after retention has deleted the manifests it
drops, like pack collection. Mark: the snapshots the remaining manifests record (``repository/reach.py``'s
``volume_snapshots_of``). Sweep: every VolumeSnapshot and VolumeSnapshotContent labelled with a backup id (the
backup made it) is deleted when no remaining manifest of that cluster is that backup, no remaining manifest
records its storage handle, the backup's record is not still running (a backup waiting for its snapshots has no
manifest yet), and it is older than the safety margin. That covers an expired backup's snapshots and orphans alike
(a backup that failed, or whose manifest never landed). The content's storage snapshot is deleted too unless its
class said ``Retain`` (kept in the content's annotation): the class's deletionPolicy is honoured.

EBS direct snapshots are swept the same way in each region (the primary and the replica): every snapshot tagged
with a backup id whose cluster has no remaining manifest of that backup, whose id no remaining manifest records
(as the snapshot or as a copy), whose backup is not running, and which is older than the margin, is deleted
(``ec2:DeleteSnapshot``).
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Iterable
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from functools import partial
from typing import Any

from chalicelib.aws.ec2 import Ec2Snapshots
from chalicelib.aws.errors import AwsError
from chalicelib.catalog.errors import RecordNotFound
from chalicelib.core.jobs import ClusterRef
from chalicelib.core.models import BackupState
from chalicelib.core.volume_ebs import BACKUP_ID_TAG, CLUSTER_TAG
from chalicelib.core.volume_snapshots import BACKUP_ID_LABEL, DELETION_POLICY_ANNOTATION
from chalicelib.kube.errors import KubeError
from chalicelib.repository.errors import RepositoryError
from chalicelib.repository.reach import volume_snapshots_of
from chalicelib.snapshots.csi import CsiSnapshots

DEFAULT_SNAPSHOT_MARGIN = timedelta(hours=24)
RUNNING = (BackupState.PENDING, BackupState.RUNNING)
SNAPSHOT, CONTENT, EBS_SNAPSHOT = "VolumeSnapshot", "VolumeSnapshotContent", "EBSSnapshot"


@dataclass(frozen=True)
class SweptSnapshot:
    """What the sweep did with one snapshot object."""

    cluster: str
    kind: str  # SNAPSHOT or CONTENT
    namespace: str
    name: str
    backup_id: str
    outcome: str  # deleted | would_delete | failed
    storage: str = ""  # for a content: deleted | retained (its class said Retain)
    error: str = ""
    region: str = ""  # for an EBS snapshot (``name`` is its id)


@dataclass(frozen=True)
class SnapshotReport:
    referenced: int  # snapshots the remaining manifests record
    swept: tuple[SweptSnapshot, ...] = ()
    kept_young: int = 0
    kept_running: int = 0
    unreachable: tuple[str, ...] = ()  # clusters that could not be listed: nothing of theirs was deleted


class SnapshotCollector:
    """Marks the snapshots remaining backups record and sweeps the rest from each registered cluster."""

    def __init__(
        self,
        clusters: Callable[[], Iterable[ClusterRef]],
        connect: Callable[[ClusterRef], Any],
        backups: Any,
        *,
        safety_margin: timedelta = DEFAULT_SNAPSHOT_MARGIN,
        ebs: Callable[[], Iterable[Ec2Snapshots]] | None = None,
    ) -> None:
        """``ebs`` gives the EC2 adapters of the regions holding EBS snapshots (the primary and the replica)."""
        self._clusters = clusters
        self._connect = connect
        self._backups = backups
        self._margin = safety_margin
        self._ebs = ebs

    def collect(
        self,
        reader: Any,
        *,
        now: datetime,
        dry_run: bool = False,
        exclude_manifests: Collection[tuple[str, str]] = (),
        check_lease: Callable[[], None] | None = None,
    ) -> SnapshotReport:
        check = check_lease or (lambda: None)
        live = [m for m in reader.list_backups() if m not in set(exclude_manifests)]
        try:
            manifests = [reader.load_manifest(cluster, backup_id) for cluster, backup_id in live]
        except RepositoryError as exc:
            # Without every manifest we cannot know what is referenced: delete nothing.
            return SnapshotReport(referenced=0, unreachable=(f"manifests unreadable: {exc}",))
        referenced = volume_snapshots_of(manifests)
        handles = {ref.snapshot_handle for ref in referenced if ref.snapshot_handle}
        sweep = _Sweep(set(live), handles, self._backups, now - self._margin, dry_run)
        unreachable = []
        for ref in self._clusters():
            check()
            try:
                client = self._connect(ref)
            except Exception as exc:  # noqa: BLE001 - one cluster's credentials must not stop the others' sweep
                unreachable.append(f"{ref.name}: {exc}")
                continue
            try:
                sweep.cluster(ref.name, CsiSnapshots(client))
            except KubeError as exc:
                unreachable.append(f"{ref.name}: {exc}")
            finally:
                close = getattr(client, "close", None)
                if close is not None:
                    close()
        for ec2 in self._ebs() if self._ebs is not None else ():
            check()
            try:
                sweep.region(ec2)
            except AwsError as exc:
                unreachable.append(f"EC2 {ec2.region}: {exc}")
        return SnapshotReport(
            referenced=len(referenced),
            swept=tuple(sweep.swept),
            kept_young=sweep.young,
            kept_running=sweep.running,
            unreachable=tuple(unreachable),
        )


class _Sweep:
    def __init__(
        self, live: set[tuple[str, str]], handles: set[str], backups: Any, older_than: datetime, dry_run: bool
    ) -> None:
        self._live = live
        self._handles = handles
        self._backups = backups
        self._older_than = older_than
        self._dry_run = dry_run
        self.swept: list[SweptSnapshot] = []
        self.young = 0
        self.running = 0

    def cluster(self, cluster: str, csi: CsiSnapshots) -> None:
        # Snapshot objects first: their contents are Retain, so each one's content is swept below, in this run.
        for obj in csi.labelled_snapshots():
            meta = obj.get("metadata") or {}
            if self._dead(cluster, obj, ""):
                name, namespace = str(meta.get("name")), str(meta.get("namespace"))
                self._do(cluster, SNAPSHOT, namespace, name, obj, partial(csi.delete_snapshot, namespace, name))
        for obj in csi.labelled_contents():
            meta = obj.get("metadata") or {}
            source = (obj.get("spec") or {}).get("source") or {}
            handle = str((obj.get("status") or {}).get("snapshotHandle") or source.get("snapshotHandle") or "")
            if self._dead(cluster, obj, handle):
                name = str(meta.get("name"))
                keep = (meta.get("annotations") or {}).get(DELETION_POLICY_ANNOTATION) == "Retain"
                storage = "retained" if keep else "deleted"
                self._do(
                    cluster, CONTENT, "", name, obj, partial(csi.delete_content, name, delete_storage=not keep), storage
                )

    def region(self, ec2: Ec2Snapshots) -> None:
        for snap in ec2.tagged(BACKUP_ID_TAG):
            cluster, backup_id = snap.tags.get(CLUSTER_TAG, ""), snap.tags.get(BACKUP_ID_TAG, "")
            if not cluster or not self._dead_backup(cluster, backup_id, snap.snapshot_id, snap.started_at):
                continue
            swept = SweptSnapshot(
                cluster, EBS_SNAPSHOT, "", snap.snapshot_id, backup_id, "would_delete", region=ec2.region
            )
            if not self._dry_run:
                try:
                    ec2.delete(snap.snapshot_id)
                    swept = replace(swept, outcome="deleted")
                except AwsError as exc:
                    swept = replace(swept, outcome="failed", error=str(exc))
            self.swept.append(swept)

    def _dead(self, cluster: str, obj: dict[str, Any], handle: str) -> bool:
        meta = obj.get("metadata") or {}
        backup_id = str((meta.get("labels") or {}).get(BACKUP_ID_LABEL) or "")
        return self._dead_backup(cluster, backup_id, handle, str(meta.get("creationTimestamp") or ""))

    def _dead_backup(self, cluster: str, backup_id: str, handle: str, created: str) -> bool:
        if not backup_id or (cluster, backup_id) in self._live or (handle and handle in self._handles):
            return False
        if not created or datetime.fromisoformat(created.replace("Z", "+00:00")) > self._older_than:
            self.young += 1
            return False
        try:
            state = self._backups.get(cluster, backup_id).state
        except RecordNotFound:
            state = None
        if state in RUNNING:
            self.running += 1
            return False
        return True

    def _do(
        self,
        cluster: str,
        kind: str,
        namespace: str,
        name: str,
        obj: dict[str, Any],
        delete: Callable[[], None],
        storage: str = "",
    ) -> None:
        backup_id = str(((obj.get("metadata") or {}).get("labels") or {}).get(BACKUP_ID_LABEL) or "")
        if self._dry_run:
            self.swept.append(SweptSnapshot(cluster, kind, namespace, name, backup_id, "would_delete", storage))
            return
        try:
            delete()
        except KubeError as exc:
            self.swept.append(SweptSnapshot(cluster, kind, namespace, name, backup_id, "failed", storage, str(exc)))
            return
        self.swept.append(SweptSnapshot(cluster, kind, namespace, name, backup_id, "deleted", storage))
