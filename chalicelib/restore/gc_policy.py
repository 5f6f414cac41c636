"""Rare full collections while a restore holds its selection: the cyclic collector's policy for one bulk phase.

A restore reads its whole selection into memory and plans it before the first write (tens of thousands of dicts
that live to the end). CPython runs a full collection, which walks every tracked object, each time the heap has
grown by a quarter and ten younger collections have run; on a restore of 10,000 objects those walks were 0.7 s of
a 1.7 s plan. Waiting for a hundred younger collections instead keeps them rare. Young objects are still
collected as often as before, so a reference cycle that dies young (an exception and its frames) is still freed.
"""

from __future__ import annotations

import gc
import threading
from collections.abc import Iterator
from contextlib import contextmanager

FULL_COLLECTION_AFTER = 100  # younger (generation 1) collections between full ones; CPython's default is 10

_lock = threading.Lock()
_depth = 0
_saved: tuple[int, int, int] | None = None


@contextmanager
def rare_full_collections() -> Iterator[None]:
    """Full collections at most every ``FULL_COLLECTION_AFTER`` younger ones while the block runs; the process's
    thresholds are put back when the last of any concurrent or nested blocks ends."""
    global _depth, _saved
    with _lock:
        if _depth == 0:
            _saved = gc.get_threshold()
            young, middle, full = _saved
            gc.set_threshold(young, middle, max(full, FULL_COLLECTION_AFTER))
        _depth += 1
    try:
        yield
    finally:
        with _lock:
            _depth -= 1
            if _depth == 0 and _saved is not None:
                gc.set_threshold(*_saved)
                _saved = None
