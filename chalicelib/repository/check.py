"""Checking a repository: every backup reaches only blobs that exist, and (optionally) every blob re-hashes."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from chalicelib.core.ids import BlobId, PackId
from chalicelib.core.manifest import Manifest
from chalicelib.repository.errors import BlobCorrupt, BlobMissing, RepositoryCorrupt, RepositoryError
from chalicelib.repository.reader import RepositoryReader
from chalicelib.repository.repo import PACKS_DIR

Progress = Callable[[int, int], None]

# Problem kinds
INDEX_UNREADABLE = "index_unreadable"
MANIFEST_UNREADABLE = "manifest_unreadable"
INDEX_FILE_MISSING = "index_file_missing"
BLOB_MISSING = "blob_missing"  # reachable from a backup, in no index
PACK_MISSING = "pack_missing"  # named by the index, not in the store
BLOB_CORRUPT = "blob_corrupt"  # does not decompress or re-hash to its id
TREE_CORRUPT = "tree_corrupt"  # hashes fine but is not a tree


@dataclass(frozen=True)
class Problem:
    kind: str
    blob_id: str | None
    where: str
    detail: str


@dataclass(frozen=True)
class CheckReport:
    manifests_checked: int
    blobs_checked: int
    problems: list[Problem] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems


def check_repository(
    reader: RepositoryReader, *, read_data: bool = True, progress: Progress | None = None
) -> CheckReport:
    """Walk every backup's root, trees and objects; with ``read_data``, read and re-hash every indexed blob.

    Trees are always read (they must be, to know which objects a backup reaches). Problems are collected, not
    raised, so one run reports everything that is wrong; only a storage failure stops it.
    """
    problems: list[Problem] = []
    try:
        index = reader.load_index()
        index_files = reader.index_files()
    except RepositoryError as exc:
        return CheckReport(0, 0, [Problem(INDEX_UNREADABLE, None, "index/", str(exc))])
    packs = {PackId(key.rsplit("/", 1)[-1]) for key in reader.repo.store.list(PACKS_DIR)}
    superseded = {s for f in index_files.values() for s in f.supersedes}

    # blob -> first place that needs it, so a problem says which backup and tree it breaks.
    needed: dict[BlobId, str] = {}
    manifests = 0
    for cluster, backup_id in reader.list_backups():
        try:
            manifest = reader.load_manifest(cluster, backup_id)
        except RepositoryError as exc:
            problems.append(Problem(MANIFEST_UNREADABLE, None, f"backup {cluster}/{backup_id}", str(exc)))
            continue
        manifests += 1
        for name in manifest.index_files:
            # A consolidated index may replace a backup's own index file; only a name nothing accounts for is lost.
            if name not in index_files and name not in superseded:
                where = f"backup {cluster}/{backup_id}"
                problems.append(Problem(INDEX_FILE_MISSING, None, where, f"index file {name} is gone"))
        _walk_backup(reader, manifest, packs, needed, problems)

    reported = {index[BlobId(p.blob_id)].pack for p in problems if p.kind == PACK_MISSING and p.blob_id in index}
    for pack in sorted({e.pack for e in index.values()} - packs - reported):
        problems.append(Problem(PACK_MISSING, None, f"pack {pack}", "named by the index, not in the store"))

    checked = set(needed)
    if read_data:
        wanted = [b for b, e in index.items() if e.pack in packs]
        checked.update(wanted)
        for done, (blob, result) in enumerate(reader.try_read_blobs(wanted), start=1):
            if isinstance(result, BlobCorrupt | BlobMissing):
                kind = BLOB_CORRUPT if isinstance(result, BlobCorrupt) else PACK_MISSING
                problems.append(Problem(kind, blob, needed.get(blob) or f"pack {index[blob].pack}", str(result)))
            if progress is not None:
                progress(done, len(wanted))
    return CheckReport(manifests_checked=manifests, blobs_checked=len(checked), problems=_dedupe(problems))


def _walk_backup(
    reader: RepositoryReader,
    manifest: Manifest,
    packs: set[PackId],
    needed: dict[BlobId, str],
    problems: list[Problem],
) -> None:
    backup = f"backup {manifest.cluster}/{manifest.backup_id}"
    if not _present(reader, manifest.root_tree, f"root tree of {backup}", packs, needed, problems):
        return
    try:
        scopes = reader.root(manifest)
    except (BlobCorrupt, BlobMissing) as exc:
        problems.append(Problem(BLOB_CORRUPT, manifest.root_tree, f"root tree of {backup}", str(exc)))
        return
    except RepositoryCorrupt as exc:
        problems.append(Problem(TREE_CORRUPT, manifest.root_tree, f"root tree of {backup}", str(exc)))
        return
    for scope, tree_id in sorted(scopes.items()):
        where = f"{backup}, scope {scope or '(cluster)'}"
        if not _present(reader, tree_id, f"tree of {where}", packs, needed, problems):
            continue
        try:
            entries = reader.tree(tree_id, where=where)
        except (BlobCorrupt, BlobMissing) as exc:
            problems.append(Problem(BLOB_CORRUPT, tree_id, f"tree of {where}", str(exc)))
            continue
        except RepositoryCorrupt as exc:
            problems.append(Problem(TREE_CORRUPT, tree_id, f"tree of {where}", str(exc)))
            continue
        for entry in entries:
            obj = f"{where}, {entry.resource}{'.' + entry.group if entry.group else ''} {entry.name}"
            _present(reader, entry.blob, obj, packs, needed, problems)


def _present(
    reader: RepositoryReader,
    blob: BlobId,
    where: str,
    packs: set[PackId],
    needed: dict[BlobId, str],
    problems: list[Problem],
) -> bool:
    """Whether ``blob`` is indexed and its pack exists; records a problem (once per blob) when not."""
    first = blob not in needed
    needed.setdefault(blob, where)
    entry = reader.load_index().get(blob)
    if entry is None:
        if first:
            problems.append(Problem(BLOB_MISSING, blob, where, "blob is in no index file"))
        return False
    if entry.pack not in packs:
        if first:
            problems.append(Problem(PACK_MISSING, blob, where, f"pack {entry.pack} does not exist"))
        return False
    return True


def _dedupe(problems: list[Problem]) -> list[Problem]:
    """One problem per (kind, blob): a missing pack found by the walk is not reported again by the data read."""
    seen: set[tuple[str, str | None]] = set()
    out = []
    for p in problems:
        key = (p.kind, p.blob_id)
        if p.blob_id is None or key not in seen:
            seen.add(key)
            out.append(p)
    return out
