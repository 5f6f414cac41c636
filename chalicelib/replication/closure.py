"""A backup's closure: every stored file a replica needs before the backup's manifest may appear there."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from chalicelib.core.manifest import Manifest
from chalicelib.replication.errors import ClosureIncomplete
from chalicelib.repository.errors import RepositoryError
from chalicelib.repository.reach import SCOPE_TREE, backup_label, reachable
from chalicelib.repository.reader import RepositoryReader
from chalicelib.repository.repo import Repository


@dataclass(frozen=True)
class Closure:
    """Keys relative to the repository prefix, in the order they must reach the replica (manifest last)."""

    cluster: str
    backup_id: str
    packs: tuple[str, ...]  # pack ids holding a blob the backup reaches
    index_files: tuple[str, ...]  # index ids
    # Other packs the chosen index files name: copied too, so the replica never has an index entry without its pack.
    neighbour_packs: tuple[str, ...]
    artifacts: tuple[tuple[str, str | None], ...]  # (key, SHA-256 hex the manifest records, if it does)
    blobs: int  # blobs the backup reaches: objects, scope trees, root tree

    @property
    def manifest_key(self) -> str:
        return Repository.manifest_key(self.cluster, self.backup_id)


def backup_closure(reader: RepositoryReader, manifest: Manifest, listing: Iterable[str] = ()) -> Closure:
    """The packs holding every blob ``manifest`` reaches, the index files naming them, and its large artifacts.

    ``listing`` holds the keys of the backup's directory in the primary (its artifacts are among them). What the
    backup reaches is ``repository/reach.py``'s walk, read from the primary: the root and scope trees are read and
    verified (they say which objects the backup holds); object blobs are only looked up in the index. Index files
    are the non-superseded ones naming a closure pack: the replica then resolves every blob to the same pack the
    primary does, because a replica's index files are a subset of the primary's and a reader takes the first file in
    sorted order.
    """
    where = backup_label(manifest)
    try:
        if manifest.root_tree not in reader.load_index():  # the reader loaded its index before this backup committed
            reader.load_index(refresh=True)
        reach = reachable(reader, [manifest], listing=listing)
        files = reader.index_files()
    except RepositoryError as exc:
        raise ClosureIncomplete(f"{where}: its primary copy cannot be read, so it is not replicated: {exc}") from exc
    for tree in reach.unreadable:
        if tree.malformed and tree.what == SCOPE_TREE:
            raise ClosureIncomplete(f"{where}: a scope tree in the primary is malformed: {tree.error}") from tree.error
        raise ClosureIncomplete(
            f"{where}: its primary copy cannot be read, so it is not replicated: {tree.error}"
        ) from tree.error
    if reach.unindexed:
        unindexed = sorted(reach.unindexed)
        raise ClosureIncomplete(f"{where}: {len(unindexed)} blobs are in no primary index file (first {unindexed[0]})")
    packs = reach.packs
    superseded = {name for f in files.values() for name in f.supersedes}
    index_files = sorted(name for name, f in files.items() if name not in superseded and packs & f.packs.keys())
    named = {pack for name in index_files for pack in files[name].packs}
    return Closure(
        cluster=manifest.cluster,
        backup_id=manifest.backup_id,
        packs=tuple(sorted(packs)),
        index_files=tuple(index_files),
        neighbour_packs=tuple(sorted(named - packs)),
        artifacts=tuple((artifact.key, artifact.sha256) for artifact in reach.artifacts),
        blobs=len(reach.blobs),
    )
