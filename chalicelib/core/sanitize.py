"""Strip what the server sets, so identical objects hash identically across backups and clusters."""

from __future__ import annotations

from typing import Any

from chalicelib.core.nodeports import user_node_ports

# Bump whenever the rules below change what a blob holds: trees record it, and a backup reuses an earlier backup's
# blob for an unchanged object only when that blob was made by the same rules (backup/reuse.py).
SANITIZER_VERSION = 2  # 2: Services name their user-set node ports (USER_NODE_PORTS_ANNOTATION)

# metadata fields set by the API server; they change without the object changing.
_SERVER_METADATA = (
    "uid",
    "resourceVersion",
    "generation",
    "creationTimestamp",
    "managedFields",
    "selfLink",
    "deletionTimestamp",
    "deletionGracePeriodSeconds",
)

_SERVER_METADATA_KEYS = frozenset(_SERVER_METADATA)

# Annotations written by clients or controllers, not by the object's author. The last-applied
# configuration is a copy of the object itself: derivable, and it doubles the size of a blob.
SERVER_ANNOTATIONS = frozenset(
    {
        "kubectl.kubernetes.io/last-applied-configuration",
        "deployment.kubernetes.io/revision",
        "control-plane.alpha.kubernetes.io/leader",
    }
)


# On a backed-up Service: the ports whose node port its author set, as "port/protocol" joined by commas. The
# last-applied annotation and managedFields that tell them apart from allocated ones are stripped from the blob;
# the restore keeps these node ports and lets the target cluster allocate the others.
USER_NODE_PORTS_ANNOTATION = "lifeboat.io/user-node-ports"


def sanitize_for_backup(obj: dict[str, Any], kind: str, api_version: str) -> dict[str, Any]:
    """``sanitize`` plus what a blob records before the server-set fields go: a Service's user-set node ports."""
    out = sanitize(obj, kind, api_version)
    if kind == "Service" and api_version == "v1":
        keys = user_node_ports(obj)
        if keys:
            meta = out["metadata"] = dict(out["metadata"])
            meta["annotations"] = {
                **(meta.get("annotations") or {}),
                USER_NODE_PORTS_ANNOTATION: ",".join(f"{port}/{proto}" for port, proto in sorted(keys)),
            }
    return out


def sanitize(obj: dict[str, Any], kind: str, api_version: str) -> dict[str, Any]:
    """A copy of ``obj`` without status and server-set fields, with ``kind``/``apiVersion`` filled in.

    List responses omit ``kind`` and ``apiVersion`` on items; they are restored from the resource type.
    """
    out = obj.copy()  # a shallow copy in C; only the top level and metadata are changed, never nested values
    out.pop("status", None)
    out["kind"] = kind
    out["apiVersion"] = api_version
    meta = obj.get("metadata") or {}
    meta = {k: v for k, v in meta.items() if k not in _SERVER_METADATA_KEYS}
    annotations = meta.get("annotations")
    if annotations:
        kept = {k: v for k, v in annotations.items() if k not in SERVER_ANNOTATIONS}
        if kept:
            meta["annotations"] = kept
        else:
            del meta["annotations"]
    elif "annotations" in meta:
        del meta["annotations"]
    if "labels" in meta and not meta["labels"]:
        del meta["labels"]
    out["metadata"] = meta
    return out
