"""What a GitOps export keeps of an object: only what its author would write by hand. Pure functions: no I/O.

Dropped whole: objects a controller owns (an ``ownerReferences`` entry with ``controller: true``), what the cluster
makes by itself (Events, Endpoints, EndpointSlices, the ``kube-root-ca.crt`` ConfigMap, service-account token
Secrets) and, unless asked, Secrets. Dropped from what is kept: ``status``, server-set metadata (uid,
resourceVersion, managedFields, ownerReferences, ...), a Service's allocated ``clusterIP(s)`` and the node ports
its author did not set (``core/nodeports.py``, or as the backup recorded them in ``lifeboat.io/user-node-ports``).
"""

from __future__ import annotations

import copy
from typing import Any, Literal

from chalicelib.core.nodeports import LAST_APPLIED, PortKey, strip_allocated_node_ports, user_node_ports
from chalicelib.core.sanitize import USER_NODE_PORTS_ANNOTATION

SecretsMode = Literal["omit", "include", "sealed"]  # sealed: kept here, sealed by the export (core/sealed_secrets.py)
SECRETS_MODES: tuple[SecretsMode, ...] = ("omit", "include", "sealed")

_CLUSTER_MADE = frozenset(
    {("", "Event"), ("events.k8s.io", "Event"), ("", "Endpoints"), ("discovery.k8s.io", "EndpointSlice")}
)
_SERVER_METADATA = (
    "uid",
    "resourceVersion",
    "creationTimestamp",
    "generation",
    "managedFields",
    "selfLink",
    "ownerReferences",
    "deletionTimestamp",
    "deletionGracePeriodSeconds",
)
# Backups strip last-applied and managedFields, so a blob names its Service's user-set node ports in this
# annotation ("80/TCP,443/TCP"; written by core/sanitize.py, sanitizer version 2). It is Lifeboat's, not the author's.
_SERVER_ANNOTATIONS = (LAST_APPLIED, "deployment.kubernetes.io/revision", USER_NODE_PORTS_ANNOTATION)


def group_of(obj: dict[str, Any]) -> str:
    api_version = str(obj.get("apiVersion") or "")
    return api_version.rsplit("/", 1)[0] if "/" in api_version else ""


def for_gitops(obj: dict[str, Any], *, secrets: SecretsMode = "omit") -> dict[str, Any] | None:
    """A copy of ``obj`` as its author would commit it, or None when it does not belong in the tree."""
    if _dropped(obj, secrets):
        return None
    out = copy.deepcopy(obj)
    out.pop("status", None)
    meta = out.get("metadata")
    if isinstance(meta, dict):
        for key in _SERVER_METADATA:
            meta.pop(key, None)
        annotations = meta.get("annotations")
        if isinstance(annotations, dict):
            for key in _SERVER_ANNOTATIONS:
                annotations.pop(key, None)
            if not annotations:
                meta.pop("annotations")
    if out.get("kind") == "Service" and group_of(out) == "":
        _clean_service(obj, out)
    return out


def _dropped(obj: dict[str, Any], secrets: SecretsMode) -> bool:
    kind = obj.get("kind")
    group = group_of(obj)
    meta = obj.get("metadata") or {}
    if (group, kind) in _CLUSTER_MADE:
        return True
    if any(isinstance(ref, dict) and ref.get("controller") for ref in meta.get("ownerReferences") or []):
        return True
    if group == "" and kind == "ConfigMap" and meta.get("name") == "kube-root-ca.crt":
        return True
    if group == "" and kind == "Secret":
        return secrets == "omit" or obj.get("type") == "kubernetes.io/service-account-token"
    return False


def _clean_service(original: dict[str, Any], out: dict[str, Any]) -> None:
    spec = out.get("spec")
    if not isinstance(spec, dict):
        return
    if spec.get("clusterIP") != "None":  # a headless Service says so by hand; any other address was allocated
        spec.pop("clusterIP", None)
        spec.pop("clusterIPs", None)
    strip_allocated_node_ports(spec, user_node_ports(original) | _recorded_node_ports(original))


def _recorded_node_ports(service: dict[str, Any]) -> set[PortKey]:
    raw = ((service.get("metadata") or {}).get("annotations") or {}).get(USER_NODE_PORTS_ANNOTATION) or ""
    keys: set[PortKey] = set()
    for item in str(raw).split(","):
        port, _, protocol = item.strip().partition("/")
        if port.isdigit():
            keys.add((int(port), protocol or "TCP"))
    return keys
