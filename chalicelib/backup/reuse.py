"""Unchanged objects: the parent backup's tree entries by uid, so an object listed again unchanged reuses its blob."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from chalicelib.core.resources import Resource
from chalicelib.core.sanitize import SANITIZER_VERSION
from chalicelib.core.trees import TreeEntry, read_tree

_EMPTY: Mapping[str, TreeEntry] = {}


class PriorObjects:
    """Tree entries of an earlier backup of the same cluster, by resource type and uid.

    An object is the same as an entry when its uid and resourceVersion are: the API server gives every write of
    an object a new resourceVersion, and a recreated object a new uid. Only entries made by this sanitizer version
    are kept, and a type's entries count only while its served version and kind are the entry's (the blob holds
    ``apiVersion`` and ``kind``).
    """

    def __init__(self, entries: Iterable[TreeEntry] = ()) -> None:
        self._types: dict[tuple[str, str], dict[str, TreeEntry]] = {}
        self.add(entries)

    def add(self, entries: Iterable[TreeEntry]) -> None:
        types = self._types
        for entry in entries:
            if entry.uid and entry.resource_version:
                types.setdefault((entry.group, entry.resource), {})[entry.uid] = entry

    def for_type(self, res: Resource) -> Mapping[str, TreeEntry]:
        """uid -> entry for ``res`` as it is served now; a hit still needs the same resourceVersion and name."""
        table = self._types.get((res.group, res.plural))
        if not table:
            return _EMPTY
        sample = next(iter(table.values()))
        if sample.version == res.version and sample.kind == res.kind:
            return table
        # Entries of one type were made by one backup from one served version, but an older repository may mix:
        # keep only the matching ones.
        return {uid: e for uid, e in table.items() if e.version == res.version and e.kind == res.kind}

    def __len__(self) -> int:
        return sum(len(t) for t in self._types.values())


def load_prior(reader: Any, manifest: Any, cluster_uid: str | None) -> PriorObjects | None:
    """The entries of ``manifest``'s backup when it was taken of this very cluster, else None.

    A tree written by another sanitizer version, or a v1 tree (no uids), contributes nothing. Raises the reader's
    errors: a parent that cannot be read is not a reason to guess.
    """
    if not cluster_uid or getattr(manifest, "cluster_uid", None) != cluster_uid:
        return None
    prior = PriorObjects()
    root = reader.root(manifest)
    where = f"trees of backup {manifest.cluster}/{manifest.backup_id}"
    for _, data in reader.read_blobs(root.values(), where=where):
        tree = read_tree(data)
        if tree.sanitizer == SANITIZER_VERSION:
            prior.add(tree.entries)
    return prior
