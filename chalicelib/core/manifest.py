"""The backup manifest: the small document whose write commits a backup."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

import orjson

from chalicelib.core.errors import FormatError
from chalicelib.core.ids import BackupId, BlobId

FORMAT_VERSION = 1
# What a backup holds: Kubernetes resources (and what the policy adds: volume and etcd snapshots), or an etcd snapshot
# alone (an etcd-only backup of a policy whose etcd block has its own schedule; its root tree is empty).
KIND_RESOURCES = "resources"
KIND_ETCD = "etcd"


@dataclass(frozen=True)
class Manifest:
    backup_id: BackupId
    cluster: str
    policy: str | None
    parent: BackupId | None
    started_at: str  # ISO-8601 UTC
    finished_at: str
    kubernetes_version: str
    scope: dict[str, Any]
    root_tree: BlobId
    counts: dict[str, int]  # objects, blobs_new, trees, namespaces, errors
    kinds: dict[str, int]  # "group/Kind" -> objects
    index_files: list[str]  # index ids written by this backup (replication closure)
    stats: dict[str, int] = field(default_factory=dict)  # bytes_uploaded, bytes_deduplicated, ...
    errors: list[dict[str, str]] = field(default_factory=list)  # per resource type: {resource, error}
    volume_snapshots: list[dict[str, Any]] = field(default_factory=list)
    etcd_snapshot: dict[str, Any] | None = None
    # The uid of the cluster's kube-system namespace when the backup listed it: the cluster the trees' uids and
    # resourceVersions were read from. A later backup reuses blobs of unchanged objects only from the same cluster.
    cluster_uid: str | None = None
    kind: str = KIND_RESOURCES
    # Database dumps the policy asked for, stored (``dumps/<namespace>/<name>.<ext>`` beside the manifest) or failed.
    dumps: list[dict[str, Any]] = field(default_factory=list)
    format_version: int = FORMAT_VERSION

    @property
    def etcd_only(self) -> bool:
        return self.kind == KIND_ETCD

    def to_json(self) -> bytes:
        doc = asdict(self)
        if not self.dumps:  # a backup without dumps keeps the bytes (and readers) it had before dumps existed
            del doc["dumps"]
        return orjson.dumps(doc, option=orjson.OPT_SORT_KEYS | orjson.OPT_INDENT_2)

    @classmethod
    def from_json(cls, data: bytes) -> Manifest:
        try:
            doc = orjson.loads(data)
        except orjson.JSONDecodeError as exc:
            raise FormatError(f"manifest is not valid JSON: {exc}") from exc
        version = doc.get("format_version")
        if version != FORMAT_VERSION:
            raise FormatError(
                f"manifest format version {version!r} is not supported (this reader knows {FORMAT_VERSION})"
            )
        try:
            return cls(**doc)
        except TypeError as exc:
            raise FormatError(f"manifest fields do not match format {FORMAT_VERSION}: {exc}") from exc
