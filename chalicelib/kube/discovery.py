"""Which resource types a cluster serves: core, every group's preferred version, CRDs and aggregated APIs."""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from chalicelib.core.resources import Resource
from chalicelib.kube.errors import KubeError
from chalicelib.observability import logger

# Enough to overlap the round trips of a few dozen groups without stampeding a small API server.
DISCOVERY_WORKERS = 8


# Every group's resources in one document (KEP-3352, apidiscovery.k8s.io/v2: beta in v1.27, GA in v1.30), else the
# plain APIVersions/APIGroupList and a request per group.
AGGREGATED_ACCEPT = "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList,application/json"
AGGREGATED_KIND = "APIGroupDiscoveryList"


def discover(get: Callable[..., dict[str, Any]]) -> tuple[list[Resource], list[tuple[str, str]]]:
    """All top-level resource types, and (group/version, error) for groups whose discovery failed and were skipped.

    ``get(path, accept)`` fetches one discovery path. A server with aggregated discovery answers ``/api`` and
    ``/apis`` with every group's resources: two requests in all. Otherwise every group's preferred version is one
    more request. Failing ``/api`` or ``/apis`` fails discovery; one broken group (typically an aggregated API whose
    backend is down: 503, or a stale entry in the aggregated document) must not stop a backup of everything else.
    """
    core = get("/api", AGGREGATED_ACCEPT)
    if core.get("kind") == AGGREGATED_KIND:
        groups = get("/apis", AGGREGATED_ACCEPT)
        if groups.get("kind") == AGGREGATED_KIND:
            return _aggregated([*(core.get("items") or []), *(groups.get("items") or [])], core_items=1)
        group_list = groups.get("groups") or []
        core_versions = ["v1"]
    else:
        core_versions = core.get("versions") or ["v1"]
        group_list = get("/apis").get("groups") or []
    paths = [(f"/api/{version}", "", version) for version in core_versions]
    for group in group_list:
        preferred = group.get("preferredVersion") or (group.get("versions") or [{}])[0]
        version = preferred.get("version")
        if group.get("name") and version:
            paths.append((f"/apis/{group['name']}/{version}", group["name"], version))

    def fetch(entry: tuple[str, str, str]) -> list[Resource] | KubeError:
        path, group_name, version = entry
        try:
            return _resources(get(path), group_name, version)
        except KubeError as exc:
            return exc

    resources: list[Resource] = []
    errors: list[tuple[str, str]] = []
    with ThreadPoolExecutor(max_workers=min(DISCOVERY_WORKERS, max(1, len(paths)))) as pool:
        # map keeps the server's order, so discovery output is stable between runs.
        for (_, group_name, version), outcome in zip(paths, pool.map(fetch, paths), strict=True):
            if isinstance(outcome, KubeError):
                group_version = f"{group_name}/{version}" if group_name else version
                logger().warning("skipping API group whose discovery failed", extra={"group_version": group_version})
                errors.append((group_version, str(outcome)))
            else:
                resources.extend(outcome)
    return resources, errors


def _aggregated(items: list[Any], *, core_items: int) -> tuple[list[Resource], list[tuple[str, str]]]:
    """The resources of each group's preferred version (its first) in aggregated discovery documents; the first
    ``core_items`` items are ``/api``'s (the core group, which has no name). A version whose entry is stale (its
    aggregated API server did not answer the API server) is skipped and reported, as a failing group is."""
    resources: list[Resource] = []
    errors: list[tuple[str, str]] = []
    for at, item in enumerate(items):
        if not isinstance(item, dict):
            continue
        group = "" if at < core_items else str((item.get("metadata") or {}).get("name") or "")
        versions = [v for v in item.get("versions") or [] if isinstance(v, dict) and v.get("version")]
        if not versions or (at >= core_items and not group):
            continue
        preferred = versions[0]
        version = str(preferred["version"])
        if preferred.get("freshness") == "Stale":
            group_version = f"{group}/{version}" if group else version
            logger().warning("skipping API group whose discovery is stale", extra={"group_version": group_version})
            errors.append((group_version, "discovery is stale: its aggregated API server did not answer"))
            continue
        for entry in preferred.get("resources") or []:
            plural = entry.get("resource") or ""
            if not plural or "/" in plural:
                continue
            kind = (entry.get("responseKind") or {}).get("kind") or ""
            resources.append(
                Resource(
                    group=group,
                    version=version,
                    kind=kind,
                    plural=plural,
                    namespaced=entry.get("scope") == "Namespaced",
                    verbs=frozenset(entry.get("verbs") or ()),
                )
            )
    return resources, errors


def _resources(body: dict[str, Any], group: str, version: str) -> list[Resource]:
    found = []
    for entry in body.get("resources") or []:
        name = entry.get("name") or ""
        if not name or "/" in name:  # subresources such as pods/log or deployments/scale
            continue
        found.append(
            Resource(
                group=group,
                version=version,
                kind=entry.get("kind") or "",
                plural=name,
                namespaced=bool(entry.get("namespaced")),
                verbs=frozenset(entry.get("verbs") or ()),
            )
        )
    return found
