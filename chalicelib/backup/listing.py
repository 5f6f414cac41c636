"""Listing: choose resource types from discovery, then list them page by page, several types at once."""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable, Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

from chalicelib.core.resources import Resource
from chalicelib.core.scope import BackupScope

_DONE = object()
# A whole page counts as this many pages of metadata against a PageStream's budget (an object's metadata is a few
# hundred bytes of it).
WHOLE_PAGE_UNITS = 4


@dataclass(frozen=True)
class Page:
    """One page of raw objects of one type; ``restarted`` means discard what this type gave before.

    ``continue_token`` resumes the type's list after this page; None means this page was its last.
    ``metadata_only``: the items are the objects' metadata alone (``PartialObjectMetadata``). ``requested_with``
    asks for this page again, whole (None: it was the first page of its list, which cannot be asked for again).
    """

    resource: Resource
    items: list[dict[str, Any]]
    restarted: bool = False
    continue_token: str | None = None
    metadata_only: bool = False
    requested_with: str | None = None


@dataclass(frozen=True)
class ListFailure:
    resource: Resource
    error: Exception


def select_resources(resources: list[Resource], scope: BackupScope) -> tuple[list[Resource], list[Resource]]:
    """The namespaced and cluster-scoped types a backup lists (Namespaces apart: they are listed first)."""
    namespaced: list[Resource] = []
    cluster: list[Resource] = []
    for res in resources:
        if res.group_resource == "namespaces" or not scope.resource_selected(res):
            continue
        (namespaced if res.namespaced else cluster).append(res)
    if scope.effective_cluster_scoped == "off":
        cluster = []
    return namespaced, cluster


class PageStream:
    """Pages of every type in ``resources``, listed by ``workers`` threads; a failed type yields a ListFailure.

    Namespaced types are listed in ``namespace`` only when it is given, cluster-wide otherwise. ``start`` maps a
    type (``group_resource``) to the continue token it resumes from. The pages of one type arrive in order, so a
    consumer that stops early resumes each type from the token of the last page it took.

    Listing starts when the stream is made, so the first pages are fetched while the caller still prepares (a
    backup reads its parent's trees meanwhile); the queue is bounded, so it never runs far ahead of the consumer:
    memory stays at a few pages. A page of metadata (``PartialObjectMetadata``, a few hundred bytes an object)
    counts as a ``WHOLE_PAGE_UNITS``-th of a whole page: ``workers * 2`` whole pages wait at most, or four times as
    many of metadata. Iterate it once, or ``close`` it: either stops the listing threads.

    ``metadata_first`` maps a type to what ``iter_pages`` takes as its ``metadata_first`` (None: list it whole).
    """

    def __init__(
        self,
        client: Any,
        resources: list[Resource],
        selector: str,
        *,
        workers: int = 4,
        page_size: int = 500,
        namespace: str | None = None,
        start: Mapping[str, str] | None = None,
        metadata_first: Callable[[Resource], Callable[[list[dict[str, Any]]], bool] | None] | None = None,
    ) -> None:
        self._out: queue.SimpleQueue[tuple[Any, int]] = queue.SimpleQueue()
        self._budget = max(2, workers * 2) * WHOLE_PAGE_UNITS
        self._held = 0  # units of the pages put and not yet taken
        self._room = threading.Condition()
        self._stop = threading.Event()
        self._feeder: threading.Thread | None = None
        if not resources:
            return
        tokens = start or {}

        def list_one(res: Resource) -> None:
            try:
                first = metadata_first(res) if metadata_first is not None else None
                pages = client.list_pages(
                    res.collection_path(namespace),
                    limit=page_size,
                    label_selector=selector or None,
                    continue_token=tokens.get(res.group_resource),
                    **({"metadata_first": first} if first is not None else {}),
                )
                for page in pages:
                    if self._stop.is_set():
                        return
                    partial = getattr(page, "metadata_only", False)
                    again = getattr(page, "requested_with", None)
                    self._put(Page(res, page.items, page.restarted, page.continue_token, partial, again))
            except Exception as exc:  # noqa: BLE001 -- recorded per type; the backup goes on with the others
                self._put(ListFailure(res, exc))

        def run_all() -> None:
            try:
                with ThreadPoolExecutor(max_workers=max(1, workers), thread_name_prefix="lifeboat-list") as pool:
                    list(pool.map(list_one, resources))
            finally:
                self._put(_DONE)

        self._feeder = threading.Thread(target=run_all, name="lifeboat-list-feeder", daemon=True)
        self._feeder.start()

    def _put(self, item: Any) -> None:
        """Queue ``item`` once there is room for it (a page that alone exceeds the budget waits for an empty queue);
        nothing once the stream is closed."""
        units = _units(item)
        with self._room:
            while self._held and self._held + units > self._budget and not self._stop.is_set():
                self._room.wait(timeout=0.2)
            if self._stop.is_set():
                return
            self._held += units
        self._out.put((item, units))

    def __iter__(self) -> Iterator[Page | ListFailure]:
        if self._feeder is None:
            return
        try:
            while True:
                item, units = self._out.get()
                if units:
                    with self._room:
                        self._held -= units
                        self._room.notify_all()
                if item is _DONE:
                    return
                yield item
        finally:
            self.close()

    def close(self) -> None:
        self._stop.set()
        with self._room:
            self._room.notify_all()
        if self._feeder is not None:
            self._feeder.join(timeout=30)


def _units(item: Any) -> int:
    """What ``item`` counts against a ``PageStream``'s budget: a whole page ``WHOLE_PAGE_UNITS``, one of metadata 1,
    a failure or the end nothing (they always get through)."""
    if not isinstance(item, Page):
        return 0
    return 1 if item.metadata_only else WHOLE_PAGE_UNITS


def count_objects(client: Any, resources: list[Resource], *, workers: int = 4) -> dict[str, int | None]:
    """Objects of each type cluster-wide (``group_resource`` -> count), one ``limit=1`` list each.

    No label selector is sent, so the server reports ``remainingItemCount``; a type it cannot count (an error, or
    no count offered) maps to None.
    """

    def count(res: Resource) -> tuple[str, int | None]:
        try:
            body = client.get(res.collection_path(), {"limit": 1})
        except Exception:  # noqa: BLE001 -- unknown, not fatal: the shards list the type and record what goes wrong
            return res.group_resource, None
        items = body.get("items") or []
        meta = body.get("metadata") or {}
        if not meta.get("continue"):
            return res.group_resource, len(items)
        remaining = meta.get("remainingItemCount")
        return res.group_resource, len(items) + remaining if isinstance(remaining, int) else None

    if not resources:
        return {}
    with ThreadPoolExecutor(max_workers=max(1, workers), thread_name_prefix="lifeboat-count") as pool:
        return dict(pool.map(count, resources))
