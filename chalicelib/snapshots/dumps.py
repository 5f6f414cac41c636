"""A backup's database dumps, the storage part: presigned URLs for each run, then complete, re-check and record."""

from __future__ import annotations

import contextlib
import hashlib
import json
import math
from dataclasses import dataclass
from typing import Any

from chalicelib.core.dump_job import DEFAULT_PART_SIZE, DumpRun
from chalicelib.core.dumps import DumpSpec
from chalicelib.repository.artifacts import read_artifact, stat_artifact
from chalicelib.repository.errors import ObjectNotFound, StorageError
from chalicelib.repository.presigned import (
    PresignedUpload,
    abort_presigned_upload,
    complete_presigned_upload,
    start_presigned_upload,
)
from chalicelib.repository.repo import DUMPS_DIR, MANIFEST_NAME, Repository

REPORT_SUFFIX = ".report.json"
DEFAULT_MAX_SIZE = 10 << 30  # 160 parts of 64 MiB: about 200 KB of URLs in the run's Secret (a Secret holds 1 MiB)
URL_MARGIN_S = 600  # the URLs outlive the Job's deadline by this much: a part sent at the deadline still lands


class DumpError(Exception):
    """A dump did not produce a stored, checked artifact; the message names the dump and why."""


@dataclass(frozen=True)
class DumpRecord:
    """One entry of the manifest's ``dumps``: a stored dump (``state`` completed) or why there is none (failed)."""

    name: str
    namespace: str
    engine: str
    key: str  # relative to the backup's directory: dumps/<namespace>/<name>.<ext>
    state: str  # "completed" or "failed"
    size: int = 0
    sha256: str = ""
    version: str = ""  # the tool's version line, as the Job reported it
    duration_s: int = 0
    parts: int = 0
    error: str = ""

    def to_manifest(self) -> dict[str, Any]:
        data: dict[str, Any] = {
            "name": self.name,
            "namespace": self.namespace,
            "engine": self.engine,
            "key": self.key,
            "state": self.state,
        }
        if self.state == "completed":
            data.update(
                size=self.size, sha256=self.sha256, version=self.version, duration_s=self.duration_s, parts=self.parts
            )
        else:
            data["error"] = self.error
        return data

    @classmethod
    def failed(cls, spec: DumpSpec, error: str) -> DumpRecord:
        return cls(spec.name, spec.namespace, spec.engine, relative_key(spec), "failed", error=error)


def relative_key(spec: DumpSpec) -> str:
    """``dumps/<namespace>/<name>.<ext>``, relative to the backup's directory."""
    return f"{DUMPS_DIR}/{spec.namespace}/{spec.file_name}"


def dump_key(cluster: str, backup_id: str, spec: DumpSpec) -> str:
    """``clusters/<cluster>/backups/<id>/dumps/<namespace>/<name>.<ext>``: beside the manifest, like etcd.db."""
    return Repository.manifest_key(cluster, backup_id)[: -len(MANIFEST_NAME)] + relative_key(spec)


class DumpUploads:
    """Opens one presigned multipart upload per dump run and, once its Job has ended, completes and re-checks it."""

    def __init__(self, store: Any, *, part_size: int = DEFAULT_PART_SIZE, max_size: int = DEFAULT_MAX_SIZE) -> None:
        self._store = store
        self._part_size = part_size
        self._parts = max(1, math.ceil(max_size / part_size))

    def start(self, cluster: str, backup_id: str, spec: DumpSpec) -> tuple[DumpRun, PresignedUpload]:
        key = dump_key(cluster, backup_id, spec)
        upload = start_presigned_upload(
            self._store,
            key,
            parts=self._parts,
            report_key=key + REPORT_SUFFIX,
            expires_s=spec.timeout_s + URL_MARGIN_S,
        )
        run = DumpRun(backup_id, key, upload.part_urls, upload.report_url, self._part_size)
        return run, upload

    def finish(self, spec: DumpSpec, upload: PresignedUpload) -> DumpRecord:
        """Complete the upload after the Job succeeded; the artifact is kept only when it hashes to the report.

        Raises ``DumpError`` (no report, no parts, a size or SHA-256 other than the Job reported): then nothing
        is left at the key.
        """
        where = f"dump {spec.namespace}/{spec.name}"
        report = self._report(upload, where)
        try:
            parts = complete_presigned_upload(self._store, upload)
        except StorageError as exc:
            self.abort(upload)
            raise DumpError(f"{where}: completing the upload of {upload.key} failed: {exc}") from exc
        stored = stat_artifact(self._store, upload.key)
        size = stored.size if stored else 0
        digest = hashlib.sha256()
        for chunk in read_artifact(self._store, upload.key, size=size):
            digest.update(chunk)
        if size != report["size"] or digest.hexdigest() != report["sha256"]:
            self._store.delete(upload.key)  # not reached by any manifest yet: the backup records the failure
            raise DumpError(
                f"{where}: the stored {upload.key} ({size} bytes, sha256 {digest.hexdigest()}) is not what the Job "
                f"reported ({report['size']} bytes, sha256 {report['sha256']})"
            )
        self._store.delete(upload.report_key)
        return DumpRecord(
            spec.name,
            spec.namespace,
            spec.engine,
            relative_key(spec),
            "completed",
            size,
            digest.hexdigest(),
            str(report.get("tool_version", "")),
            int(report.get("duration_s", 0)),
            parts,
        )

    def abort(self, upload: PresignedUpload) -> None:
        """Drop the parts and the report of a run that failed or timed out."""
        abort_presigned_upload(self._store, upload)
        with contextlib.suppress(ObjectNotFound):
            self._store.delete(upload.report_key)

    def _report(self, upload: PresignedUpload, where: str) -> dict[str, Any]:
        try:
            raw = self._store.get(upload.report_key)
        except ObjectNotFound:
            self.abort(upload)
            raise DumpError(f"{where}: the Job sent no report ({upload.report_key} is missing)") from None
        try:
            report = json.loads(raw)
            if not isinstance(report, dict) or not isinstance(report.get("size"), int):
                raise ValueError("no size")
            if not isinstance(report.get("sha256"), str) or len(report["sha256"]) != 64:
                raise ValueError("no sha256")
        except ValueError as exc:
            self.abort(upload)
            raise DumpError(f"{where}: the Job's report {upload.report_key} is not valid: {exc}") from exc
        return report
