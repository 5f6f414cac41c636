"""``backups describe``'s volumes: one row per claim the backup recorded, with its snapshot, size and region copies."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

HEADERS = ["claim", "mode", "state", "snapshot", "size", "copies"]


def volume_rows(
    volume_snapshots: Iterable[Mapping[str, Any]], copy_states: Mapping[str, str] | None = None
) -> list[dict[str, Any]]:
    """Per claim: mode (csi/ebs), state, snapshot (a CSI snapshot's name and handle, an EBS snapshot's id and
    region, or why none), size, and each region copy with its state (the catalog's, "unknown" without it)."""
    states = copy_states or {}
    rows = []
    for record in volume_snapshots:
        if not isinstance(record, Mapping) or not record.get("pvc"):
            continue
        kind = str(record.get("type") or "csi")
        handle = str(record.get("snapshot_handle") or "")
        if kind == "ebs":
            snapshot = f"{handle} ({record.get('region')})" if handle else ""
        else:
            name = str(record.get("snapshot_name") or "")
            snapshot = f"{name} ({handle})" if name and handle else name
        copies = [
            {
                "region": str(c.get("region") or ""),
                "snapshot_id": str(c.get("snapshot_id") or ""),
                "state": "failed" if c.get("error") else states.get(str(c.get("snapshot_id")), "unknown"),
                **({"error": str(c["error"])} if c.get("error") else {}),
            }
            for c in record.get("copies") or ()
            if isinstance(c, Mapping)
        ]
        rows.append(
            {
                "claim": f"{record.get('namespace')}/{record.get('pvc')}",
                "mode": kind,
                "state": str(record.get("state") or ""),
                "snapshot": snapshot or str(record.get("error") or record.get("reason") or ""),
                "size": str(record.get("restore_size") or ""),
                "copies": copies,
            }
        )
    return rows


def copies_cell(copies: Iterable[Mapping[str, str]]) -> str:
    return ", ".join(f"{c['region']}: {c.get('snapshot_id') or '-'} {c['state']}" for c in copies)


def copy_states(
    services: Any, cluster: str, backup_id: str, volume_snapshots: Iterable[Mapping[str, Any]]
) -> dict[str, str]:
    """Snapshot id -> state of the backup's EBS snapshot copies, from the catalog (asked only when there are some)."""
    if not any(isinstance(r, Mapping) and r.get("copies") for r in volume_snapshots):
        return {}
    return {e.snapshot_id: e.state for e in services.ebs_snapshot_catalog().of_backup(cluster, backup_id)}
