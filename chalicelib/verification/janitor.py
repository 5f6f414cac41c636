"""Removes what verification runs left on a cluster: found by the ``lifeboat.io/verification`` label, never by name.

A run cleans up after itself; this covers the runs that could not (a Lambda killed mid-run, a cluster that stopped
answering during the cleanup). It deletes scratch namespaces and cluster-scoped objects carrying the label that are
older than the run timeout, so a run still in progress elsewhere is never touched.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from chalicelib.core.resources import Resource
from chalicelib.core.restore_options import VERIFICATION_LABEL
from chalicelib.kube.errors import KubeError, NotFound
from chalicelib.observability import logger
from chalicelib.retry import describe


def _utcnow() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True)
class Swept:
    deleted: tuple[str, ...] = ()  # "namespaces/<name>", "<group resource>/<name>"
    errors: tuple[str, ...] = ()


class Janitor:
    def __init__(self, client: Any, *, clock: Callable[[], datetime] = _utcnow) -> None:
        self._client = client
        self._clock = clock

    def sweep(self, *, older_than_s: int, keep: str | None = None) -> Swept:
        """Delete labelled leftovers created more than ``older_than_s`` ago, except those of run ``keep``."""
        cutoff = self._clock() - timedelta(seconds=older_than_s)

        def stale(obj: dict[str, Any]) -> bool:
            meta = obj.get("metadata") or {}
            if (meta.get("labels") or {}).get(VERIFICATION_LABEL) == keep:
                return False
            created = meta.get("creationTimestamp")
            return bool(created) and _parse(str(created)) < cutoff

        return self._delete_matching(VERIFICATION_LABEL, stale)

    def sweep_run(self, run_id: str) -> Swept:
        """Delete everything run ``run_id`` created (an earlier, crashed delivery of the same run)."""
        return self._delete_matching(f"{VERIFICATION_LABEL}={run_id}", lambda obj: True)

    def _delete_matching(self, selector: str, wanted: Callable[[dict[str, Any]], bool]) -> Swept:
        deleted: list[str] = []
        errors: list[str] = []
        for resource in self._cluster_types():
            try:
                found = list(self._list(resource, selector))
            except KubeError as exc:
                errors.append(f"{resource.group_resource} could not be listed: {describe(exc)}")
                continue
            for obj in found:
                name = str((obj.get("metadata") or {}).get("name", ""))
                if not name or (obj.get("metadata") or {}).get("deletionTimestamp") or not wanted(obj):
                    continue
                try:
                    self._client.delete(resource, name, propagation_policy="Background")
                except NotFound:
                    continue
                except KubeError as exc:
                    errors.append(f"{resource.group_resource}/{name} was not deleted: {describe(exc)}")
                    continue
                deleted.append(f"{resource.group_resource}/{name}")
        if deleted or errors:
            logger().info("verification leftovers swept", extra={"deleted": deleted, "errors": errors})
        return Swept(tuple(deleted), tuple(errors))

    def _cluster_types(self) -> list[Resource]:
        """Cluster-scoped types that can be listed and deleted; namespaces first (they hold most of a run)."""
        types = [r for r in self._client.discover() if not r.namespaced and {"list", "delete"} <= set(r.verbs)]
        return sorted(types, key=lambda r: (r.group_resource != "namespaces", r.group_resource))

    def _list(self, resource: Resource, selector: str) -> Iterable[dict[str, Any]]:
        for page in self._client.list_pages(resource.collection_path(None), label_selector=selector):
            yield from page.items


def _parse(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))
