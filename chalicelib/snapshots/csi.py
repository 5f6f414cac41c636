"""CSI VolumeSnapshots of a backup's claims, through the Kubernetes API: find the claims, create, look, delete."""

from __future__ import annotations

import contextlib
from collections.abc import Iterable
from dataclasses import replace
from typing import Any

from chalicelib.core.resources import Resource
from chalicelib.core.scope import BackupScope
from chalicelib.core.volume_snapshots import (
    BACKUP_ID_LABEL,
    CSI,
    DELETION_POLICY_ANNOTATION,
    FAILED,
    PENDING,
    READY,
    Claim,
    SnapshotClassInfo,
    VolumeRecord,
    observe,
    snapshot_body,
)
from chalicelib.kube.errors import AlreadyExists, KubeError, NotFound, Unreachable

_VERBS = frozenset({"create", "delete", "get", "list", "patch", "update", "watch"})
SNAPSHOTS = Resource("snapshot.storage.k8s.io", "v1", "VolumeSnapshot", "volumesnapshots", True, _VERBS)
CONTENTS = Resource("snapshot.storage.k8s.io", "v1", "VolumeSnapshotContent", "volumesnapshotcontents", False, _VERBS)
CLASSES = Resource("snapshot.storage.k8s.io", "v1", "VolumeSnapshotClass", "volumesnapshotclasses", False, _VERBS)
CLAIMS = Resource("", "v1", "PersistentVolumeClaim", "persistentvolumeclaims", True, _VERBS)
VOLUMES = Resource("", "v1", "PersistentVolume", "persistentvolumes", False, _VERBS)


class CsiSnapshots:
    """One cluster's side of a backup's volume snapshots (``client`` is a ``kube.KubeClient``)."""

    def __init__(self, client: Any, *, page_size: int = 500) -> None:
        self._client = client
        self._page_size = page_size
        self.unreachable: str | None = None  # why the last ``observe`` could not reach the API server, if it could not

    def claims(self, scope: BackupScope, namespaces: Iterable[str]) -> list[Claim]:
        """The claims the backup holds: claims are in its scope, in a selected namespace, and match its labels."""
        if not scope.resource_selected(CLAIMS):
            return []
        selected = set(namespaces)
        volumes = {
            str((pv.get("metadata") or {}).get("name")): pv for pv in self._list(VOLUMES.collection_path(), None)
        }
        claims = []
        for pvc in self._list(CLAIMS.collection_path(), scope.server_selector()):
            meta = pvc.get("metadata") or {}
            if meta.get("namespace") not in selected or not scope.object_selected(pvc):
                continue
            bound = (pvc.get("spec") or {}).get("volumeName")
            claims.append(Claim.of(pvc, volumes.get(bound) if bound else None))
        return claims

    def classes(self) -> list[SnapshotClassInfo]:
        """The cluster's VolumeSnapshotClasses; none when the snapshot API is not installed."""
        try:
            return [SnapshotClassInfo.of(obj) for obj in self._list(CLASSES.collection_path(), None)]
        except NotFound:
            return []

    def create(self, records: Iterable[VolumeRecord], backup_id: str) -> list[VolumeRecord]:
        """Create the VolumeSnapshot of every PENDING record; one that exists already (a redelivered job) is kept."""
        out = []
        for record in records:
            if record.state == PENDING and record.type == CSI:
                try:
                    self._client.create(SNAPSHOTS, snapshot_body(record, backup_id), namespace=record.namespace)
                except AlreadyExists:
                    pass  # the name is the backup's own: an earlier delivery created it
                except KubeError as exc:
                    record = replace(record, state=FAILED, error=f"could not create the VolumeSnapshot: {exc}")
            out.append(record)
        return out

    def observe(self, records: Iterable[VolumeRecord], now: str, backup_id: str) -> list[VolumeRecord]:
        """Every PENDING record as its snapshot stands now; a read that fails leaves it PENDING for the next look.

        A ready snapshot's content is labelled with the backup and switched to Retain (the class's policy kept in
        an annotation), so retention and the orphan sweep find it, and deleting the namespace or the snapshot
        object does not delete the backup's data."""
        out = []
        self.unreachable = None
        for record in records:
            if record.state == PENDING and record.type == CSI:
                try:
                    snapshot = self._client.get_object(SNAPSHOTS, record.snapshot_name, record.namespace)
                    bound = ((snapshot or {}).get("status") or {}).get("boundVolumeSnapshotContentName")
                    content = self._client.get_object(CONTENTS, bound) if bound else None
                    seen = observe(record, snapshot, content, now)
                    if seen.state == READY:
                        self._keep(seen, backup_id)
                except KubeError as exc:
                    if isinstance(exc, Unreachable):
                        self.unreachable = str(exc)
                    out.append(record)  # looked at again next time
                    continue
                record = seen
            out.append(record)
        return out

    def _keep(self, record: VolumeRecord, backup_id: str) -> None:
        patch = {
            "metadata": {
                "labels": {BACKUP_ID_LABEL: backup_id},
                "annotations": {DELETION_POLICY_ANNOTATION: record.deletion_policy or "Delete"},
            },
            "spec": {"deletionPolicy": "Retain"},
        }
        self._client.patch(CONTENTS, record.content_name, patch)

    # -- lifecycle ------------------------------------------------------------------------------------------------

    def labelled_snapshots(self) -> list[dict[str, Any]]:
        """Every VolumeSnapshot a backup made (labelled with its backup id), in every namespace."""
        try:
            return list(self._list(SNAPSHOTS.collection_path(), BACKUP_ID_LABEL))
        except NotFound:
            return []

    def labelled_contents(self) -> list[dict[str, Any]]:
        """Every VolumeSnapshotContent holding a backup's data (labelled once its snapshot was ready)."""
        try:
            return list(self._list(CONTENTS.collection_path(), BACKUP_ID_LABEL))
        except NotFound:
            return []

    def delete_snapshot(self, namespace: str, name: str) -> None:
        """Delete a backup's VolumeSnapshot object; its content is Retain, so the data stays until the content goes."""
        with contextlib.suppress(NotFound):  # gone already: a sweep repeated after a crash
            self._client.delete(SNAPSHOTS, name, namespace)

    def delete_content(self, name: str, *, delete_storage: bool) -> None:
        """Delete a backup's content; with ``delete_storage`` switch it back to Delete first, so the CSI driver
        deletes the storage snapshot too."""
        with contextlib.suppress(NotFound):  # gone already: a sweep repeated after a crash
            if delete_storage:
                self._client.patch(CONTENTS, name, {"spec": {"deletionPolicy": "Delete"}})
            self._client.delete(CONTENTS, name)

    def _list(self, path: str, selector: str | None) -> Iterable[dict[str, Any]]:
        items: dict[tuple[str, str], dict[str, Any]] = {}
        for page in self._client.list_pages(path, limit=self._page_size, label_selector=selector or None):
            if page.restarted:
                items.clear()  # an expired continue token restarted the list: what came before is listed again
            for obj in page.items:
                meta = obj.get("metadata") or {}
                items[(str(meta.get("namespace") or ""), str(meta.get("name") or ""))] = obj
        return list(items.values())
