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


def discover(get: Callable[[str], dict[str, Any]]) -> tuple[list[Resource], list[tuple[str, str]]]:
    """All top-level resource types, and (group/version, error) for groups whose discovery failed and were skipped.

    ``get`` fetches one discovery path. Failing ``/api`` or ``/apis`` fails discovery; one broken group (typically
    an aggregated API whose backend is down, answering 503) must not stop a backup of everything else.
    """
    core_versions = get("/api").get("versions") or ["v1"]
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
