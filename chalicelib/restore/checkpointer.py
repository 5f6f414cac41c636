"""What the restore worker writes while the engine runs: per-object results in batches, and its claim's heartbeat."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from datetime import datetime
from typing import Any

from chalicelib.catalog.errors import CatalogError
from chalicelib.catalog.restore_records import RestoreRecord, RestoreStateConflict
from chalicelib.observability import logger
from chalicelib.restore.errors import LeaseLost

FLUSH_EVERY = 200  # results per checkpoint: one transaction each, and a bounded redo after a crash
FLUSH_AFTER_S = 5.0
MAX_MARKER_BYTES = 200_000  # keys per done-marker item, well under DynamoDB's 400 KB


class Checkpointer:
    """Buffers per-object results and writes them in batches (done markers + counters in one transaction).

    Every outcome -- failures too -- becomes a done marker: a resumed run skips it, so nothing is applied or
    counted twice, and a failure stays recorded as it happened. A resumed engine reports the keys it was told are
    done once more (as skipped); those are ignored here.
    """

    def __init__(
        self,
        catalog: Any,
        record: RestoreRecord,
        worker: str,
        *,
        done: frozenset[str],
        next_seq: int,
        clock: Callable[[], datetime],
    ) -> None:
        self._catalog = catalog
        self._restore_id = record.restore_id
        self._worker = worker
        self._seen = set(done)
        self._seq = next_seq
        self._stored_failures = len(record.failures)
        self._clock = clock
        self.total = record.total
        self._keys: list[str] = []
        self._bytes = 0
        self._outcomes: dict[str, int] = {}
        self._failures: list[dict[str, Any]] = []
        self._last_flush = time.monotonic()
        self._lock = threading.Lock()

    def on_result(self, result: Any) -> None:
        key, outcome, failure = describe_result(result)
        with self._lock:
            if key in self._seen:
                return
            self._seen.add(key)
            self._keys.append(key)
            self._bytes += len(key.encode()) + 8
            self._outcomes[outcome] = self._outcomes.get(outcome, 0) + 1
            if failure is not None:
                self._failures.append(failure)
            full = len(self._keys) >= FLUSH_EVERY or self._bytes >= MAX_MARKER_BYTES
            if full or time.monotonic() - self._last_flush >= FLUSH_AFTER_S:
                self._flush_locked()

    def on_progress(self, done: int, total: int) -> None:
        self.total = total

    def flush(self) -> None:
        with self._lock:
            self._flush_locked()

    def _flush_locked(self) -> None:
        if not self._keys:
            return
        try:
            self._stored_failures += self._catalog.record_results(
                self._restore_id,
                self._worker,
                seq=self._seq,
                keys=self._keys,
                outcomes=self._outcomes,
                failures=self._failures,
                stored_failures=self._stored_failures,
                now=self._clock(),
                total=self.total,
            )
        except RestoreStateConflict as exc:
            raise LeaseLost(str(exc)) from exc
        self._seq += 1
        self._keys, self._bytes, self._outcomes, self._failures = [], 0, {}, []
        self._last_flush = time.monotonic()


class Heartbeat(threading.Thread):
    """Keeps the claim fresh while the engine works on something slow (waiting for a CRD, a big level)."""

    def __init__(self, beat: Callable[[], Any], every_s: float) -> None:
        super().__init__(daemon=True, name="restore-heartbeat")
        self._beat = beat
        self._every = every_s
        self._stopped = threading.Event()
        self.lost = False

    def run(self) -> None:
        while not self._stopped.wait(self._every):
            try:
                self._beat()
            except RestoreStateConflict:
                self.lost = True
                return
            except CatalogError:
                logger().warning("restore heartbeat failed; retrying", exc_info=True)

    def stop(self) -> None:
        self._stopped.set()


def describe_result(result: Any) -> tuple[str, str, dict[str, Any] | None]:
    """(object key, outcome, failure entry or None) of one ``chalicelib.restore.ObjectResult``."""
    outcome = str(result.outcome)
    if outcome != "failed":
        return result.key, outcome, None
    failure = {
        "key": result.key,
        "kind": result.kind,
        "namespace": result.namespace or "",
        "name": result.name,
        "reason": result.reason,
        "message": result.message,
    }
    return result.key, outcome, failure
