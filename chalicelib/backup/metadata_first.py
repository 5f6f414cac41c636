"""An incremental backup lists object metadata first: an unchanged object needs no more, a changed one is read whole.

The API server sends ~300 bytes of metadata instead of the whole object, and the backup decodes that much. The
types listed so are the namespaced ones the backup reads nothing else of (``MetadataFirst.wants``); what a page
holds that is not unchanged is read with one GET per object (``read_whole``), unless there are too many of them:
then the listing thread reads that page again whole, with the continue token it came with, and the rest of the
type's list whole too (``iter_pages``).
"""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import Executor
from typing import Any

from chalicelib.backup.reuse import PriorObjects, same_state
from chalicelib.core.references import names_other_objects
from chalicelib.core.resources import Resource
from chalicelib.core.scope import BackupScope

# A page of metadata will do while this few of its objects need a GET; more, and reading it again whole is cheaper.
MIN_GETS_PER_PAGE = 4
GET_FRACTION = 16  # ... or one object in this many of the page


class MetadataFirst:
    """For ``PageStream``: the types to list as metadata first, and per type whether a page of metadata will do.

    ``prior`` gives the parent backup's entries once they are read (None: no reuse, so no page will do); it is
    called from the listing threads, which wait for it on their first page. Whether a page will do is an estimate
    (the uid and resourceVersion against the parent's entries): what must be read whole is decided again by the
    collector (``ItemCollector.take_unread``), so a wrong estimate costs requests, never an object.
    """

    def __init__(self, scope: BackupScope, namespaces: frozenset[str], prior: Callable[[], PriorObjects | None]):
        self._scope = scope
        self._namespaces = namespaces
        self._prior = prior

    def __call__(self, res: Resource) -> Callable[[list[dict[str, Any]]], bool] | None:
        if not wants(res):
            return None
        return lambda items: self._will_do(res, items)

    def _will_do(self, res: Resource, items: list[dict[str, Any]]) -> bool:
        if not items:
            return True  # an empty type costs its one request, without waiting for the parent
        try:
            prior = self._prior()
        except Exception:  # noqa: BLE001 -- the backup hears of a parent it cannot read from the collector
            return False
        packed = prior.packed(res) if prior is not None else None
        if not packed:
            return False
        allowed = max(MIN_GETS_PER_PAGE, len(items) // GET_FRACTION)
        namespaces, selected = self._namespaces, self._scope.object_selected
        misses = 0
        for obj in items:
            meta = obj.get("metadata") or {}
            if meta.get("namespace", "") not in namespaces or not selected(obj):
                continue
            value = packed.get(meta.get("uid") or "")
            rv = meta.get("resourceVersion") or ""
            if value is None or not rv or not same_state(value, rv, meta.get("name", "")):
                misses += 1
                if misses > allowed:
                    return False
        return True


def wants(res: Resource) -> bool:
    """Whether ``res`` can be listed as metadata first: namespaced (cluster types are listed apart), readable one
    object at a time, and not a type whose objects name others a backup takes along (their spec is read)."""
    return res.namespaced and "get" in res.verbs and not names_other_objects(res)


def read_whole(client: Any, res: Resource, listed: list[dict[str, Any]], pool: Executor) -> list[dict[str, Any]]:
    """The objects of type ``res`` whose metadata is ``listed``, read with a GET each on ``pool``; one deleted since
    it was listed is left out, as a list a moment later would have. Any other failure raises."""
    from chalicelib.kube.errors import NotFound

    def read(obj: dict[str, Any]) -> dict[str, Any] | None:
        meta = obj.get("metadata") or {}
        try:
            whole: dict[str, Any] = client.get(res.object_path(meta.get("name", ""), meta.get("namespace")))
        except NotFound:
            return None
        return whole

    return [obj for obj in pool.map(read, listed) if obj is not None]
