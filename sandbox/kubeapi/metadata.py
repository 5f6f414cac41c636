"""Object metadata the server owns: uid, resourceVersion, creationTimestamp, generation, generated names."""

from __future__ import annotations

import random
import uuid
from datetime import UTC, datetime
from typing import Any

from sandbox.kubeapi.catalog import ResourceType

# The alphabet and length of names generated from metadata.generateName (no vowels, no look-alike characters).
_NAME_ALPHABET = "bcdfghjklmnpqrstvwxz2456789"
_META_ORDER = (
    "name",
    "generateName",
    "namespace",
    "selfLink",
    "uid",
    "resourceVersion",
    "generation",
    "creationTimestamp",
    "deletionTimestamp",
    "deletionGracePeriodSeconds",
    "labels",
    "annotations",
    "ownerReferences",
    "finalizers",
)
_ORDERED = frozenset(_META_ORDER)
# resourceVersion is not among them: on an update it is the client's precondition.
_SERVER_FIELDS = (
    "uid",
    "generation",
    "creationTimestamp",
    "deletionTimestamp",
    "deletionGracePeriodSeconds",
    "selfLink",
    "managedFields",
)


_last_stamp: tuple[int, str] = (0, "")


def now() -> str:
    """RFC 3339 at second precision, as metadata timestamps are; formatted once per second (bulk loads)."""
    global _last_stamp
    current = datetime.now(UTC)
    second = int(current.timestamp())
    if _last_stamp[0] != second:
        _last_stamp = (second, current.strftime("%Y-%m-%dT%H:%M:%SZ"))
    return _last_stamp[1]


def generated_name(prefix: str) -> str:
    return prefix + "".join(random.choices(_NAME_ALPHABET, k=5))


def ordered_meta(meta: dict[str, Any]) -> dict[str, Any]:
    """Metadata in the field order the real server writes (what clients and golden files see)."""
    out = {}
    for key in _META_ORDER:
        value = meta.get(key)
        if value is None or (not value and value.__class__ in (str, list, dict)):
            continue  # empty fields are omitted, as Go's omitempty does
        out[key] = value
    if len(meta) > len(out):
        out.update((k, v) for k, v in meta.items() if k not in out and k not in _ORDERED and k != "managedFields")
    return out


def body_of(obj: dict[str, Any]) -> dict[str, Any]:
    """The stored form: metadata first, no kind/apiVersion, status last."""
    out: dict[str, Any] = {"metadata": ordered_meta(obj["metadata"])}
    for key, value in obj.items():
        if key not in ("kind", "apiVersion", "metadata", "status"):
            out[key] = value
    if "status" in obj:
        out["status"] = obj["status"]
    return out


def client_meta(meta: Any) -> dict[str, Any]:
    """The metadata a client may set; server-owned fields are dropped (the server sets them)."""
    if not isinstance(meta, dict):
        return {}
    return {k: v for k, v in meta.items() if k not in _SERVER_FIELDS}


def stamp_create(rtype: ResourceType, meta: dict[str, Any], rv: int) -> None:
    meta["uid"] = str(uuid.uuid4())
    meta["resourceVersion"] = str(rv)
    meta["creationTimestamp"] = now()
    if rtype.generation:
        meta["generation"] = 1
    else:
        meta.pop("generation", None)


def spec_changed(old: dict[str, Any], new: dict[str, Any]) -> bool:
    """Whether anything but metadata and status differs: what bumps metadata.generation."""
    keys = (set(old) | set(new)) - {"metadata", "status", "kind", "apiVersion"}
    return any(old.get(k) != new.get(k) for k in keys)


def carry_server_fields(old_meta: dict[str, Any], new_meta: dict[str, Any]) -> None:
    """On update the server keeps what it owns, whatever the client sent."""
    for key in ("uid", "creationTimestamp", "generation", "deletionTimestamp", "deletionGracePeriodSeconds"):
        if key in old_meta:
            new_meta[key] = old_meta[key]
        else:
            new_meta.pop(key, None)
