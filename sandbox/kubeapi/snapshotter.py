"""A simulated CSI external-snapshotter: the snapshot-controller and the csi-snapshotter sidecar of a real cluster.

A VolumeSnapshot of a bound PersistentVolumeClaim gets a VolumeSnapshotContent ``snapcontent-<snapshot uid>`` (the
class's driver and deletionPolicy, the volume's handle, a ``volumeSnapshotRef`` back), then, after ``ready_delay``
seconds, a ``snapshotHandle``, ``creationTime``, ``restoreSize`` and ``readyToUse`` on both. A pre-provisioned
content (``source.snapshotHandle``) binds to the snapshot naming it once the handle is found in the simulated
storage, and from then on belongs to that snapshot's uid: a snapshot created anew cannot bind to it. Deleting a
snapshot whose content says ``Delete`` deletes the content and the storage snapshot.

Faults: a claim's snapshot that never becomes ready, or that fails with an error status; a missing class (named or
default) is the same error a real controller reports. Finalizers are not modelled: deletes take effect at once.
"""

from __future__ import annotations

import contextlib
import hashlib
import re
import threading
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from sandbox.kubeapi.catalog import ResourceType
from sandbox.kubeapi.errors import ApiError
from sandbox.kubeapi.metadata import now
from sandbox.kubeapi.store import object_key

if TYPE_CHECKING:
    from sandbox.kubeapi.objects import ObjectAPI

GROUP = "snapshot.storage.k8s.io"
API_VERSION = f"{GROUP}/v1"
DEFAULT_CLASS_ANNOTATION = "snapshot.storage.kubernetes.io/is-default-class"
NEVER_READY, ERROR = "never-ready", "error"
_QUANTITY = re.compile(r"^(\d+)(Ki|Mi|Gi|Ti|k|M|G|T)?$")
_UNITS = {None: 1, "k": 10**3, "M": 10**6, "G": 10**9, "T": 10**12, "Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "Ti": 2**40}

Obj = dict[str, Any]


@dataclass(frozen=True, slots=True)
class StorageSnapshot:
    """A snapshot in the simulated storage system, found by its handle."""

    handle: str
    driver: str
    volume_handle: str
    size_bytes: int
    created_ns: int


class Snapshotter:
    """Reacts to snapshot objects through the object API's listeners. Off until ``enabled`` (a cluster without the
    snapshot controller leaves VolumeSnapshots untouched)."""

    def __init__(self, api: ObjectAPI, ready_delay: float = 0.0, enabled: bool = False) -> None:
        self.api = api
        self.enabled = enabled
        self.ready_delay = ready_delay
        self.storage: dict[str, StorageSnapshot] = {}
        self._faults: dict[tuple[str, str], tuple[str, str]] = {}  # (namespace, claim) -> (fault, message)
        api.hooks.listeners.append(self._event)

    # -- test controls -----------------------------------------------------------------------------------------

    def inject(self, namespace: str, claim: str, fault: str = NEVER_READY, message: str = "") -> None:
        """Snapshots of this claim never become ready (NEVER_READY) or fail with ``message`` (ERROR)."""
        if fault not in (NEVER_READY, ERROR):
            raise ValueError(f"unknown snapshot fault {fault!r}")
        self._faults[(namespace, claim)] = (fault, message or "rpc error: code = Internal desc = snapshot failed")

    def clear(self) -> None:
        self._faults.clear()

    # -- reactions ---------------------------------------------------------------------------------------------

    def _event(self, event: str, rtype: ResourceType, obj: Obj) -> None:
        if not self.enabled or rtype.group != GROUP:
            return
        if event == "created" and rtype.kind == "VolumeSnapshot" and not (obj.get("status") or {}):
            self._snapshot_created(obj)
        elif event == "deleted" and rtype.kind == "VolumeSnapshot":
            self._snapshot_deleted(obj)
        elif event == "deleted" and rtype.kind == "VolumeSnapshotContent":
            self._content_deleted(obj)

    def _type(self, group: str, plural: str) -> ResourceType:
        rtype = self.api.registry.get(group, plural)
        assert rtype is not None
        return rtype

    def _get(self, group: str, plural: str, namespace: str | None, name: str) -> Obj | None:
        stored = self.api.store.bucket(self._type(group, plural)).get(object_key(namespace, name))
        return stored.load() if stored is not None else None

    def _snapshot_created(self, snap: Obj) -> None:
        meta, spec = snap["metadata"], snap.get("spec") or {}
        source = spec.get("source") or {}
        if source.get("volumeSnapshotContentName"):
            self._bind_preprovisioned(snap, source["volumeSnapshotContentName"])
            return
        try:
            driver, volume_handle, size = self._volume(meta["namespace"], source["persistentVolumeClaimName"])
            klass = self._class(spec.get("volumeSnapshotClassName"), driver)
        except _SnapshotError as exc:
            self._snapshot_status(meta["namespace"], meta["name"], _error_status(str(exc)))
            return
        content_name = f"snapcontent-{meta['uid']}"
        content = {
            "apiVersion": API_VERSION,
            "kind": "VolumeSnapshotContent",
            "metadata": {"name": content_name},
            "spec": {
                "deletionPolicy": klass["deletionPolicy"],
                "driver": driver,
                "source": {"volumeHandle": volume_handle},
                "volumeSnapshotClassName": klass["metadata"]["name"],
                "volumeSnapshotRef": {
                    "apiVersion": API_VERSION,
                    "kind": "VolumeSnapshot",
                    "name": meta["name"],
                    "namespace": meta["namespace"],
                    "uid": meta["uid"],
                    "resourceVersion": meta.get("resourceVersion", ""),
                },
            },
        }
        contents = self._type(GROUP, "volumesnapshotcontents")
        self.api.create(contents, "v1", None, content, internal=True)
        self._snapshot_status(
            meta["namespace"], meta["name"], {"boundVolumeSnapshotContentName": content_name, "readyToUse": False}
        )
        fault = self._faults.get((meta["namespace"], source["persistentVolumeClaimName"]))
        if fault is not None and fault[0] == ERROR:
            self._fail(meta["namespace"], meta["name"], content_name, fault[1])
            return
        if fault is not None:
            return  # never ready: the sidecar's CreateSnapshot never completes
        handle = _handle(driver, meta["uid"])
        created = time.time_ns()
        self.storage[handle] = StorageSnapshot(handle, driver, volume_handle, size, created)
        self._later(self._ready, meta["namespace"], meta["name"], content_name, handle)

    def _later(self, action: Any, *args: Any) -> None:
        if self.ready_delay <= 0:
            action(*args)
            return
        timer = threading.Timer(self.ready_delay, self._locked, args=(action, *args))
        timer.daemon = True
        timer.start()

    def _locked(self, action: Any, *args: Any) -> None:
        # The snapshot or its content may have gone meanwhile; a real controller's update would fail too.
        with self.api.store.lock, contextlib.suppress(ApiError):
            action(*args)

    def _ready(self, namespace: str, name: str, content_name: str, handle: str) -> None:
        found = self.storage.get(handle)
        if found is None:
            return
        self._content_status(
            content_name,
            {
                "creationTime": found.created_ns,
                "readyToUse": True,
                "restoreSize": found.size_bytes,
                "snapshotHandle": handle,
            },
        )
        self._snapshot_status(
            namespace,
            name,
            {
                "boundVolumeSnapshotContentName": content_name,
                "creationTime": _rfc3339(found.created_ns),
                "readyToUse": True,
                "restoreSize": _quantity(found.size_bytes),
            },
        )

    def _fail(self, namespace: str, name: str, content_name: str, message: str) -> None:
        error = {"message": message, "time": now()}
        self._content_status(content_name, {"error": error, "readyToUse": False})
        status = {"boundVolumeSnapshotContentName": content_name, "error": error, "readyToUse": False}
        self._snapshot_status(namespace, name, status)

    def _bind_preprovisioned(self, snap: Obj, content_name: str) -> None:
        meta = snap["metadata"]
        content = self._get(GROUP, "volumesnapshotcontents", None, content_name)
        ref = ((content or {}).get("spec") or {}).get("volumeSnapshotRef") or {}
        if content is None or (ref.get("namespace"), ref.get("name")) != (meta["namespace"], meta["name"]):
            # The controller waits for a content that points back at the snapshot; it reports nothing yet.
            return
        bound_uid = ref.get("uid")
        if bound_uid and bound_uid != meta["uid"]:
            message = f"VolumeSnapshotContent {content_name} is bound to a different VolumeSnapshot (uid {bound_uid})"
            self._snapshot_status(meta["namespace"], meta["name"], _error_status(message))
            return
        if not bound_uid:
            # The controller completes the binding on the content side: from now on it belongs to this snapshot.
            content["spec"]["volumeSnapshotRef"]["uid"] = meta["uid"]
            contents = self._type(GROUP, "volumesnapshotcontents")
            meta_without_rv = {k: v for k, v in content["metadata"].items() if k != "resourceVersion"}
            self.api.replace(contents, "v1", None, content_name, {**content, "metadata": meta_without_rv})
        handle = (content["spec"].get("source") or {}).get("snapshotHandle", "")
        found = self.storage.get(handle)
        if found is None:
            message = f"rpc error: code = NotFound desc = snapshot {handle} not found"
            self._fail(meta["namespace"], meta["name"], content_name, message)
            return
        self._ready(meta["namespace"], meta["name"], content_name, handle)

    def _snapshot_deleted(self, snap: Obj) -> None:
        content_name = (snap.get("status") or {}).get("boundVolumeSnapshotContentName")
        content = self._get(GROUP, "volumesnapshotcontents", None, content_name) if content_name else None
        if content_name and content is not None and content["spec"].get("deletionPolicy") == "Delete":
            contents = self._type(GROUP, "volumesnapshotcontents")
            self.api.delete(contents, "v1", None, content_name, {})

    def _content_deleted(self, content: Obj) -> None:
        spec, status = content.get("spec") or {}, content.get("status") or {}
        handle = status.get("snapshotHandle") or (spec.get("source") or {}).get("snapshotHandle")
        if spec.get("deletionPolicy") == "Delete" and handle:
            self.storage.pop(handle, None)

    # -- lookups -----------------------------------------------------------------------------------------------

    def _volume(self, namespace: str, claim: str) -> tuple[str, str, int]:
        """The driver, volume handle and size of a claim's bound CSI volume."""
        pvc = self._get("", "persistentvolumeclaims", namespace, claim)
        if pvc is None:
            raise _SnapshotError(
                f"failed to get input parameters to create snapshot: failed to retrieve PVC {claim} from the lister: "
                f'persistentvolumeclaim "{claim}" not found'
            )
        volume = (pvc.get("spec") or {}).get("volumeName")
        pv = self._get("", "persistentvolumes", None, volume) if volume else None
        if pv is None:
            raise _SnapshotError(f"the PVC {claim} is not yet bound to a PV, will not attempt to take a snapshot")
        csi = (pv.get("spec") or {}).get("csi") or {}
        if not csi.get("driver") or not csi.get("volumeHandle"):
            raise _SnapshotError(f"the PV {volume} is not a CSI volume; cannot take a snapshot")
        size = _bytes((pv["spec"].get("capacity") or {}).get("storage", "0"))
        return csi["driver"], csi["volumeHandle"], size

    def _class(self, name: str | None, driver: str) -> Obj:
        if name:
            klass = self._get(GROUP, "volumesnapshotclasses", None, name)
            if klass is None:
                raise _SnapshotError(
                    f'Failed to get snapshot class with error volumesnapshotclass.snapshot.storage.k8s.io "{name}" '
                    "not found"
                )
            return klass
        bucket = self.api.store.bucket(self._type(GROUP, "volumesnapshotclasses"))
        for stored in list(bucket.objects.values()):
            klass = stored.load()
            annotations = (klass.get("metadata") or {}).get("annotations") or {}
            if klass.get("driver") == driver and annotations.get(DEFAULT_CLASS_ANNOTATION) == "true":
                return klass
        raise _SnapshotError("Failed to set default snapshot class with error cannot find default snapshot class")

    def _snapshot_status(self, namespace: str, name: str, status: Obj) -> None:
        snaps = self._type(GROUP, "volumesnapshots")
        body = {"metadata": {"name": name, "namespace": namespace}, "status": status}
        self.api.replace(snaps, "v1", namespace, name, body, subresource="status")

    def _content_status(self, name: str, status: Obj) -> None:
        contents = self._type(GROUP, "volumesnapshotcontents")
        body = {"metadata": {"name": name}, "status": status}
        self.api.replace(contents, "v1", None, name, body, subresource="status")


class _SnapshotError(Exception):
    """Why the controller cannot snapshot a claim; it becomes the snapshot's status.error."""


def _error_status(message: str) -> Obj:
    return {"error": {"message": message, "time": now()}, "readyToUse": False}


def _handle(driver: str, uid: str) -> str:
    digest = hashlib.sha256(uid.encode()).hexdigest()
    # The EBS driver's handles are EC2 snapshot ids; other drivers' are their own opaque ids.
    return f"snap-{digest[:17]}" if driver == "ebs.csi.aws.com" else f"{driver}-{digest[:32]}"


def _bytes(quantity: Any) -> int:
    match = _QUANTITY.match(str(quantity))
    return int(match.group(1)) * _UNITS[match.group(2)] if match else 0


def _quantity(size: int) -> str:
    for unit in ("Ti", "Gi", "Mi", "Ki"):
        if size and size % _UNITS[unit] == 0:
            return f"{size // _UNITS[unit]}{unit}"
    return str(size)


def _rfc3339(ns: int) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(ns / 1e9))
