"""URL paths of the Kubernetes REST API, parsed into what they address."""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import unquote

BULK_PATH = "/_lifeboat/bulk"  # test-only seeding endpoint; no real API server has it

# Subresources of namespaces share the path shape of a namespaced collection (namespaces/{ns}/{plural}).
_NAMESPACE_SUBRESOURCES = ("status", "finalize")


@dataclass(frozen=True, slots=True)
class Route:
    kind: str  # version | core | groups | group | resources | resource | bulk | health | unknown
    group: str = ""
    version: str = ""
    plural: str = ""
    namespace: str | None = None
    name: str | None = None
    subresource: str = ""


def parse(path: str) -> Route:
    parts = [unquote(p) for p in path.strip("/").split("/")] if path.strip("/") else []
    if path == BULK_PATH:
        return Route("bulk")
    if parts in (["version"], ["version", ""]):
        return Route("version")
    if parts and parts[0] in ("healthz", "livez", "readyz"):
        return Route("health")
    if parts == ["api"]:
        return Route("core")
    if parts == ["apis"]:
        return Route("groups")
    if len(parts) >= 2 and parts[0] == "api":
        return _resource("", parts[1], parts[2:])
    if len(parts) == 2 and parts[0] == "apis":
        return Route("group", group=parts[1])
    if len(parts) >= 3 and parts[0] == "apis":
        return _resource(parts[1], parts[2], parts[3:])
    return Route("unknown")


def _resource(group: str, version: str, rest: list[str]) -> Route:
    if not rest:
        return Route("resources", group, version)
    if rest[0] == "namespaces" and len(rest) >= 3 and not (len(rest) == 3 and rest[2] in _NAMESPACE_SUBRESOURCES):
        namespace, rest = rest[1], rest[2:]
    else:
        namespace = None
    if len(rest) > 3 or any(p == "" for p in rest):
        return Route("unknown")
    plural = rest[0]
    name = rest[1] if len(rest) > 1 else None
    sub = rest[2] if len(rest) > 2 else ""
    return Route("resource", group, version, plural, namespace, name, sub)
