"""Which node ports of a Service its author chose, and which the API server allocated.

A user-set node port is one named in the ``kubectl.kubernetes.io/last-applied-configuration`` annotation, or one
owned in ``metadata.managedFields`` by any manager (``f:spec``/``f:ports``/``k:{"port":..,"protocol":..}``/
``f:nodePort``). The API server's allocation is not recorded as a field manager, so a node port nobody owns was
allocated. Velero's Service restore action draws the same line. Pure functions: no I/O.
"""

from __future__ import annotations

from typing import Any

import orjson

LAST_APPLIED = "kubectl.kubernetes.io/last-applied-configuration"

PortKey = tuple[int, str]  # (port, protocol): how the API server keys spec.ports for merges


def _key(port: dict[str, Any]) -> PortKey | None:
    number = port.get("port")
    if not isinstance(number, int):
        return None
    return number, str(port.get("protocol") or "TCP")


def _from_last_applied(meta: dict[str, Any]) -> set[PortKey]:
    raw = (meta.get("annotations") or {}).get(LAST_APPLIED)
    if not raw:
        return set()
    try:
        applied = orjson.loads(raw)
    except orjson.JSONDecodeError:
        return set()
    ports = ((applied or {}).get("spec") or {}).get("ports") if isinstance(applied, dict) else None
    keys: set[PortKey] = set()
    for port in ports or []:
        if isinstance(port, dict) and port.get("nodePort"):
            key = _key(port)
            if key:
                keys.add(key)
    return keys


def _from_managed_fields(meta: dict[str, Any]) -> set[PortKey]:
    keys: set[PortKey] = set()
    for entry in meta.get("managedFields") or []:
        if not isinstance(entry, dict):
            continue
        ports = (((entry.get("fieldsV1") or {}).get("f:spec") or {}).get("f:ports")) or {}
        if not isinstance(ports, dict):
            continue
        for name, fields in ports.items():
            if not name.startswith("k:") or not isinstance(fields, dict) or "f:nodePort" not in fields:
                continue
            try:
                item = orjson.loads(name[2:])
            except orjson.JSONDecodeError:
                continue
            key = _key(item) if isinstance(item, dict) else None
            if key:
                keys.add(key)
    return keys


def user_node_ports(service: dict[str, Any]) -> set[PortKey]:
    """The (port, protocol) keys of the ports whose node port the Service's author set."""
    meta = service.get("metadata") or {}
    if not isinstance(meta, dict):
        return set()
    return _from_last_applied(meta) | _from_managed_fields(meta)


def strip_allocated_node_ports(spec: dict[str, Any], keep: set[PortKey]) -> list[int]:
    """Drop from ``spec`` (in place) every node port whose key is not in ``keep``; returns the dropped ports.

    ``healthCheckNodePort`` is always allocated unless set by hand, and nothing tells which: it is dropped too.
    """
    dropped: list[int] = []
    for port in spec.get("ports") or []:
        if not isinstance(port, dict) or not port.get("nodePort"):
            continue
        if _key(port) not in keep:
            dropped.append(port.pop("nodePort"))
    spec.pop("healthCheckNodePort", None)
    return dropped
