"""EBS direct snapshots, the pure part: which volume a claim is, the snapshots' tags, the EventBridge event, states.

A claim backed by an EBS volume (the ``ebs.csi.aws.com`` CSI driver, whose ``volumeHandle`` is the volume id, or the
in-tree ``awsElasticBlockStore`` with ``volumeID`` as ``vol-...`` or ``aws://<zone>/vol-...``) can be snapshotted
by EC2 itself, and the snapshot copied into the replica region: a copy a CSI snapshot cannot make. An EBS snapshot
is crash-consistent, like a CSI one.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

EBS_CSI_DRIVER = "ebs.csi.aws.com"
IN_TREE_EBS = "awsElasticBlockStore"
IN_TREE_EBS_DRIVER = "kubernetes.io/aws-ebs"

# Tags on every snapshot a backup makes (and on its copies): retention and the orphan sweep find them by the first.
BACKUP_ID_TAG = "lifeboat.io/backup-id"
CLUSTER_TAG = "lifeboat.io/cluster"
CLAIM_TAG = "lifeboat.io/persistent-volume-claim"  # <namespace>/<claim>
SNAPSHOT_TAG = "lifeboat.io/snapshot"  # the deterministic name: how a redelivered job finds the snapshot it made
COPY_OF_TAG = "lifeboat.io/copy-of"  # on a copy: <source region>/<source snapshot id>
# The IAM policy lets the functions create and delete only snapshots carrying this tag.
MANAGED_BY_TAG, MANAGED_BY = "lifeboat.io/managed-by", "lifeboat"

PENDING, COMPLETED, FAILED = "pending", "completed", "failed"
EVENT_SOURCE = "aws.ec2"
EVENT_DETAIL_TYPE = "EBS Snapshot Notification"
CREATE_EVENT, COPY_EVENT = "createSnapshot", "copySnapshot"


def ebs_volume_id(pv_spec: Mapping[str, Any]) -> str:
    """The EBS volume id of a PersistentVolume's spec, "" when it is not an EBS volume."""
    csi = pv_spec.get("csi") or {}
    if csi.get("driver") == EBS_CSI_DRIVER:
        return str(csi.get("volumeHandle") or "")
    in_tree = pv_spec.get(IN_TREE_EBS) or {}
    volume = str(in_tree.get("volumeID") or "")
    return volume.rsplit("/", 1)[-1] if volume else ""


def snapshot_tags(cluster: str, backup_id: str, namespace: str, claim: str, name: str) -> dict[str, str]:
    return {
        BACKUP_ID_TAG: backup_id,
        CLUSTER_TAG: cluster,
        CLAIM_TAG: f"{namespace}/{claim}",
        SNAPSHOT_TAG: name,
        MANAGED_BY_TAG: MANAGED_BY,
        "Name": name,
    }


def copy_tags(source_tags: Mapping[str, str], source_region: str, source_id: str) -> dict[str, str]:
    return {**source_tags, COPY_OF_TAG: f"{source_region}/{source_id}"}


def snapshot_state(ec2_state: str) -> str:
    """Our state for an EC2 snapshot state: ``error`` failed, ``completed`` completed, anything else pending."""
    if ec2_state == "error":
        return FAILED
    return COMPLETED if ec2_state == "completed" else PENDING


@dataclass(frozen=True)
class SnapshotEvent:
    """An "EBS Snapshot Notification": a snapshot was created or copied (``succeeded``) or was not (``failed``)."""

    event: str  # createSnapshot | copySnapshot
    succeeded: bool
    snapshot_id: str
    region: str  # where the snapshot is (a copy's destination region)
    source: str  # the volume (create) or the source snapshot (copy), as an id
    cause: str = ""

    @property
    def state(self) -> str:
        return COMPLETED if self.succeeded else FAILED


def parse_event(event: Mapping[str, Any]) -> SnapshotEvent | None:
    """The snapshot event in an EventBridge event (as AWS documents it); None for anything else.

    ``detail.snapshot_id`` is an ARN such as ``arn:aws:ec2::us-west-2:snapshot/snap-0123`` (the region where the
    account usually is) and ``detail.source`` the volume's or source snapshot's ARN; the event's ``region`` is the
    fallback for the region."""
    if event.get("source") != EVENT_SOURCE or event.get("detail-type") != EVENT_DETAIL_TYPE:
        return None
    detail = event.get("detail") or {}
    kind = detail.get("event")
    if kind not in (CREATE_EVENT, COPY_EVENT) or detail.get("result") not in ("succeeded", "failed"):
        return None
    snapshot_id, region = _arn_id(str(detail.get("snapshot_id") or ""))
    if not snapshot_id.startswith("snap-"):
        return None
    source, _ = _arn_id(str(detail.get("source") or ""))
    return SnapshotEvent(
        event=str(kind),
        succeeded=detail.get("result") == "succeeded",
        snapshot_id=snapshot_id,
        region=region or str(event.get("region") or ""),
        source=source,
        cause=str(detail.get("cause") or ""),
    )


def _arn_id(arn: str) -> tuple[str, str]:
    """(resource id, region) of an EC2 ARN, or (arn, "") for a bare id."""
    parts = arn.split(":")
    if len(parts) < 6 or parts[0] != "arn":
        return arn, ""
    region = next((p for p in (parts[3], parts[4]) if p and not p.isdigit()), "")
    return parts[5].rsplit("/", 1)[-1], region
