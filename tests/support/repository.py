"""The small cluster the repository tests back up, and store wrappers that count reads and fail writes."""

from __future__ import annotations

from typing import Any

from chalicelib.core.ids import BackupId, BlobId
from chalicelib.core.index_format import IndexEntry
from chalicelib.core.manifest import Manifest
from chalicelib.core.resources import Resource
from chalicelib.repository import Repository, RepositoryWriter
from tests.support.builders import write_backup

PREFIX = "lifeboat/v1/"
CLUSTER = "prod-eu"


def small_cluster() -> list[tuple[str, str, str, str, dict[str, Any]]]:
    """(scope, group, resource, apiVersion, object) as a list response would give them."""
    out: list[tuple[str, str, str, str, dict[str, Any]]] = []
    for ns in ("shop", "billing"):
        out.append(("", "", "namespaces", "v1", {"kind": "Namespace", "metadata": {"name": ns, "uid": "u-" + ns}}))
        for i in range(12):
            meta = {"name": f"settings-{i}", "namespace": ns, "resourceVersion": str(100 + i), "uid": f"{ns}{i}"}
            cm = {"kind": "ConfigMap", "metadata": meta, "data": {"LOG_LEVEL": "info", "INDEX": f"{ns}-{i}" * 20}}
            out.append((ns, "", "configmaps", "v1", cm))
        secret = {
            "kind": "Secret",
            "type": "Opaque",
            "metadata": {"name": "db-creds", "namespace": ns},
            "data": {"password": "c2VjcmV0LXBhc3N3b3Jk"},
        }
        out.append((ns, "", "secrets", "v1", secret))
        deploy = {
            "kind": "Deployment",
            "metadata": {"name": "web", "namespace": ns, "generation": 4},
            "spec": {"replicas": 2, "template": {"spec": {"containers": [{"name": "web", "image": "nginx:1.27"}]}}},
            "status": {"readyReplicas": 2},
        }
        out.append((ns, "apps", "deployments", "apps/v1", deploy))
    role = {"kind": "ClusterRole", "metadata": {"name": "system:controller:widgets"}, "rules": []}
    out.append(("", "rbac.authorization.k8s.io", "clusterroles", "rbac.authorization.k8s.io/v1", role))
    return out


def write_small_backup(
    repo: Repository, writer: RepositoryWriter, backup_id: str = "20260101T000000Z-aaaaaa"
) -> tuple[Manifest, dict[str, Any]]:
    """Write a whole backup the way the backup worker does: objects, scope trees, root, index, manifest."""
    items = [
        (Resource(group, api_version.rsplit("/", 1)[-1], obj["kind"], resource, bool(scope)), obj)
        for scope, group, resource, api_version, obj in small_cluster()
    ]
    written = write_backup(repo, items, cluster=CLUSTER, backup_id=backup_id, policy="nightly", writer=writer)
    assert written.manifest is not None
    return written.manifest, written.objects


def bare_manifest(backup_id: str, root: str, index_files: list[str], cluster: str = CLUSTER) -> Manifest:
    return Manifest(
        backup_id=BackupId(backup_id),
        cluster=cluster,
        policy="nightly",
        parent=None,
        started_at="2026-01-01T00:00:00Z",
        finished_at="2026-01-01T00:01:00Z",
        kubernetes_version="v1.31.0",
        scope={},
        root_tree=BlobId(root),
        counts={"objects": len(small_cluster())},
        kinds={},
        index_files=index_files,
    )


def keys_under(s3: Any, bucket: str, under: str = "") -> list[str]:
    pages = s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=PREFIX + under)
    return [o["Key"][len(PREFIX) :] for page in pages for o in page.get("Contents", [])]


def pack_keys(s3: Any, bucket: str) -> list[str]:
    return keys_under(s3, bucket, "packs/")


class FailingStore:
    """Wraps a store; puts of keys under ``fail_under`` raise after ``allow`` of them succeeded."""

    def __init__(self, inner: Any, fail_under: str = "packs/", allow: int = 0, exc: Exception | None = None):
        self.inner, self.fail_under, self.allow = inner, fail_under, allow
        self.exc = exc or RuntimeError("connection reset by peer")
        self.gets: list[tuple[str, int, int]] = []

    def put(self, key: str, data: bytes, *, create_only: bool = True) -> None:
        if key.startswith(self.fail_under):
            if self.allow <= 0:
                raise self.exc
            self.allow -= 1
        self.inner.put(key, data, create_only=create_only)

    def get_range(self, key: str, start: int, end: int) -> bytes:
        self.gets.append((key, start, end))
        return self.inner.get_range(key, start, end)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)


def frames_of(index: dict[BlobId, IndexEntry]) -> dict[tuple[str, int], list[BlobId]]:
    """(pack, frame offset) -> the blobs of that frame, frames in pack order."""
    frames: dict[tuple[str, int], list[BlobId]] = {}
    for blob, entry in sorted(index.items(), key=lambda item: (item[1].pack, item[1].frame_offset, item[1].offset)):
        frames.setdefault((entry.pack, entry.frame_offset), []).append(blob)
    return frames
