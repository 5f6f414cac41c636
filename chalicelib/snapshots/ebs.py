"""EBS direct snapshots of a backup's claims: create (found again by tag on redelivery), settle, copy to the replica
region; and the EventBridge "EBS Snapshot Notification" and the poller that settle what the catalog holds pending."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import replace
from datetime import datetime
from typing import Any

from chalicelib.aws.ec2 import Ec2Snapshot, Ec2Snapshots
from chalicelib.aws.errors import AwsError
from chalicelib.aws.events import Publisher, announce
from chalicelib.catalog.ebs_snapshots import COPY, SNAPSHOT, EbsSnapshotCatalog, EbsSnapshotEntry
from chalicelib.core.events import snapshot_copy_event
from chalicelib.core.volume_ebs import (
    BACKUP_ID_TAG,
    CLUSTER_TAG,
    COMPLETED,
    COPY_OF_TAG,
    FAILED,
    PENDING,
    SNAPSHOT_TAG,
    SnapshotEvent,
    copy_tags,
    parse_event,
    snapshot_state,
    snapshot_tags,
)
from chalicelib.core.volume_snapshots import EBS, READY, SnapshotCopy, VolumeRecord
from chalicelib.core.volume_snapshots import FAILED as RECORD_FAILED
from chalicelib.core.volume_snapshots import PENDING as RECORD_PENDING
from chalicelib.retry import is_transient


class EbsSnapshots:
    """One backup's EBS snapshots in the primary region, and their copies in the replica region when there is one."""

    def __init__(
        self,
        primary: Ec2Snapshots,
        catalog: EbsSnapshotCatalog,
        *,
        clock: Callable[[], datetime],
        replica: Ec2Snapshots | None = None,
        replica_kms_key_id: str | None = None,
    ) -> None:
        self._primary = primary
        self._catalog = catalog
        self._clock = clock
        self._replica = replica
        self._replica_kms_key_id = replica_kms_key_id

    @property
    def region(self) -> str:
        return self._primary.region

    @property
    def copy_region(self) -> str | None:
        return self._replica.region if self._replica is not None else None

    def create(self, records: Iterable[VolumeRecord], cluster: str, backup_id: str) -> list[VolumeRecord]:
        """Start the snapshot of every pending EBS record; one a redelivered job started already is found by tag."""
        return [self._create(r, cluster, backup_id) if _waits_for_create(r) else r for r in records]

    def observe(self, records: Iterable[VolumeRecord], now: str, cluster: str, backup_id: str) -> list[VolumeRecord]:
        """Every pending EBS record as its snapshot stands: the catalog's settled state (an event's) first, else
        EC2's; a completed snapshot is copied to the replica region before its record is ready."""
        out = []
        for record in records:
            if _waits_for_create(record):
                record = self._create(record, cluster, backup_id)
            if record.type == EBS and record.state == RECORD_PENDING and record.snapshot_handle:
                try:
                    record = self._observe(record, now, cluster, backup_id)
                except AwsError as exc:
                    if not is_transient(exc):
                        record = replace(record, state=RECORD_FAILED, error=f"EBS snapshot unreadable: {exc}")
            out.append(record)
        return out

    def _create(self, record: VolumeRecord, cluster: str, backup_id: str) -> VolumeRecord:
        tags = snapshot_tags(cluster, backup_id, record.namespace, record.pvc, record.snapshot_name)
        try:
            found = self._primary.tagged(SNAPSHOT_TAG, record.snapshot_name)
            snapshot = found[0] if found else self._primary.create(record.volume_id, tags, _description(record))
        except AwsError as exc:
            if is_transient(exc):
                return record  # tried again at the next look
            error = f"could not create the EBS snapshot of {record.volume_id}: {exc}"
            return replace(record, state=RECORD_FAILED, error=error)
        self._catalog.add(
            EbsSnapshotEntry(
                cluster, backup_id, snapshot.snapshot_id, self.region, SNAPSHOT, record.namespace, record.pvc
            ),
            now=self._clock(),
        )
        return replace(record, snapshot_handle=snapshot.snapshot_id, region=self.region)

    def _observe(self, record: VolumeRecord, now: str, cluster: str, backup_id: str) -> VolumeRecord:
        entry = self._catalog.get(cluster, backup_id, record.snapshot_handle)
        state, error = (entry.state, entry.error) if entry is not None else (PENDING, "")
        seen: Ec2Snapshot | None = None
        if state == PENDING:
            seen = self._primary.describe([record.snapshot_handle]).get(record.snapshot_handle)
            if seen is None:
                state, error = FAILED, f"EBS snapshot {record.snapshot_handle} is gone"
            else:
                state, error = snapshot_state(seen.state), seen.message
            if state != PENDING:
                self._catalog.settle(cluster, backup_id, record.snapshot_handle, state, now=self._clock(), error=error)
        if state == FAILED:
            why = error or "EC2 reported the snapshot failed"
            return replace(record, state=RECORD_FAILED, error=f"EBS snapshot {record.snapshot_handle} failed: {why}")
        if state != COMPLETED:
            return record
        if seen is None:
            seen = self._primary.describe([record.snapshot_handle]).get(record.snapshot_handle)
        size = f"{seen.size_gib}Gi" if seen is not None and seen.size_gib else record.restore_size
        ready = replace(record, state=READY, restore_size=size, ready_at=now)
        return self._copy(ready, cluster, backup_id)

    def _copy(self, record: VolumeRecord, cluster: str, backup_id: str) -> VolumeRecord:
        replica = self._replica
        if replica is None or record.copies:
            return record
        source = f"{self.region}/{record.snapshot_handle}"
        tags = copy_tags(
            snapshot_tags(cluster, backup_id, record.namespace, record.pvc, record.snapshot_name),
            self.region,
            record.snapshot_handle,
        )
        try:
            found = replica.tagged(COPY_OF_TAG, source)
            copy = (
                found[0]
                if found
                else replica.copy_from(
                    record.snapshot_handle, self.region, tags, _description(record), self._replica_kms_key_id
                )
            )
        except AwsError as exc:
            # The backup stands without its copy (as it stands before its blobs are replicated); the record says why.
            return replace(record, copies=(SnapshotCopy(replica.region, error=f"copy not started: {exc}"),))
        self._catalog.add(
            EbsSnapshotEntry(
                cluster,
                backup_id,
                copy.snapshot_id,
                replica.region,
                COPY,
                record.namespace,
                record.pvc,
                source_snapshot_id=record.snapshot_handle,
                source_region=self.region,
            ),
            now=self._clock(),
        )
        return replace(record, copies=(SnapshotCopy(replica.region, copy.snapshot_id),))


def _waits_for_create(record: VolumeRecord) -> bool:
    return record.type == EBS and record.state == RECORD_PENDING and not record.snapshot_handle


def _description(record: VolumeRecord) -> str:
    return f"Lifeboat backup of {record.namespace}/{record.pvc} ({record.snapshot_name})"


class SnapshotEvents:
    """Settles catalog entries from "EBS Snapshot Notification" events, and by polling the ones still pending."""

    def __init__(
        self,
        catalog: EbsSnapshotCatalog,
        ec2: Callable[[str], Ec2Snapshots],
        *,
        clock: Callable[[], datetime],
        events: Publisher | None = None,
    ) -> None:
        """``events`` announces each copy into the replica region once it settles (Snapshot Copy Completed/Failed)."""
        self._catalog = catalog
        self._ec2 = ec2  # region -> that region's adapter
        self._clock = clock
        self._events = events

    def handle(self, event: dict[str, Any]) -> dict[str, Any]:
        """One EventBridge event: the entry it settles, or why it was ignored (not a snapshot event, not ours)."""
        parsed = parse_event(event)
        if parsed is None:
            return {"outcome": "ignored", "reason": "not an EBS snapshot event"}
        owner = self._owner(parsed)
        if owner is None:
            return {"outcome": "ignored", "reason": f"{parsed.snapshot_id} is not a backup's snapshot"}
        cluster, backup_id = owner
        entry = self._settle(cluster, backup_id, parsed.snapshot_id, parsed.state, parsed.cause)
        if entry is None:
            return {"outcome": "ignored", "reason": f"{parsed.snapshot_id} is not recorded in the catalog"}
        return {"outcome": entry.state, "snapshot_id": entry.snapshot_id, "backup_id": backup_id, "kind": entry.kind}

    def _owner(self, event: SnapshotEvent) -> tuple[str, str] | None:
        # The event names only the snapshot; its tags say whose it is (no tag: not ours).
        seen = self._ec2(event.region).describe([event.snapshot_id]).get(event.snapshot_id)
        if seen is None or not seen.tags.get(BACKUP_ID_TAG) or not seen.tags.get(CLUSTER_TAG):
            return None
        return seen.tags[CLUSTER_TAG], seen.tags[BACKUP_ID_TAG]

    def poll(self, limit: int = 200) -> dict[str, int]:
        """Settle pending entries (copies above all: the backup's wait polls its own snapshots) from EC2's state."""
        counts = {"checked": 0, COMPLETED: 0, FAILED: 0}
        for entry in self._catalog.pending(limit):
            counts["checked"] += 1
            try:
                seen = self._ec2(entry.region).describe([entry.snapshot_id]).get(entry.snapshot_id)
            except AwsError:
                continue  # looked at again next time
            state = FAILED if seen is None else snapshot_state(seen.state)
            if state == PENDING:
                continue
            error = "the snapshot is gone" if seen is None else seen.message
            self._settle(entry.cluster, entry.backup_id, entry.snapshot_id, state, error)
            counts[state] += 1
        return counts

    def _settle(
        self, cluster: str, backup_id: str, snapshot_id: str, state: str, error: str
    ) -> EbsSnapshotEntry | None:
        """Settle one entry; the call that settles a copy announces it (an event and a poll may both see it)."""
        entry, won = self._catalog.settle_once(cluster, backup_id, snapshot_id, state, now=self._clock(), error=error)
        if won and entry is not None and entry.kind == COPY:
            event = snapshot_copy_event(
                cluster,
                backup_id,
                snapshot_id=entry.snapshot_id,
                region=entry.region,
                source_snapshot_id=entry.source_snapshot_id,
                source_region=entry.source_region,
                namespace=entry.namespace,
                pvc=entry.pvc,
                failed=entry.state == FAILED,
                error=entry.error,
            )
            announce(self._events, event)
        return entry
