"""Thin adapter: EBS snapshots in one region (create, find by tag, describe, copy in, delete); the only EC2 caller."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from chalicelib.aws.errors import NotFound, translate

_PAGE = 500  # DescribeSnapshots' page size when filtering


@dataclass(frozen=True)
class Ec2Snapshot:
    """One EBS snapshot as DescribeSnapshots tells it."""

    snapshot_id: str
    region: str
    state: str  # pending | completed | error (and recoverable / recovering, which count as pending)
    volume_id: str = ""
    size_gib: int = 0
    message: str = ""  # StateMessage: why a snapshot is in error
    started_at: str = ""  # ISO-8601
    tags: Mapping[str, str] = field(default_factory=dict)

    @classmethod
    def of(cls, data: Mapping[str, Any], region: str) -> Ec2Snapshot:
        start: Any = data.get("StartTime")
        return cls(
            snapshot_id=str(data.get("SnapshotId") or ""),
            region=region,
            state=str(data.get("State") or ""),
            volume_id=str(data.get("VolumeId") or ""),
            size_gib=int(data.get("VolumeSize") or 0),
            message=str(data.get("StateMessage") or ""),
            started_at=start.isoformat() if hasattr(start, "isoformat") else str(start or ""),
            tags={str(t.get("Key")): str(t.get("Value")) for t in data.get("Tags") or ()},
        )


class Ec2Snapshots:
    """EBS snapshots of one region through its boto3 EC2 client; errors become the ``aws.errors`` family."""

    def __init__(self, ec2_client: Any, region: str) -> None:
        self._client = ec2_client
        self.region = region

    def create(self, volume_id: str, tags: Mapping[str, str], description: str) -> Ec2Snapshot:
        """Start a snapshot of ``volume_id`` tagged with ``tags`` (CreateSnapshot has no client token: callers find
        an earlier one by its tags first)."""
        response = self._call(
            "create_snapshot",
            f"EC2 CreateSnapshot of {volume_id} in {self.region}",
            VolumeId=volume_id,
            Description=description[:255],
            TagSpecifications=[{"ResourceType": "snapshot", "Tags": _tags(tags)}],
        )
        return Ec2Snapshot.of(response, self.region)

    def copy_from(
        self, source_id: str, source_region: str, tags: Mapping[str, str], description: str, kms_key_id: str | None
    ) -> Ec2Snapshot:
        """Copy ``source_id`` of ``source_region`` into this region, encrypted (with ``kms_key_id`` when given:
        KMS keys never leave their region)."""
        params: dict[str, Any] = {
            "SourceSnapshotId": source_id,
            "SourceRegion": source_region,
            "Description": description[:255],
            "Encrypted": True,
            "TagSpecifications": [{"ResourceType": "snapshot", "Tags": _tags(tags)}],
        }
        if kms_key_id:
            params["KmsKeyId"] = kms_key_id
        response = self._call("copy_snapshot", f"EC2 CopySnapshot of {source_id} into {self.region}", **params)
        return Ec2Snapshot(str(response.get("SnapshotId") or ""), self.region, "pending", tags=dict(tags))

    def describe(self, snapshot_ids: Iterable[str]) -> dict[str, Ec2Snapshot]:
        """The snapshots among ``snapshot_ids`` that exist (one missing is simply absent)."""
        out: dict[str, Ec2Snapshot] = {}
        for snapshot_id in dict.fromkeys(snapshot_ids):
            try:
                what = f"EC2 DescribeSnapshots {snapshot_id} in {self.region}"
                response = self._call("describe_snapshots", what, SnapshotIds=[snapshot_id])
            except NotFound:
                continue
            for data in response.get("Snapshots") or ():
                out[str(data.get("SnapshotId"))] = Ec2Snapshot.of(data, self.region)
        return out

    def tagged(self, key: str, value: str | None = None) -> list[Ec2Snapshot]:
        """Our snapshots carrying tag ``key`` (with ``value`` when given), every page."""
        name, values = ("tag-key", [key]) if value is None else (f"tag:{key}", [value])
        wanted = {"Name": name, "Values": values}
        params: dict[str, Any] = {"OwnerIds": ["self"], "Filters": [wanted], "MaxResults": _PAGE}
        out: list[Ec2Snapshot] = []
        while True:
            what = f"EC2 DescribeSnapshots tagged {key} in {self.region}"
            response = self._call("describe_snapshots", what, **params)
            out.extend(Ec2Snapshot.of(d, self.region) for d in response.get("Snapshots") or ())
            token = response.get("NextToken")
            if not token:
                return out
            params["NextToken"] = token

    def delete(self, snapshot_id: str) -> bool:
        """Delete a snapshot; False when it was gone already (a sweep repeated after a crash)."""
        try:
            self._call("delete_snapshot", f"EC2 DeleteSnapshot {snapshot_id} in {self.region}", SnapshotId=snapshot_id)
        except NotFound:
            return False
        return True

    def _call(self, method: str, what: str, **params: Any) -> dict[str, Any]:
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            return dict(getattr(self._client, method)(**params))
        except (ClientError, BotoCoreError) as exc:
            translate(exc, what)


def _tags(tags: Mapping[str, str]) -> list[dict[str, str]]:
    return [{"Key": k, "Value": v} for k, v in sorted(tags.items())]
