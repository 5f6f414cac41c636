"""The index a process loaded last, kept for its next backup of the same repository (``RepositoryReader``)."""

from __future__ import annotations

import threading
from dataclasses import dataclass

from chalicelib.core.ids import PackId
from chalicelib.repository.index_map import IndexMap


@dataclass(frozen=True)
class Loaded:
    """A loaded index: the map, each pack's data end, every file's bytes by name, what the files supersede."""

    index: IndexMap
    ends: dict[PackId, int]
    data: dict[str, bytes]
    superseded: frozenset[str]


class LastLoaded:
    """The last index this process loaded, by repository: a warm function's next backup of the same repository
    reads only the index files written since. Index files are named by their content's hash and never change,
    so what it holds of a file still listed is that file; it is of no use once a file it holds is gone (garbage
    collection, consolidation). A loaded map is frozen: readers share it, and a load that adds files merges them
    into a copy. Its ``ends`` and ``data`` are not changed either."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._identity: str | None = None
        self._loaded: Loaded | None = None

    def take(self, identity: str, names: frozenset[str]) -> Loaded | None:
        """What was kept of ``identity`` if every file it holds is among ``names`` (still listed), else None."""
        with self._lock:
            loaded = self._loaded if self._identity == identity else None
        if loaded is None or not loaded.data.keys() <= names:
            return None
        return loaded

    def keep(self, identity: str, loaded: Loaded) -> None:
        with self._lock:
            self._identity, self._loaded = identity, loaded

    def clear(self) -> None:
        with self._lock:
            self._identity, self._loaded = None, None


LAST_LOADED = LastLoaded()
