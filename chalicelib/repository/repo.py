"""A repository: the config that declares its format, and the key layout under the store's prefix."""

from __future__ import annotations

import re
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import orjson

from chalicelib.core.ids import PackId
from chalicelib.repository.errors import (
    InvalidName,
    ObjectExists,
    ObjectNotFound,
    RepositoryCorrupt,
    RepositoryNotFound,
    UnsupportedFormat,
)
from chalicelib.repository.store import ObjectStore

REPOSITORY_VERSION = 1
COMPRESSION = "zstd"
CONFIG_KEY = "config.json"
PACKS_DIR = "packs/"
INDEX_DIR = "index/"
CLUSTERS_DIR = "clusters/"
DUMPS_DIR = "dumps"  # database dumps, in a backup's directory: dumps/<namespace>/<name>.<ext>
MANIFEST_NAME = "manifest.json"

# Cluster names and backup ids become key segments: no "/", no control characters, no "." or "..".
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:@+=-]{0,252}")


@dataclass(frozen=True)
class RepositoryConfig:
    version: int
    id: str
    compression: str
    created_at: str

    def to_json(self) -> bytes:
        doc = {"version": self.version, "id": self.id, "compression": self.compression, "created_at": self.created_at}
        return orjson.dumps(doc, option=orjson.OPT_INDENT_2 | orjson.OPT_SORT_KEYS)

    @classmethod
    def from_json(cls, data: bytes) -> RepositoryConfig:
        try:
            doc: Any = orjson.loads(data)
        except orjson.JSONDecodeError as exc:
            raise RepositoryCorrupt(f"{CONFIG_KEY} is not valid JSON: {exc}") from exc
        if not isinstance(doc, dict):
            raise RepositoryCorrupt(f"{CONFIG_KEY} is not a JSON object")
        version = doc.get("version")
        if version != REPOSITORY_VERSION:
            raise UnsupportedFormat(
                f"repository format version {version!r} is not supported (this code knows {REPOSITORY_VERSION})"
            )
        if doc.get("compression") != COMPRESSION:
            raise UnsupportedFormat(f"repository compression {doc.get('compression')!r} is not supported")
        if not isinstance(doc.get("id"), str) or not doc["id"]:
            raise RepositoryCorrupt(f"{CONFIG_KEY} has no repository id")
        return cls(version=version, id=doc["id"], compression=COMPRESSION, created_at=str(doc.get("created_at", "")))


class Repository:
    """An opened repository: its config and where each kind of file lives. Build with ``Repository.open``."""

    def __init__(self, store: ObjectStore, config: RepositoryConfig) -> None:
        self.store = store
        self.config = config

    def __repr__(self) -> str:
        return f"Repository({self.store!r}, id={self.config.id})"

    @classmethod
    def open(cls, store: ObjectStore, *, create: bool = False, now: datetime | None = None) -> Repository:
        """Read ``config.json``; with ``create``, write it first when absent (race-safe: the first writer wins)."""
        try:
            return cls(store, RepositoryConfig.from_json(store.get(CONFIG_KEY)))
        except ObjectNotFound:
            if not create:
                raise RepositoryNotFound(f"no repository at {store!r}: {CONFIG_KEY} does not exist") from None
        config = RepositoryConfig(
            version=REPOSITORY_VERSION,
            id=secrets.token_hex(16),
            compression=COMPRESSION,
            created_at=(now or datetime.now(UTC)).strftime("%Y-%m-%dT%H:%M:%SZ"),
        )
        try:
            store.put(CONFIG_KEY, config.to_json(), create_only=True)
        except ObjectExists:
            # Another process initialised it between our get and put; its config is the repository's.
            return cls(store, RepositoryConfig.from_json(store.get(CONFIG_KEY)))
        return cls(store, config)

    @staticmethod
    def pack_key(pack: PackId | str) -> str:
        return f"{PACKS_DIR}{pack[:2]}/{pack}"

    @staticmethod
    def index_key(index: str) -> str:
        return f"{INDEX_DIR}{index}"

    @staticmethod
    def backups_prefix(cluster: str | None = None) -> str:
        if cluster is None:
            return CLUSTERS_DIR
        return f"{CLUSTERS_DIR}{check_name(cluster, 'cluster name')}/backups/"

    @staticmethod
    def manifest_key(cluster: str, backup_id: str) -> str:
        return f"{Repository.backups_prefix(cluster)}{check_name(backup_id, 'backup id')}/{MANIFEST_NAME}"

    @staticmethod
    def parse_manifest_key(key: str) -> tuple[str, str] | None:
        """(cluster, backup id) of a manifest key, or None for any other key."""
        parts = key.split("/")
        if len(parts) == 5 and parts[0] + "/" == CLUSTERS_DIR and parts[2] == "backups" and parts[4] == MANIFEST_NAME:
            return parts[1], parts[3]
        return None

    @staticmethod
    def parse_artifact_key(key: str) -> tuple[str, str, str] | None:
        """(cluster, backup id, name in the backup's directory) of an artifact key, or None for any other key.

        Artifacts are files beside the manifest (``etcd.db``) and database dumps in ``dumps/<namespace>/<file>``.
        """
        parts = key.split("/")
        if len(parts) < 5 or parts[0] + "/" != CLUSTERS_DIR or parts[2] != "backups" or not all(parts):
            return None
        rest = parts[4:]
        if rest == [MANIFEST_NAME] or not (len(rest) == 1 or (len(rest) == 3 and rest[0] == DUMPS_DIR)):
            return None
        return parts[1], parts[3], "/".join(rest)


def check_name(value: str, what: str) -> str:
    if not isinstance(value, str) or not _NAME.fullmatch(value):
        raise InvalidName(f"{what} {value!r} cannot be used in a key (letters, digits and ._:@+=- only)")
    return value
