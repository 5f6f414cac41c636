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


@dataclass(frozen=True)
class Page:
    """One page of raw objects of one type; ``restarted`` means discard what this type gave before.

    ``continue_token`` resumes the type's list after this page; None means this page was its last.
    ``metadata_only``: the items are the objects' metadata alone (``PartialObjectMetadata``).
    """

    resource: Resource
    items: list[dict[str, Any]]
    restarted: bool = False
    continue_token: str | None = None
    metadata_only: bool = False


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
    memory stays at a few pages. Iterate it once, or ``close`` it: either stops the listing threads.

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
        self._out: queue.Queue[Any] = queue.Queue(maxsize=max(2, workers * 2))
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
                    self._put(Page(res, page.items, page.restarted, page.continue_token, partial))
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
        while not self._stop.is_set():
            try:
                self._out.put(item, timeout=0.2)
                return
            except queue.Full:
                continue

    def __iter__(self) -> Iterator[Page | ListFailure]:
        if self._feeder is None:
            return
        try:
            while True:
                item = self._out.get()
                if item is _DONE:
                    return
                yield item
        finally:
            self.close()

    def close(self) -> None:
        self._stop.set()
        if self._feeder is not None:
            self._feeder.join(timeout=30)


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
