"""Collect: choose resource types from discovery, then list them page by page, several types at once."""

from __future__ import annotations

import queue
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

from chalicelib.core.resources import Resource
from chalicelib.core.scope import BackupScope

_DONE = object()


@dataclass(frozen=True)
class Page:
    """One page of raw objects of one type; ``restarted`` means discard what this type gave before."""

    resource: Resource
    items: list[dict[str, Any]]
    restarted: bool = False


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


def stream_pages(
    client: Any, resources: list[Resource], selector: str, *, workers: int = 4, page_size: int = 500
) -> Iterator[Page | ListFailure]:
    """Pages of every type in ``resources``, listed by ``workers`` threads; a failed type yields a ListFailure.

    The queue is bounded so listing never runs far ahead of the consumer: memory stays at a few pages.
    """
    if not resources:
        return
    out: queue.Queue[Any] = queue.Queue(maxsize=max(2, workers * 2))
    stop = threading.Event()

    def put(item: Any) -> None:
        while not stop.is_set():
            try:
                out.put(item, timeout=0.2)
                return
            except queue.Full:
                continue

    def list_one(res: Resource) -> None:
        try:
            for page in client.list_pages(res.collection_path(), limit=page_size, label_selector=selector or None):
                if stop.is_set():
                    return
                put(Page(res, page.items, page.restarted))
        except Exception as exc:  # recorded per type; the backup goes on with the others
            put(ListFailure(res, exc))

    def run_all() -> None:
        try:
            with ThreadPoolExecutor(max_workers=max(1, workers), thread_name_prefix="lifeboat-list") as pool:
                list(pool.map(list_one, resources))
        finally:
            put(_DONE)

    feeder = threading.Thread(target=run_all, name="lifeboat-list-feeder", daemon=True)
    feeder.start()
    try:
        while True:
            item = out.get()
            if item is _DONE:
                return
            yield item
    finally:
        stop.set()
        feeder.join(timeout=30)
