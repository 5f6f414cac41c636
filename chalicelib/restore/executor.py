"""Applying planned objects to the cluster: one level at a time, the objects of a level in parallel."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable, Iterator, Sized
from dataclasses import replace
from queue import SimpleQueue
from typing import Any

from chalicelib.core.restore_options import ExistingPolicy
from chalicelib.core.restore_plan import PlanItem, Reason, diff_paths, prepare_update
from chalicelib.kube.errors import (
    AlreadyExists,
    Conflict,
    Forbidden,
    Invalid,
    KubeError,
    NotFound,
    ServerError,
    TooManyRequests,
    Unauthorized,
    Unreachable,
)
from chalicelib.restore.results import ObjectResult, Outcome

# After this many consecutive unreachable errors the cluster is taken to be gone: the remaining objects fail at once
# instead of each spending the client's whole retry budget on a dead connection.
UNREACHABLE_LIMIT = 3

_FAILURE_CODES: tuple[tuple[type[KubeError], str], ...] = (
    (Unreachable, "unreachable"),
    (Unauthorized, "unauthorized"),
    (Forbidden, "forbidden"),
    (NotFound, "not-found"),
    (Conflict, "conflict"),
    (Invalid, "invalid"),
    (TooManyRequests, "throttled"),
    (ServerError, "server-error"),
)


def failure_code(exc: KubeError) -> str:
    for cls, code in _FAILURE_CODES:
        if isinstance(exc, cls):
            return code
    return "error"


class _Breaker:
    """Counts consecutive unreachable errors across threads; any answer from the server resets it."""

    def __init__(self, limit: int) -> None:
        self._limit = limit
        self._count = 0
        self._lock = threading.Lock()
        self.last_error = ""

    @property
    def open(self) -> bool:
        with self._lock:
            return self._count >= self._limit

    def record(self, exc: BaseException | None) -> None:
        with self._lock:
            if isinstance(exc, Unreachable):
                self._count += 1
                self.last_error = str(exc)
            else:
                self._count = 0


class ObjectApplier:
    """Writes one planned object: create, fall back to the existing-object policy on AlreadyExists."""

    def __init__(self, client: Any, policy: ExistingPolicy, *, unreachable_limit: int = UNREACHABLE_LIMIT) -> None:
        self._client = client
        self._policy = policy
        self._breaker = _Breaker(unreachable_limit)
        self._uids: dict[str, str] = {}  # source uid -> uid on the target cluster, of the objects written so far

    @property
    def cluster_gone(self) -> bool:
        return self._breaker.open

    def apply(self, item: PlanItem) -> ObjectResult:
        if self._breaker.open:
            message = f"not attempted: the cluster stopped answering ({self._breaker.last_error})"
            return ObjectResult.of(item, Outcome.FAILED, "unreachable", message)
        try:
            result = self._update(item) if item.action == "update" else self._create(item)
        except KubeError as exc:
            self._breaker.record(exc)
            return ObjectResult.of(item, Outcome.FAILED, failure_code(exc), str(exc))
        self._breaker.record(None)
        return result

    def _linked(self, item: PlanItem) -> tuple[PlanItem, str]:
        """``item`` with its owner references pointing at the owners' new uids, and a note on any dropped.

        Owners run in earlier levels, so their uids are known here unless they failed, were skipped or were done by
        an earlier run of a resumed restore: those references are dropped, as a stale uid would get the object
        garbage-collected.
        """
        desired = item.desired or {}
        refs = (desired.get("metadata") or {}).get("ownerReferences")
        if not refs:
            return item, ""
        linked = [{**r, "uid": self._uids[r.get("uid")]} for r in refs if r.get("uid") in self._uids]
        meta = {k: v for k, v in desired["metadata"].items() if k != "ownerReferences"}
        if linked:
            meta["ownerReferences"] = linked
        note = ""
        if len(linked) < len(refs):
            lost = [f"{r.get('kind')}/{r.get('name')}" for r in refs if r.get("uid") not in self._uids]
            note = f"ownerReferences dropped, owners not restored in this run: {', '.join(lost)}"
        return replace(item, desired={**desired, "metadata": meta}), note

    def _remember(self, item: PlanItem, written: dict[str, Any] | None) -> None:
        uid = ((written or {}).get("metadata") or {}).get("uid")
        if item.source_uid and uid:
            self._uids[item.source_uid] = uid

    def _create(self, planned: PlanItem) -> ObjectResult:
        item, note = self._linked(planned)
        try:
            self._remember(item, self._client.create(item.resource, item.desired, item.namespace))
        except AlreadyExists:
            if self._policy == "skip":
                live = self._client.get_object(item.resource, item.name, item.namespace)
                self._remember(item, live)
                return ObjectResult.of(item, Outcome.SKIPPED, Reason.EXISTS, "already on the cluster")
            return self._update(planned)
        return ObjectResult.of(item, Outcome.CREATED, Reason.NEW, note)

    def _update(self, item: PlanItem) -> ObjectResult:
        item, note = self._linked(item)
        assert item.desired is not None
        for attempt in range(2):
            live = self._client.get_object(item.resource, item.name, item.namespace)
            if live is None:  # deleted since: create it after all
                self._remember(item, self._client.create(item.resource, item.desired, item.namespace))
                return ObjectResult.of(item, Outcome.CREATED, Reason.NEW, note)
            self._remember(item, live)  # an update keeps the uid
            changed = tuple(diff_paths(item.desired, live))
            if not changed:
                return ObjectResult.of(item, Outcome.SKIPPED, Reason.UNCHANGED, "already as in the backup")
            try:
                self._client.replace(item.resource, prepare_update(item.desired, live, item.resource), item.namespace)
            except Conflict as exc:
                # Someone wrote the object between our GET and PUT; one fresh read is worth a try, a second race is
                # a real contention the user should see.
                if attempt == 0 and not isinstance(exc, AlreadyExists):
                    continue
                raise
            return ObjectResult.of(item, Outcome.UPDATED, Reason.CHANGED, note, diff=changed)
        raise AssertionError("unreachable")  # pragma: no cover


def run_parallel(
    items: Iterable[PlanItem],
    apply: Callable[[PlanItem], ObjectResult],
    *,
    concurrency: int,
    stop: Callable[[], bool] | None = None,
) -> Iterator[ObjectResult]:
    """Apply ``items`` with at most ``concurrency`` in flight; results in completion order, on the caller's thread.

    At most ``concurrency`` objects are taken and not yet handed to the caller, so ``stop`` (asked before each one
    is taken) takes effect within a few objects and a slow caller holds the workers back. ``concurrency`` threads
    each take the next object themselves and put its result on one queue: a pool's future per object, and waiting
    on the whole window for each result, cost a fifth of a restore's client CPU. An exception ``apply`` raises
    stops the taking and is raised here; closing the iterator early stops it too and waits for the workers.
    """
    if concurrency < 1:
        raise ValueError("concurrency must be at least 1")
    source = iter(items)
    lock = threading.Lock()
    slots = threading.Semaphore(concurrency)
    finished: SimpleQueue[tuple[ObjectResult | None, BaseException | None]] = SimpleQueue()
    halted = threading.Event()

    def take() -> PlanItem | None:
        slots.acquire()
        with lock:
            if halted.is_set() or (stop is not None and stop()):
                halted.set()
                return None
            item = next(source, None)
        if item is None:
            halted.set()
        return item

    def work() -> None:
        try:
            while (item := take()) is not None:
                finished.put((apply(item), None))
        except BaseException as exc:  # noqa: BLE001 -- the caller raises it: nothing may be lost on a worker thread
            halted.set()
            finished.put((None, exc))
        finally:
            slots.release()  # its own slot, taken by the take() that ended it
            finished.put((None, None))

    # A level of a few objects (namespaces, CRDs) needs no more threads than it has objects.
    threads = min(concurrency, max(1, len(items))) if isinstance(items, Sized) else concurrency
    workers = [threading.Thread(target=work, name=f"lifeboat-restore-{n}", daemon=True) for n in range(threads)]
    for worker in workers:
        worker.start()
    running = len(workers)
    try:
        while running:
            result, error = finished.get()
            if error is not None:
                raise error
            if result is None:
                running -= 1
                continue
            yield result
            slots.release()
    finally:
        halted.set()
        for _ in workers:
            slots.release()  # a worker waiting for a slot sees ``halted`` and ends
        for worker in workers:
            worker.join()
