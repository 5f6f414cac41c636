"""What a backup reads before its job is claimed: the repository's side and the cluster's.

Neither needs the catalog, so ``BackupService.run`` starts both on threads of their own, then looks up the parent
and claims the job (three DynamoDB requests and an event, ~50-70 ms):

- the cluster's side: the client, the server's version, discovery and the namespace list (``ClusterView``);
- the repository's side of a one-shot backup: its config and index, and the parent's manifest and trees once the
  parent is looked up and the namespace list shows that an object can be listed (an empty scope's backup never
  reads them). The parent is read as soon as the catalog's index names it (``guess``), while a consistent read
  confirms it (``parent``); in the rare case the index was stale, the confirmed parent is read after all;
- the listing of a one-shot backup that runs no pre hook, once the cluster is read and the parent guessed: the
  listing only reads the cluster, and its pages wait in a bounded queue until the claimed job stores them.

A duplicate delivery that finds its job taken has read them for nothing, and is told so: a read that has not come
to the parent's trees yet does not read them, and the listing stops.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from chalicelib.backup.reuse import PriorObjects
from chalicelib.core.ids import BlobId
from chalicelib.core.resources import Resource

_T = TypeVar("_T")


@dataclass(frozen=True)
class Opened:
    """What a one-shot backup reads from the repository before it stores anything."""

    repo: Any
    index: Mapping[BlobId, Any]  # blob id -> where it is: what the writer skips
    parent_cluster_uid: str | None  # the cluster the parent backup was taken of; reuse needs it to be this one
    prior: PriorObjects | None
    reader: Any = None  # the reader that loaded ``index`` (re-verifies a sample of what the backup reuses)
    parent_id: str | None = None  # the backup ``prior`` holds the objects of
    early: Any = None  # the sample of ``prior``'s blobs being re-verified meanwhile (``verify.EarlyCheck``)

    def prior_for(self, parent_id: str | None, cluster_uid: str | None) -> PriorObjects | None:
        """``prior`` when it is of backup ``parent_id`` of the cluster whose uid is ``cluster_uid``, else None."""
        if parent_id is None or parent_id != self.parent_id or self.parent_cluster_uid != cluster_uid:
            return None
        return self.prior


@dataclass(frozen=True)
class ClusterView:
    """What a backup learns of its cluster before it lists anything but the namespaces."""

    client: Any
    version: str
    namespaces_res: Resource
    ns_objects: dict[str, dict[str, Any]]  # the selected namespaces, by name
    cluster_uid: str | None  # the uid of the kube-system namespace: the cluster's identity
    namespaced: list[Resource]  # the types in scope
    cluster_types: list[Resource]
    listable: bool  # whether any object can be listed (else the parent's trees are not worth reading)
    hook_plan: Any = None  # the backup's hooks (``backup.hooks.HookPlan``), when the deployment runs hooks


class Decision(Generic[_T]):
    """A value one thread gives once and another waits for (the first ``decide`` counts)."""

    def __init__(self) -> None:
        self._given = threading.Event()
        self._lock = threading.Lock()
        self._value: _T | None = None

    def decide(self, value: _T) -> None:
        with self._lock:
            if not self._given.is_set():
                self._value = value
                self._given.set()

    def wait(self) -> _T:
        self._given.wait()
        return self._value  # type: ignore[return-value]


def in_background(fn: Callable[[], _T], name: str) -> Future[_T]:
    """``fn()`` on a thread of its own, named ``name``."""
    pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix=name)
    try:
        return pool.submit(fn)
    finally:
        pool.shutdown(wait=False)  # the one task still runs; nothing else is ever submitted


class HeadStart:
    """The reads one ``BackupService.run`` starts before it claims its job.

    ``read_cluster()`` gives the ``ClusterView``; ``open_repository(guess_to_read, parent_to_read)`` the
    ``Opened`` repository, reading the parent ``guess_to_read()`` names (None: none) and keeping it only if it is
    the one ``parent_to_read()`` confirms; None for a backup that may be sharded (the plan does not need it).
    ``start_listing(view, guess)`` starts the listing (a ``PageStream``, or None when it must wait for the claim)
    once the cluster is read and the parent guessed (None: none, so the objects are listed whole). The caller
    decides ``guess`` when the catalog's index names the parent and ``parent`` once a consistent read confirms it;
    ``end`` tells the reads that nobody waits for them any more, and stops the listing and the early check of the
    parent's sample (``Opened.early``).
    """

    def __init__(
        self,
        read_cluster: Callable[[], ClusterView],
        open_repository: Callable[[Callable[[], str | None], Callable[[], str | None]], Opened] | None,
        start_listing: Callable[[ClusterView, str | None], Any] | None = None,
    ) -> None:
        self.guess: Decision[str | None] = Decision()
        self.parent: Decision[str | None] = Decision()
        self._ended = threading.Event()
        self._lock = threading.Lock()
        self.cluster = in_background(read_cluster, "lifeboat-read-cluster")
        self.opening: Future[Opened] | None = None
        if open_repository is not None:
            self.opening = in_background(
                lambda: open_repository(lambda: self._to_read(self.guess), lambda: self._to_read(self.parent)),
                "lifeboat-open-repository",
            )
        self.listing: Future[Any] | None = None
        if start_listing is not None:
            self.listing = in_background(lambda: self._list(start_listing), "lifeboat-start-listing")

    def _list(self, start_listing: Callable[[ClusterView, str | None], Any]) -> Any:
        """The listing ``start_listing`` starts, or None once the run has ended (a duplicate job)."""
        view = self.cluster.result()
        guess = self.guess.wait()
        with self._lock:  # ``end`` either comes first, and nothing is listed, or stops what was started
            return None if self._ended.is_set() else start_listing(view, guess)

    def _to_read(self, decision: Decision[str | None]) -> str | None:
        """The parent ``decision`` names, for the repository's side to read: once it is decided, and only when an
        object can be listed; None when there is none, the cluster could not be read, or the run ended meanwhile."""
        parent = decision.wait()
        if parent is None or self._ended.is_set():
            return None
        try:
            listable = self.cluster.result().listable
        except Exception:  # noqa: BLE001 -- the backup hears of it from the cluster's side, and fails
            return None
        return parent if listable and not self._ended.is_set() else None

    def end(self) -> None:
        """The run is over (committed, failed, or a duplicate): a read still waiting for its parent reads none, and
        a listing started for it stops (closing it again is harmless)."""
        with self._lock:
            self._ended.set()
        self.guess.decide(None)
        self.parent.decide(None)
        if self.listing is not None:
            self.listing.add_done_callback(_close_listing)
        if self.opening is not None:
            self.opening.add_done_callback(_stop_early_check)


def _stop_early_check(opening: Future[Opened]) -> None:
    opened = None if opening.exception() is not None else opening.result()
    if opened is not None and opened.early is not None:
        opened.early.stop()


def _close_listing(listing: Future[Any]) -> None:
    stream = None if listing.exception() is not None else listing.result()
    if stream is not None:
        stream.close()
