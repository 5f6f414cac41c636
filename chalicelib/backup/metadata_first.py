"""An incremental backup lists object metadata first: an unchanged object needs no more, a changed one is read whole.

The API server sends ~300 bytes of metadata instead of the whole object, and the backup decodes that much. The
types listed so are the namespaced ones the backup reads nothing else of (``MetadataFirst.wants``); what a page
holds that is not unchanged is read with one GET per object (``read_whole``), unless there are too many of them:
then the listing thread reads that page again whole, with the continue token it came with, and the rest of the
type's list whole too (``iter_pages``). While the parent's entries are still being read, the listing threads do
not wait for them: each page is kept as metadata, and the collector, which has the entries, reads what is not
unchanged (``read_changed``): the page again whole, with the token it was asked for with, when that is most of it.
"""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import Executor
from typing import Any

from chalicelib.backup.listing import Page
from chalicelib.backup.reuse import PriorObjects, same_state
from chalicelib.core.references import names_other_objects
from chalicelib.core.resources import Resource
from chalicelib.core.scope import BackupScope

# A page of metadata will do while this few of its objects need a GET; more, and reading it again whole is cheaper.
MIN_GETS_PER_PAGE = 4
GET_FRACTION = 16  # ... or one object in this many of the page
# A page of more objects than this is judged by one object in SAMPLE_STRIDE, each miss counting for as many: the
# collector compares every object again anyway (``ItemCollector._store``), so an exact count would do that twice.
SAMPLE_FROM = 128
SAMPLE_STRIDE = 8


class MetadataFirst:
    """For ``PageStream``: the types to list as metadata first, and per type whether a page of metadata will do.

    ``prior`` gives the parent backup's entries once they are read (None: no reuse, so no page will do); it is
    called from the listing threads, which wait for it on their first page unless ``ready`` says it is not read
    yet: then the page will do, as the collector reads whole what it must (``read_changed``). Whether a page will do
    is an estimate (the uid and resourceVersion against the parent's entries): what must be read whole is decided
    again by the collector (``ItemCollector.take_unread``), so a wrong estimate costs requests, never an object; a
    large page is judged by a sample of its objects (``SAMPLE_STRIDE``).
    """

    def __init__(
        self,
        scope: BackupScope,
        namespaces: frozenset[str],
        prior: Callable[[], PriorObjects | None],
        ready: Callable[[], bool] | None = None,
    ):
        self._scope = scope
        self._namespaces = namespaces
        self._prior = prior
        self._ready = ready

    def __call__(self, res: Resource) -> Callable[[list[dict[str, Any]]], bool] | None:
        if not wants(res):
            return None
        return lambda items: self._will_do(res, items)

    def _will_do(self, res: Resource, items: list[dict[str, Any]]) -> bool:
        if not items:
            return True  # an empty type costs its one request, without waiting for the parent
        if self._ready is not None and not self._ready():
            return True  # the collector, which will have the parent's entries, reads whole what it must
        try:
            prior = self._prior()
        except Exception:  # noqa: BLE001 -- the backup hears of a parent it cannot read from the collector
            return False
        packed = prior.packed(res) if prior is not None else None
        if not packed:
            return False
        allowed = allowed_gets(len(items))
        namespaces, selected = self._namespaces, self._scope.object_selected
        weight = SAMPLE_STRIDE if len(items) > SAMPLE_FROM else 1
        misses = 0
        for obj in items[::weight]:
            meta = obj.get("metadata") or {}
            if meta.get("namespace", "") not in namespaces or not selected(obj):
                continue
            value = packed.get(meta.get("uid") or "")
            rv = meta.get("resourceVersion") or ""
            if value is None or not rv or not same_state(value, rv, meta.get("name", "")):
                misses += weight
                if misses > allowed:
                    return False
        return True


def allowed_gets(listed: int) -> int:
    """How many objects of a page of ``listed`` are read with a GET each; more, and the page is read again whole."""
    return max(MIN_GETS_PER_PAGE, listed // GET_FRACTION)


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


def read_changed(
    client: Any,
    res: Resource,
    listed: list[dict[str, Any]],
    page: Page,
    pool: Executor,
    *,
    path: str,
    label_selector: str | None,
    page_size: int,
) -> list[dict[str, Any]]:
    """The objects of ``page`` (of metadata, listed from ``path``) whose metadata ``listed`` holds, read whole: the
    page again, with the continue token it was asked for with (the same snapshot, one request), when more of them
    than ``allowed_gets`` are; else, or when it was its list's first page (asked for again it would be a new
    snapshot) or the server has forgotten the token, one GET each (``read_whole``)."""
    from chalicelib.kube.errors import Gone
    from chalicelib.kube.paging import iter_pages

    token = page.requested_with
    if token and len(listed) > allowed_gets(len(page.items)):
        pages = iter_pages(
            lambda p, params: client.get(p, params),
            path,
            limit=page_size,
            label_selector=label_selector,
            continue_token=token,
            max_restarts=0,
        )
        try:
            again = next(pages)  # only this page: the list is not followed further
        except Gone:
            return read_whole(client, res, listed, pool)
        wanted = {(obj.get("metadata") or {}).get("uid") for obj in listed}
        whole = [obj for obj in again.items if (obj.get("metadata") or {}).get("uid") in wanted]
        if len(whole) == len(wanted):
            return whole
        # Not what the same snapshot holds (a server that answered otherwise): what is missing is read by GET.
        found = {(obj.get("metadata") or {}).get("uid") for obj in whole}
        missing = [obj for obj in listed if (obj.get("metadata") or {}).get("uid") not in found]
        return whole + read_whole(client, res, missing, pool)
    return read_whole(client, res, listed, pool)
