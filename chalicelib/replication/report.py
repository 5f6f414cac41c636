"""The 3-2-1 report: per policy, how many copies of its latest backup exist, on how many kinds of storage, where.

The rule as applied here: at least 3 copies of the data, on at least 2 kinds of storage, at least 1 off-region. As
in the rule's usual statement the live cluster is the first copy (kind ``kubernetes``); the backup copies are the
primary repository and the replica repository (kind ``s3``, the replica counted only once the catalog says
Replicated) and volume snapshots when the backup has them (``ebs-snapshot`` / ``csi-snapshot``, one copy per
region; an EBS snapshot's copy in another region only once the catalog says it completed). Off-region means a
backup copy in a region other than the primary repository's.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass
from typing import Any

from chalicelib.core.models import BackupRecord, ReplicaState
from chalicelib.replication.status import committed_records, replica_state

MIN_COPIES = 3
MIN_KINDS = 2
MIN_OFF_REGION = 1
NO_POLICY = "(none)"


@dataclass(frozen=True)
class Copy:
    name: str  # cluster, primary, replica, volume-snapshots
    kind: str  # kubernetes, s3, ebs-snapshot, csi-snapshot
    region: str | None  # None: not tied to one (the live cluster)


def assess(copies: Iterable[Copy], primary_region: str) -> dict[str, Any]:
    """Counts and the 3-2-1 verdict for one set of copies; ``problems`` says what is short."""
    copies = list(copies)
    kinds = sorted({c.kind for c in copies})
    off_region = sorted({c.region for c in copies if c.region and c.region != primary_region})
    problems = []
    if len(copies) < MIN_COPIES:
        problems.append(f"{len(copies)} copies, fewer than {MIN_COPIES}")
    if len(kinds) < MIN_KINDS:
        problems.append(f"{len(kinds)} kind of storage, fewer than {MIN_KINDS}")
    if len(off_region) < MIN_OFF_REGION:
        problems.append("no copy outside the primary region")
    return {
        "copies": len(copies),
        "kinds": len(kinds),
        "kinds_of_storage": kinds,
        "off_region": bool(off_region),
        "off_region_regions": off_region,
        "locations": [asdict(c) for c in copies],
        "rule_ok": not problems,
        "problems": problems,
    }


def backup_copies(
    record: BackupRecord,
    *,
    primary_region: str,
    primary_present: bool,
    replica_region: str | None,
    volume_snapshots: Iterable[dict[str, Any]] = (),
    copy_states: Mapping[str, str] | None = None,
) -> list[Copy]:
    """``copy_states`` (snapshot id -> pending | completed | failed, from the catalog) counts an EBS snapshot's copy
    only once completed; without it the copies are counted as the manifest records them."""
    copies = [Copy("cluster", "kubernetes", None)]
    if primary_present:
        copies.append(Copy("primary", "s3", primary_region))
    regions = {replica_region} if replica_region else set()
    regions |= set(record.replicas or {})
    for region in sorted(r for r in regions if r):
        if replica_state(record, region) == ReplicaState.REPLICATED:
            copies.append(Copy("replica", "s3", region))
    seen: set[tuple[str, str]] = set()
    for snapshot in volume_snapshots:
        if snapshot.get("state", "ready") != "ready":
            continue  # a claim the backup could not snapshot (failed, excluded, not snapshot-able) holds no copy
        kind = _snapshot_kind(snapshot)
        where = [snapshot.get("region") or primary_region]
        where += [
            c.get("region")
            for c in snapshot.get("copies", [])
            if isinstance(c, dict)
            and c.get("region")
            and (copy_states is None or copy_states.get(str(c.get("snapshot_id"))) == "completed")
        ]
        for region in where:
            if (kind, region) not in seen:
                seen.add((kind, region))
                copies.append(Copy("volume-snapshots", kind, region))
    return copies


def copies_report(services: Any, cluster: str) -> list[dict[str, Any]]:
    """One row per policy of ``cluster``: its latest committed backup's copies and the 3-2-1 verdict."""
    from chalicelib.repository import RepositoryReader
    from chalicelib.repository.errors import RepositoryError

    settings = services.settings
    latest: dict[str, BackupRecord] = {}
    for record in committed_records(services.catalog(), cluster):  # newest first
        latest.setdefault(record.policy or NO_POLICY, record)
    reader: Any = None
    rows = []
    for policy, record in sorted(latest.items()):
        snapshots: list[dict[str, Any]] = []
        try:
            reader = reader or RepositoryReader(services.repository())
            manifest = reader.load_manifest(cluster, record.backup_id)
            snapshots, present = list(manifest.volume_snapshots or []), True
        except RepositoryError:
            present = False  # the primary copy is gone or unreadable: it does not count
        copy_states = None
        if any(s.get("copies") for s in snapshots if isinstance(s, dict)):
            entries = services.ebs_snapshot_catalog().of_backup(cluster, record.backup_id)
            copy_states = {e.snapshot_id: e.state for e in entries}
        copies = backup_copies(
            record,
            primary_region=settings.region,
            primary_present=present,
            replica_region=settings.replica_region,
            volume_snapshots=snapshots,
            copy_states=copy_states,
        )
        rows.append(
            {"cluster": cluster, "policy": policy, "backup_id": record.backup_id, **assess(copies, settings.region)}
        )
    return rows


def _snapshot_kind(snapshot: dict[str, Any]) -> str:
    kind = str(snapshot.get("type") or snapshot.get("kind") or "").lower()
    if "ebs" in kind or str(snapshot.get("snapshot_id", "")).startswith("snap-"):
        return "ebs-snapshot"
    return "csi-snapshot"
