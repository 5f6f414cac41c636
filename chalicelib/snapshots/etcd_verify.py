"""Verify a backup's etcd snapshot the way a restore would use it: download, etcdutl restore, serve, count keys."""

from __future__ import annotations

import hashlib
import socket
import tempfile
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any

from chalicelib.catalog.etcd_verifications import EtcdVerificationRecord
from chalicelib.core.manifest import Manifest
from chalicelib.etcd import EtcdError, SnapshotCorrupt
from chalicelib.etcd.local import EtcdBinaries, read_back
from chalicelib.etcd.snapshot import TRAILER_SIZE
from chalicelib.repository.artifacts import read_artifact
from chalicelib.snapshots.etcd import EtcdSnapshot, artifact_key


def download_snapshot(store: Any, manifest: Manifest, dest: Path) -> EtcdSnapshot:
    """Write the backup's ``etcd.db`` to ``dest`` (ranged reads) and check it against the manifest and its trailer.

    Raises ``SnapshotCorrupt`` when the bytes differ from what the backup committed; ``dest`` is then removed.
    """
    if not manifest.etcd_snapshot:
        raise EtcdError(f"backup {manifest.backup_id} of {manifest.cluster} holds no etcd snapshot")
    snap = EtcdSnapshot.from_manifest(manifest.cluster, manifest.backup_id, manifest.etcd_snapshot)
    whole, body = hashlib.sha256(), hashlib.sha256()
    tail = b""
    with dest.open("wb") as out:
        for chunk in read_artifact(store, snap.key, size=snap.size):
            out.write(chunk)
            whole.update(chunk)
            data = tail + chunk
            body.update(data[:-TRAILER_SIZE])
            tail = data[-TRAILER_SIZE:]
    problems = []
    if whole.hexdigest() != snap.sha256:
        problems.append(f"SHA-256 {whole.hexdigest()} is not the manifest's {snap.sha256}")
    if body.digest() != tail:
        problems.append("the database does not match its trailing SHA-256")
    if problems:
        dest.unlink(missing_ok=True)
        raise SnapshotCorrupt(f"{artifact_key(manifest.cluster, manifest.backup_id)}: {'; '.join(problems)}")
    return snap


class EtcdVerifier:
    """Restores a backup's snapshot into a scratch directory and reads it back; the result goes to the catalog."""

    def __init__(
        self,
        store: Any,
        binaries: EtcdBinaries,
        results: Any,
        *,
        clock: Callable[[], datetime],
        workdir: Path | None = None,
        where: str | None = None,
    ) -> None:
        self._store = store
        self._binaries = binaries
        self._results = results
        self._clock = clock
        self._workdir = workdir
        self._where = where or socket.gethostname()

    def verify(self, manifest: Manifest) -> EtcdVerificationRecord:
        """Ok when the restore succeeds and serves keys at no lower revision than the snapshot recorded."""
        expected = int((manifest.etcd_snapshot or {}).get("revision") or 0)
        try:
            with tempfile.TemporaryDirectory(prefix="lifeboat-etcd-", dir=self._workdir) as scratch:
                snap = download_snapshot(self._store, manifest, Path(scratch) / "etcd.db")
                data_dir = Path(scratch) / "restored"
                self._binaries.restore(Path(scratch) / "etcd.db", data_dir)
                counted = read_back(self._binaries, data_dir)
        except EtcdError as exc:
            result = self._record(manifest, ok=False, expected_revision=expected, error=str(exc))
        else:
            problems = []
            if counted.count <= 0:
                problems.append("the restored data holds no key")
            if counted.revision < expected:
                problems.append(f"restored revision {counted.revision} is below the snapshot's {expected}")
            result = self._record(
                manifest,
                ok=not problems,
                keys=counted.count,
                revision=counted.revision,
                expected_revision=expected,
                sha256=snap.sha256,
                error="; ".join(problems),
            )
        self._results.record(result)
        return result

    def _record(self, manifest: Manifest, *, ok: bool, **fields: Any) -> EtcdVerificationRecord:
        return EtcdVerificationRecord(
            cluster=manifest.cluster,
            backup_id=manifest.backup_id,
            ok=ok,
            verified_at=self._clock().strftime("%Y-%m-%dT%H:%M:%SZ"),
            snapshot_at=manifest.finished_at,
            where=self._where,
            **fields,
        )
