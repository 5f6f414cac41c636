"""The snapshot.storage.k8s.io/v1 CRDs' schema rules: required fields, enums, oneOf sources and immutability.

These are the checks of the external-snapshotter's CRDs (client/config/crd, v8) that a client can get wrong, so an
object this server accepts would also be accepted by a real apiserver with those CRDs installed.
"""

from __future__ import annotations

from typing import Any

from sandbox.kubeapi.errors import FieldError

GROUP = "snapshot.storage.k8s.io"
DELETION_POLICIES = ("Delete", "Retain")
_ONE_OF = "must validate one and only one schema (oneOf)"

Obj = dict[str, Any]


def validate(kind: str, obj: Obj, old: Obj | None) -> list[FieldError]:
    """The schema errors of a VolumeSnapshot, VolumeSnapshotClass or VolumeSnapshotContent (others pass)."""
    if kind == "VolumeSnapshotClass":
        return _class(obj)
    if kind == "VolumeSnapshot":
        return _snapshot(obj, old)
    if kind == "VolumeSnapshotContent":
        return _content(obj, old)
    return []


def _policy(value: Any, path: str) -> list[FieldError]:
    if value is None:
        return [FieldError(path, "Required")]
    if value not in DELETION_POLICIES:
        return [FieldError(path, "Unsupported", value, 'supported values: "Delete", "Retain"')]
    return []


def _class(obj: Obj) -> list[FieldError]:
    errors = [] if obj.get("driver") else [FieldError("driver", "Required")]
    return errors + _policy(obj.get("deletionPolicy"), "deletionPolicy")


def _one_of(source: Any, path: str, fields: tuple[str, str]) -> list[FieldError]:
    if not isinstance(source, dict):
        return [FieldError(path, "Required")]
    if sum(1 for f in fields if source.get(f)) != 1:
        return [FieldError(path, "Invalid", source, _ONE_OF)]
    return []


def _immutable_source(spec: Obj, old: Obj | None, path: str) -> list[FieldError]:
    old_spec = (old or {}).get("spec") or {}
    if old is not None and old_spec.get("source") != spec.get("source"):
        return [FieldError(path, "Invalid", "object", "source is immutable")]
    return []


def _snapshot(obj: Obj, old: Obj | None) -> list[FieldError]:
    spec = obj.get("spec")
    if not isinstance(spec, dict):
        return [FieldError("spec", "Required")]
    errors = _one_of(spec.get("source"), "spec.source", ("persistentVolumeClaimName", "volumeSnapshotContentName"))
    if "volumeSnapshotClassName" in spec and not spec["volumeSnapshotClassName"]:
        detail = "volumeSnapshotClassName must not be the empty string when set"
        errors.append(FieldError("spec", "Invalid", "object", detail))
    return errors + _immutable_source(spec, old, "spec.source")


def _content(obj: Obj, old: Obj | None) -> list[FieldError]:
    spec = obj.get("spec")
    if not isinstance(spec, dict):
        return [FieldError("spec", "Required")]
    errors = _policy(spec.get("deletionPolicy"), "spec.deletionPolicy")
    if not spec.get("driver"):
        errors.append(FieldError("spec.driver", "Required"))
    errors.extend(_one_of(spec.get("source"), "spec.source", ("snapshotHandle", "volumeHandle")))
    ref = spec.get("volumeSnapshotRef")
    if not isinstance(ref, dict):
        errors.append(FieldError("spec.volumeSnapshotRef", "Required"))
    elif not (ref.get("name") and ref.get("namespace")):
        detail = "both spec.volumeSnapshotRef.name and spec.volumeSnapshotRef.namespace must be set"
        errors.append(FieldError("spec.volumeSnapshotRef", "Invalid", "object", detail))
    return errors + _immutable_source(spec, old, "spec.source")
