"""Repairing damaged blobs the daily check found: re-upload one from its cluster when the object there is unchanged."""

from __future__ import annotations

from collections.abc import Callable, Collection, Iterable
from dataclasses import dataclass, field
from typing import Any

from chalicelib.core.canonical import canonical_json
from chalicelib.core.ids import BlobId
from chalicelib.core.index_format import encode_index
from chalicelib.core.resources import Resource
from chalicelib.core.sanitize import sanitize_for_backup
from chalicelib.core.trees import TreeEntry
from chalicelib.repository.reach import Reach


@dataclass(frozen=True)
class RepairReport:
    """What a repair pass did: blob id -> where it came from, and blob id -> why it could not be repaired."""

    repaired: dict[str, str] = field(default_factory=dict)
    not_repaired: dict[str, str] = field(default_factory=dict)
    index_files: list[str] = field(default_factory=list)  # the index files written (each supersedes one old file)


def repair_blobs(
    repo: Any,
    reach: Reach,
    blobs: Iterable[BlobId],
    connect: Callable[[str], Any],
) -> RepairReport:
    """Re-upload each damaged object blob of ``blobs`` whose object, read from its cluster now and sanitized, has
    canonical bytes that hash to the blob's id (the very bytes that were stored), into a new pack.

    The damaged pack is never rewritten (packs are written once). Each index file naming a repaired blob is
    superseded by a new one with the same rows but the repaired blobs' rows pointing at the new pack
    (``docs/repository-format.md``: repair), so every backup that needs the blob reads the good copy.
    ``connect(cluster)`` gives a Kubernetes client of a registered cluster. Trees are not repaired here.
    """
    from chalicelib.repository import RepositoryWriter

    repaired: dict[str, str] = {}
    not_repaired: dict[str, str] = {}
    found: dict[BlobId, bytes] = {}
    clients: dict[str, Any] = {}
    for blob in sorted(set(blobs)):
        place = _place(reach, blob)
        if place is None:
            not_repaired[blob] = "not an object of any backup (a tree, or reached by none)"
            continue
        cluster, namespace, entry = place
        where = f"cluster {cluster}, {entry.resource}{'.' + entry.group if entry.group else ''} "
        where += f"{namespace + '/' if namespace else ''}{entry.name}"
        try:
            client = clients.get(cluster) or clients.setdefault(cluster, connect(cluster))
            data = _current_bytes(client, namespace, entry)
        except Exception as exc:  # noqa: BLE001 -- any failure to read the object leaves the blob damaged, said why
            not_repaired[blob] = f"{where}: cannot be read: {exc}"
            continue
        if data is None:
            not_repaired[blob] = f"{where}: no longer exists"
        elif BlobId(_sha256(data)) != blob:
            not_repaired[blob] = f"{where}: changed since the backup"
        else:
            found[blob] = data
            repaired[blob] = where
    if not found:
        return RepairReport(repaired, not_repaired)
    writer = RepositoryWriter(repo, known=())
    for data in found.values():
        writer.add_bytes(data)
    [own] = writer.finish()
    written = _supersede(repo, own, set(found))
    return RepairReport(repaired, not_repaired, [own, *written])


def _place(reach: Reach, blob: BlobId) -> tuple[str, str, TreeEntry] | None:
    """(cluster, namespace or "", tree entry) of the first backup that needs ``blob`` as an object."""
    need = reach.first.get(blob)
    if need is None:
        return None
    position, scope, entry = need
    if scope is None or entry is None:
        return None
    return reach.manifests[position].cluster, scope, entry


def _current_bytes(client: Any, namespace: str, entry: TreeEntry) -> bytes | None:
    """The canonical bytes of the object as it is now (sanitized as a backup would), None when it is gone."""
    from chalicelib.kube.errors import NotFound

    res = Resource(entry.group, entry.version, entry.kind, entry.resource, bool(namespace), frozenset({"get"}))
    try:
        obj = client.get(res.object_path(entry.name, namespace or None))
    except NotFound:
        return None
    return canonical_json(sanitize_for_backup(obj, entry.kind, res.api_version))


def _sha256(data: bytes) -> str:
    import hashlib

    return hashlib.sha256(data).hexdigest()


def _supersede(repo: Any, own: str, repaired: Collection[BlobId]) -> list[str]:
    """Write, for each live index file naming a repaired blob, a copy whose rows for those blobs name the new pack
    and which supersedes it; returns the ids written. A reader then resolves the blobs to the new pack only."""
    from chalicelib.repository import RepositoryReader

    files = RepositoryReader(repo).index_files()  # a fresh read: it must see the index file just written
    rows = {row[0]: (pack, row) for pack, packed in files[own].packs.items() for row in packed}
    superseded = {s for f in files.values() for s in f.supersedes}
    written = []
    for name, index_file in sorted(files.items()):
        if name == own or name in superseded:
            continue
        hits = {row[0] for packed in index_file.packs.values() for row in packed if row[0] in repaired}
        if not hits:
            continue
        packs: dict[Any, list[Any]] = {}
        for pack, packed in index_file.packs.items():
            kept = [row for row in packed if row[0] not in hits]
            if kept:
                packs[pack] = kept
        for blob in sorted(hits):
            pack, row = rows[blob]
            packs.setdefault(pack, []).append(row)
        index_id, data = encode_index(packs, supersedes=[name])
        repo.store.put(repo.index_key(index_id), data, create_only=True)
        written.append(index_id)
    return written
