"""A backup's log: the warnings and errors recorded while it ran, kept beside its manifest.

``clusters/<cluster>/backups/<backup id>/log.json`` is written create-only before the manifest, so a committed
backup with anything to report always has its log; a backup with nothing to report writes none (an unchanged backup
stays one PUT), and its log reads as empty. Format in docs/repository-format.md §6.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import orjson

from chalicelib.core.errors import FormatError
from chalicelib.core.manifest import Manifest
from chalicelib.repository.errors import ObjectNotFound
from chalicelib.repository.repo import Repository
from chalicelib.repository.store import ObjectStore

LOG_NAME = "log.json"
LOG_VERSION = 1
LEVELS = ("warning", "error")


@dataclass(frozen=True)
class LogEntry:
    level: str  # warning | error
    resource: str  # group/resource, e.g. "deployments.apps"; "" when the entry is about the whole backup
    message: str
    namespace: str = ""
    name: str = ""  # the object, when the entry is about one

    def to_dict(self) -> dict[str, str]:
        out = {"level": self.level, "resource": self.resource, "message": self.message}
        if self.namespace:
            out["namespace"] = self.namespace
        if self.name:
            out["name"] = self.name
        return out

    @classmethod
    def from_dict(cls, raw: Mapping[str, Any]) -> LogEntry:
        level = str(raw.get("level", ""))
        if level not in LEVELS:
            raise FormatError(f"backup log entry has level {level!r}, not one of {LEVELS}")
        return cls(
            level,
            str(raw.get("resource", "")),
            str(raw.get("message", "")),
            raw.get("namespace", ""),
            raw.get("name", ""),
        )


def log_key(cluster: str, backup_id: str) -> str:
    return Repository.manifest_key(cluster, backup_id).rsplit("/", 1)[0] + "/" + LOG_NAME


def entries_of(manifest: Manifest, extra: Iterable[LogEntry] = ()) -> list[LogEntry]:
    """The manifest's per-type errors as log entries, then ``extra`` (per-object warnings and errors)."""
    out = [LogEntry("error", str(e.get("resource", "")), str(e.get("error", ""))) for e in manifest.errors]
    out.extend(extra)
    return out


def encode(manifest: Manifest, entries: Iterable[LogEntry]) -> bytes:
    body = {
        "v": LOG_VERSION,
        "cluster": manifest.cluster,
        "backup_id": manifest.backup_id,
        "entries": [e.to_dict() for e in entries],
    }
    return orjson.dumps(body, option=orjson.OPT_SORT_KEYS)


def write_log(store: ObjectStore, manifest: Manifest, entries: list[LogEntry]) -> int:
    """Write the log (create-only) when there is anything to log; the bytes written, 0 for none."""
    if not entries:
        return 0
    data = encode(manifest, entries)
    store.put(log_key(manifest.cluster, manifest.backup_id), data, create_only=True)
    return len(data)


def read_log(store: ObjectStore, cluster: str, backup_id: str) -> list[LogEntry]:
    """The backup's log entries; none when it has no log (nothing was recorded)."""
    try:
        data = store.get(log_key(cluster, backup_id))
    except ObjectNotFound:
        return []
    raw = orjson.loads(data)
    version = raw.get("v") if isinstance(raw, dict) else None
    if version != LOG_VERSION:
        raise FormatError(f"backup log of {cluster}/{backup_id} has unknown version {version!r}")
    return [LogEntry.from_dict(e) for e in raw.get("entries") or []]
