"""Backups built directly in an in-memory repository, so restore tests choose exactly what a backup holds."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from chalicelib.core.canonical import canonical_blob
from chalicelib.core.ids import BackupId, BlobId
from chalicelib.core.manifest import Manifest
from chalicelib.core.resources import Resource
from chalicelib.core.sanitize import sanitize
from chalicelib.core.trees import CLUSTER_SCOPE, TreeEntry, encode_root, encode_tree
from chalicelib.repository import MemoryObjectStore, Repository, RepositoryReader, RepositoryWriter

VERBS = frozenset({"create", "get", "list", "update", "delete", "patch"})

# kind -> (plural, namespaced); the group and version come from the object's apiVersion.
KINDS: dict[str, tuple[str, bool]] = {
    "Namespace": ("namespaces", False),
    "ConfigMap": ("configmaps", True),
    "Secret": ("secrets", True),
    "Service": ("services", True),
    "ServiceAccount": ("serviceaccounts", True),
    "Endpoints": ("endpoints", True),
    "Pod": ("pods", True),
    "PersistentVolumeClaim": ("persistentvolumeclaims", True),
    "PersistentVolume": ("persistentvolumes", False),
    "Deployment": ("deployments", True),
    "ReplicaSet": ("replicasets", True),
    "StatefulSet": ("statefulsets", True),
    "Job": ("jobs", True),
    "Role": ("roles", True),
    "RoleBinding": ("rolebindings", True),
    "ClusterRole": ("clusterroles", False),
    "CustomResourceDefinition": ("customresourcedefinitions", False),
}


def resource_of(obj: dict[str, Any], plural: str | None = None, namespaced: bool | None = None) -> Resource:
    group, _, version = obj["apiVersion"].rpartition("/")
    known_plural, known_namespaced = KINDS.get(obj["kind"], (plural, namespaced))
    if known_plural is None or known_namespaced is None:
        raise KeyError(f"say the plural and scope of {obj['kind']}")
    return Resource(group, version, obj["kind"], plural or known_plural, known_namespaced, VERBS)


@dataclass
class BuiltBackup:
    store: MemoryObjectStore
    repo: Repository
    manifest: Manifest
    blobs: dict[str, BlobId]  # "<namespace>/<kind>/<name>" -> blob id

    def reader(self) -> RepositoryReader:
        return RepositoryReader(self.repo)

    def corrupt(self, key: str) -> None:
        """Flip bytes inside one object's stored frame, as bit rot or tampering would."""
        entry = self.reader().load_index()[self.blobs[key]]
        pack_key = self.repo.pack_key(entry.pack)
        data = bytearray(self.store.objects[pack_key])
        mid = entry.frame_offset + entry.frame_length // 2
        for i in range(mid, mid + 4):
            data[i] ^= 0xFF
        self.store.objects[pack_key] = bytes(data)


def make_backup(
    objects: list[dict[str, Any] | tuple[Resource, dict[str, Any]]],
    *,
    cluster: str = "test-cluster",
    backup_id: str = "20260101T000000Z-abcdef",
) -> BuiltBackup:
    """A committed backup of ``objects`` (sanitized as the backup service does), written in the v1 format."""
    store = MemoryObjectStore()
    repo = Repository.open(store, create=True)
    writer = RepositoryWriter(repo, frame_target_bytes=1)  # one blob per frame: damage hits exactly one object
    scopes: dict[str, list[TreeEntry]] = {}
    blobs: dict[str, BlobId] = {}
    kinds: dict[str, int] = {}
    for item in objects:
        resource, obj = item if isinstance(item, tuple) else (resource_of(item), item)
        clean = sanitize(obj, resource.kind, resource.api_version)
        bid, data = canonical_blob(clean)
        writer.add(bid, data)
        meta = clean["metadata"]
        scope = meta.get("namespace", CLUSTER_SCOPE) if resource.namespaced else CLUSTER_SCOPE
        scopes.setdefault(scope, []).append(
            TreeEntry(resource.group, resource.plural, meta["name"], resource.version, resource.kind, bid, len(data))
        )
        blobs[f"{scope}/{resource.kind}/{meta['name']}"] = bid
        kinds[f"{resource.group}/{resource.kind}"] = kinds.get(f"{resource.group}/{resource.kind}", 0) + 1
    tree_ids = {}
    for scope, entries in scopes.items():
        tid, data = encode_tree(entries)
        writer.add(tid, data, type="tree")
        tree_ids[scope] = tid
    root, data = encode_root(tree_ids)
    writer.add(root, data, type="tree")
    index_files = writer.finish()
    manifest = Manifest(
        backup_id=BackupId(backup_id),
        cluster=cluster,
        policy=None,
        parent=None,
        started_at="2026-01-01T00:00:00Z",
        finished_at="2026-01-01T00:00:05Z",
        kubernetes_version="v1.31.0",
        scope={},
        root_tree=root,
        counts={"objects": len(objects)},
        kinds=kinds,
        index_files=index_files,
    )
    writer.write_manifest(manifest)
    return BuiltBackup(store, repo, manifest, blobs)
