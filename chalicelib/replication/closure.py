"""A backup's closure: every stored file a replica needs before the backup's manifest may appear there."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from chalicelib.core.errors import FormatError
from chalicelib.core.ids import BlobId
from chalicelib.core.manifest import Manifest
from chalicelib.core.packs import is_hex_id
from chalicelib.core.trees import decode_tree
from chalicelib.replication.errors import ClosureIncomplete
from chalicelib.repository.errors import RepositoryError
from chalicelib.repository.reader import RepositoryReader
from chalicelib.repository.repo import MANIFEST_NAME, Repository


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


def backup_closure(reader: RepositoryReader, manifest: Manifest, artifact_keys: Iterable[str] = ()) -> Closure:
    """The packs holding every blob ``manifest`` reaches, the index files naming them, and its large artifacts.

    Read from the primary: the root and scope trees are read and verified (they say which objects the backup
    holds); object blobs are only looked up in the index. Index files are the non-superseded ones naming a closure
    pack: the replica then resolves every blob to the same pack the primary does, because a replica's index files
    are a subset of the primary's and a reader takes the first file in sorted order.
    """
    where = f"backup {manifest.cluster}/{manifest.backup_id}"
    try:
        index = reader.load_index()
        if manifest.root_tree not in index:  # the reader loaded its index before this backup committed
            index = reader.load_index(refresh=True)
        scopes = reader.root(manifest)
        trees = dict(reader.read_blobs(scopes.values(), where=f"scope trees of {where}"))
        needed: set[BlobId] = {manifest.root_tree, *scopes.values()}
        for tree_id in scopes.values():
            needed.update(entry.blob for entry in decode_tree(trees[tree_id]))
        files = reader.index_files()
    except (FormatError, KeyError, TypeError, ValueError) as exc:
        raise ClosureIncomplete(f"{where}: a scope tree in the primary is malformed: {exc}") from exc
    except RepositoryError as exc:
        raise ClosureIncomplete(f"{where}: its primary copy cannot be read, so it is not replicated: {exc}") from exc
    unindexed = sorted(needed - index.keys())
    if unindexed:
        raise ClosureIncomplete(f"{where}: {len(unindexed)} blobs are in no primary index file (first {unindexed[0]})")
    packs = {index[blob].pack for blob in needed}
    superseded = {name for f in files.values() for name in f.supersedes}
    index_files = sorted(name for name, f in files.items() if name not in superseded and packs & f.packs.keys())
    named = {pack for name in index_files for pack in files[name].packs}
    recorded = recorded_checksums(manifest)
    artifacts = tuple(sorted((key, recorded.get(key.rsplit("/", 1)[-1])) for key in artifact_keys))
    return Closure(
        cluster=manifest.cluster,
        backup_id=manifest.backup_id,
        packs=tuple(sorted(packs)),
        index_files=tuple(index_files),
        neighbour_packs=tuple(sorted(named - packs)),
        artifacts=artifacts,
        blobs=len(needed),
    )


def artifact_keys(keys: Iterable[str], cluster: str, backup_id: str) -> list[str]:
    """The large files stored beside a backup's manifest (etcd snapshots), from a listing of its directory."""
    directory = Repository.manifest_key(cluster, backup_id)[: -len(MANIFEST_NAME)]
    return sorted(
        k for k in keys if k.startswith(directory) and k != directory + MANIFEST_NAME and "/" not in k[len(directory) :]
    )


def recorded_checksums(manifest: Manifest) -> dict[str, str]:
    """File name -> SHA-256 (hex) for artifacts whose checksum the manifest records (``etcd_snapshot``)."""
    out: dict[str, str] = {}
    for entry in (manifest.etcd_snapshot,):
        if not isinstance(entry, dict):
            continue
        digest = _hex_digest(entry.get("sha256"))
        name = str(entry.get("key") or entry.get("name") or "etcd.db").rsplit("/", 1)[-1]
        if digest:
            out[name] = digest
    return out


def _hex_digest(value: Any) -> str | None:
    if isinstance(value, str):
        value = value.removeprefix("sha256:").lower()
        return value if is_hex_id(value) else None
    return None
