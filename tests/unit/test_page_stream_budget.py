"""A PageStream runs ahead of its consumer by a bounded budget, in which a page of metadata weighs a quarter."""

from __future__ import annotations

import threading
import time
from typing import Any

from chalicelib.backup.listing import WHOLE_PAGE_UNITS, PageStream
from chalicelib.core.resources import Resource
from chalicelib.kube.paging import ListPage

CM = Resource("", "v1", "ConfigMap", "configmaps", True, frozenset({"get", "list"}))
PAGES = 40


class Client:
    """Serves ``PAGES`` pages of one object each, as metadata or whole; counts the pages handed out."""

    def __init__(self, metadata: bool) -> None:
        self._metadata = metadata
        self.served = 0
        self._lock = threading.Lock()

    def list_pages(self, path: str, **_: Any) -> Any:
        for n in range(PAGES):
            with self._lock:
                self.served += 1
            last = n == PAGES - 1
            yield ListPage([{"metadata": {"name": f"cm-{n}"}}], "1", False, None if last else str(n), self._metadata)


def _settled(client: Client) -> int:
    """How many pages the stream fetched while nobody took any, once it stops fetching."""
    seen, still = -1, 0
    while still < 10:  # half a second without a new page
        time.sleep(0.05)
        still = still + 1 if client.served == seen else 0
        seen = client.served
    return seen


def test_pages_of_metadata_run_ahead_four_times_as_far_as_whole_ones() -> None:
    fetched = {}
    for metadata in (False, True):
        client = Client(metadata)
        stream = PageStream(client, [CM], "", workers=1)
        try:
            fetched[metadata] = _settled(client)
            taken = list(stream)
        finally:
            stream.close()
        assert len(taken) == PAGES, "and every page still arrives, in order"
        assert [page.items[0]["metadata"]["name"] for page in taken] == [f"cm-{n}" for n in range(PAGES)]
    # Two whole pages queued, or eight of metadata, plus the one the listing thread holds while it waits for room.
    assert fetched[False] == 2 + 1
    assert fetched[True] == 2 * WHOLE_PAGE_UNITS + 1
