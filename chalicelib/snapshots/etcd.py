"""Take a backup's etcd snapshot: streamed to S3 beside the manifest, checked against etcd's own checksum."""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from chalicelib.etcd import EtcdClient, EtcdError, EtcdUnavailable, MemberStatus, SnapshotCorrupt
from chalicelib.etcd.snapshot import TRAILER_SIZE, SnapshotReader
from chalicelib.repository.artifacts import read_artifact, stat_artifact, upload_artifact
from chalicelib.repository.errors import ObjectExists
from chalicelib.repository.repo import MANIFEST_NAME, Repository

ETCD_ARTIFACT = "etcd.db"


@dataclass(frozen=True)
class EtcdSnapshot:
    """One stored snapshot: what the manifest's ``etcd_snapshot`` records.

    ``sha256`` is over the stored file (database and etcd's trailing checksum, as ``etcdctl snapshot save``
    writes it); ``db_sha256`` is that trailer, the SHA-256 of the database alone. ``revision`` is the member's
    revision just before the snapshot began: the snapshot holds at least everything up to it.
    """

    key: str  # relative to the repository prefix
    member: str  # member id, hex as etcdctl prints it
    endpoint: str
    revision: int
    db_size: int
    size: int
    version: str
    sha256: str
    db_sha256: str

    def to_manifest(self) -> dict[str, Any]:
        return {
            "key": ETCD_ARTIFACT,
            "member": self.member,
            "endpoint": self.endpoint,
            "revision": self.revision,
            "db_size": self.db_size,
            "size": self.size,
            "version": self.version,
            "sha256": self.sha256,
            "db_sha256": self.db_sha256,
        }

    @classmethod
    def from_manifest(cls, cluster: str, backup_id: str, entry: dict[str, Any]) -> EtcdSnapshot:
        return cls(
            key=artifact_key(cluster, backup_id),
            member=str(entry.get("member", "")),
            endpoint=str(entry.get("endpoint", "")),
            revision=int(entry.get("revision", 0)),
            db_size=int(entry.get("db_size", 0)),
            size=int(entry.get("size", 0)),
            version=str(entry.get("version", "")),
            sha256=str(entry.get("sha256", "")).removeprefix("sha256:"),
            db_sha256=str(entry.get("db_sha256", "")),
        )


def artifact_key(cluster: str, backup_id: str) -> str:
    """``clusters/<cluster>/backups/<id>/etcd.db``: beside the manifest, so the reachability walk finds it."""
    return Repository.manifest_key(cluster, backup_id)[: -len(MANIFEST_NAME)] + ETCD_ARTIFACT


class EtcdSnapshotter:
    """Takes one snapshot per backup: a second call for the same backup finds the stored one and uploads nothing."""

    def __init__(self, client: EtcdClient, store: Any, *, part_size: int = 0) -> None:
        self._client = client
        self._store = store
        self._part_size = part_size

    def take(self, cluster: str, backup_id: str) -> EtcdSnapshot:
        """Raises ``EtcdError`` (unreachable, stream cut short, checksum mismatch): then nothing is stored."""
        key = artifact_key(cluster, backup_id)
        existing = self.stored(key)
        if existing is not None:
            return existing
        endpoint, status = self._pick_member()
        metadata = {
            "member": status.member_id,
            "endpoint": endpoint,
            "revision": str(status.header.revision),
            "version": status.version,
        }
        reader = SnapshotReader(self._client.snapshot(endpoint), where=f"etcd {endpoint}")
        try:
            stored = upload_artifact(self._store, key, reader, metadata=metadata, part_size=self._part_size)
        except ObjectExists:
            # Another worker finished the same backup's snapshot first: its file is as good as ours.
            found = self.stored(key)
            if found is None:
                raise
            return found
        return EtcdSnapshot(
            key=key,
            member=f"{reader.member_id:x}" if reader.member_id else status.member_id,
            endpoint=endpoint,
            revision=reader.revision or status.header.revision,
            db_size=reader.db_size,
            size=stored.size,
            version=reader.version or status.version,
            sha256=stored.sha256,
            db_sha256=reader.db_sha256,
        )

    def stored(self, key: str) -> EtcdSnapshot | None:
        """The snapshot an earlier attempt stored at ``key``, read back and checked again; None if there is none."""
        found = stat_artifact(self._store, key)
        if found is None:
            return None
        sha256, db_sha256 = verify_file(read_artifact(self._store, key, size=found.size), where=key)
        meta = found.metadata
        return EtcdSnapshot(
            key=key,
            member=meta.get("member", ""),
            endpoint=meta.get("endpoint", ""),
            revision=int(meta.get("revision") or 0),
            db_size=found.size - TRAILER_SIZE,
            size=found.size,
            version=meta.get("version", ""),
            sha256=sha256,
            db_sha256=db_sha256,
        )

    def _pick_member(self) -> tuple[str, MemberStatus]:
        """The first endpoint whose member answers and reports no errors (an alarm, a corrupt member)."""
        problems: list[str] = []
        for endpoint in self._client.endpoints:
            try:
                status = self._client.status(endpoint)
            except EtcdUnavailable as exc:
                problems.append(str(exc))
                continue
            if status.errors:
                problems.append(f"etcd {endpoint}: member reports {'; '.join(status.errors)}")
                continue
            return endpoint, status
        raise EtcdUnavailable("no etcd member to snapshot: " + " | ".join(problems))


def verify_file(chunks: Iterable[bytes], *, where: str) -> tuple[str, str]:
    """(SHA-256 of the whole file, its trailer) after checking that the trailer is the SHA-256 of what precedes it."""
    whole, body = hashlib.sha256(), hashlib.sha256()
    tail = b""
    for chunk in chunks:
        whole.update(chunk)
        data = tail + chunk
        body.update(data[:-TRAILER_SIZE] if len(data) > TRAILER_SIZE else b"")
        tail = data[-TRAILER_SIZE:]
    if len(tail) != TRAILER_SIZE or body.digest() != tail:
        raise SnapshotCorrupt(f"{where}: the stored snapshot does not match its trailing SHA-256")
    return whole.hexdigest(), tail.hex()


__all__ = ["ETCD_ARTIFACT", "EtcdError", "EtcdSnapshot", "EtcdSnapshotter", "artifact_key", "verify_file"]
