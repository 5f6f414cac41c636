"""Checking a repository: every backup reaches only blobs that exist, and (optionally) every blob re-hashes."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from chalicelib.core.ids import BlobId
from chalicelib.core.manifest import Manifest
from chalicelib.repository.errors import BlobCorrupt, BlobMissing, RepositoryError
from chalicelib.repository.reach import Reach, list_packs, reachable
from chalicelib.repository.reader import RepositoryReader

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

    Trees are always read (they must be, to know which objects a backup reaches: ``reach.py``). Problems are
    collected, not raised, so one run reports everything that is wrong; only a storage failure stops it.
    """
    problems: list[Problem] = []
    try:
        index = reader.load_index()
        index_files = reader.index_files()
    except RepositoryError as exc:
        return CheckReport(0, 0, [Problem(INDEX_UNREADABLE, None, "index/", str(exc))])
    packs = list_packs(reader.repo.store)
    superseded = {s for f in index_files.values() for s in f.supersedes}

    manifests: list[Manifest] = []
    for cluster, backup_id in reader.list_backups():
        try:
            manifest = reader.load_manifest(cluster, backup_id)
        except RepositoryError as exc:
            problems.append(Problem(MANIFEST_UNREADABLE, None, f"backup {cluster}/{backup_id}", str(exc)))
            continue
        manifests.append(manifest)
        for name in manifest.index_files:
            # A consolidated index may replace a backup's own index file; only a name nothing accounts for is lost.
            if name not in index_files and name not in superseded:
                where = f"backup {cluster}/{backup_id}"
                problems.append(Problem(INDEX_FILE_MISSING, None, where, f"index file {name} is gone"))
    reach = reachable(reader, manifests, stored_packs=packs)
    problems.extend(_walk_problems(reach))

    reported = {index[BlobId(p.blob_id)].pack for p in problems if p.kind == PACK_MISSING and p.blob_id in index}
    for pack in sorted({e.pack for e in index.values()} - packs - reported):
        problems.append(Problem(PACK_MISSING, None, f"pack {pack}", "named by the index, not in the store"))

    checked = set(reach.blobs)
    if read_data:
        wanted = [b for b, e in index.items() if e.pack in packs]
        checked.update(wanted)
        for done, (blob, result) in enumerate(reader.try_read_blobs(wanted), start=1):
            if isinstance(result, BlobCorrupt | BlobMissing):
                kind = BLOB_CORRUPT if isinstance(result, BlobCorrupt) else PACK_MISSING
                where = reach.where(blob) if blob in reach.first else f"pack {index[blob].pack}"
                problems.append(Problem(kind, blob, where, str(result)))
            if progress is not None:
                progress(done, len(wanted))
    return CheckReport(manifests_checked=len(manifests), blobs_checked=len(checked), problems=_dedupe(problems))


def _walk_problems(reach: Reach) -> list[Problem]:
    """Reached blobs that are in no index file or whose pack is gone, then trees that would not read or decode."""
    problems: list[Problem] = []
    for blob in reach.unindexed:
        problems.append(Problem(BLOB_MISSING, blob, reach.where(blob), "blob is in no index file"))
    missing = reach.missing_packs
    for blob, pack in missing.items():
        problems.append(Problem(PACK_MISSING, blob, reach.where(blob), f"pack {pack} does not exist"))
    for tree in reach.unreadable:
        if tree.blob in missing or tree.blob not in reach.index:
            continue  # reported above: a tree that is not there is missing, not corrupt
        problems.append(
            Problem(TREE_CORRUPT if tree.malformed else BLOB_CORRUPT, tree.blob, tree.where, str(tree.error))
        )
    return problems


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
