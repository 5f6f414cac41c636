"""Garbage collection of a repository (restic ``prune``): mark what manifests reach, then delete old dead packs.

Runs under the repository's exclusive lease (``maintenance/lock.py``), after retention has deleted the manifests it
drops. Blobs are shared by every cluster, so every manifest under ``clusters/`` is marked. The order of writes keeps
the repository valid if the collection stops at any point:

1. mark: every blob reachable from every remaining manifest (``repository/reach.py``: root tree, scope trees,
   objects). A manifest or tree that cannot be read stops the collection before anything is deleted (we could not
   know what it reaches);
2. decide per pack: keep it if it holds a live blob or is younger than the safety margin (a running backup's pack
   is unreferenced until its manifest lands); otherwise it is garbage, and so is a pack no index names that is
   older than the margin (a crashed backup's leftovers);
3. write one consolidated index naming every kept pack, superseding every index file read (and carrying the names
   manifests still list, so ``check`` can account for them). Readers switch to it atomically: they ignore
   superseded files;
4. delete the garbage packs (no index names them any more), then the superseded index files. On a bucket with
   Object Lock default retention, garbage still retained is left and reported, and deleted (every version) by a
   later run once it expires (``maintenance/immutability.py``).

A crash after 3 leaves unindexed dead packs (collected next time); after 4 began, the remaining superseded files
are ignored by readers and deleted next time. Nothing an index names is ever deleted first.
"""

from __future__ import annotations

import contextlib
import functools
import time
from collections.abc import Callable, Collection, Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta

from chalicelib.core.ids import BlobId, PackId
from chalicelib.core.index_format import encode_index
from chalicelib.core.manifest import Manifest
from chalicelib.core.packs import PackedBlob, is_hex_id
from chalicelib.maintenance.errors import CollectionAborted
from chalicelib.maintenance.immutability import Sweep, default_retention, sweep
from chalicelib.repository.errors import ObjectExists, RepositoryError
from chalicelib.repository.reach import ROOT_TREE, Reach, reachable
from chalicelib.repository.reader import RepositoryReader
from chalicelib.repository.repo import CLUSTERS_DIR, INDEX_DIR, PACKS_DIR, Repository
from chalicelib.repository.store import ObjectStore

DEFAULT_SAFETY_MARGIN = timedelta(hours=24)


@dataclass(frozen=True)
class CollectionReport:
    dry_run: bool
    manifests: int
    blobs_indexed: int
    blobs_live: int
    packs: int  # in the store
    packs_live: int
    packs_young: int  # no live blob, but inside the safety margin: kept
    packs_deleted: tuple[str, ...]
    bytes_deleted: int
    index_written: str | None
    index_files_deleted: tuple[str, ...]
    skipped: tuple[str, ...]  # deletes the store refused (bucket policy, unknown lock): retried next time
    seconds: float
    # Artifacts (etcd snapshots) of backups whose manifest retention deleted: they follow their backup.
    artifacts_deleted: tuple[str, ...] = ()
    # Garbage still under Object Lock retention, (key, "retained until <ISO date>"): deleted by a later run.
    retained: tuple[tuple[str, str], ...] = ()
    versions_deleted: int = 0  # object versions and delete markers removed for good (Object Lock buckets)


def collect_garbage(
    repo: Repository,
    *,
    now: datetime,
    safety_margin: timedelta = DEFAULT_SAFETY_MARGIN,
    dry_run: bool = False,
    exclude_manifests: Collection[tuple[str, str]] = (),
    check_lease: Callable[[], None] | None = None,
    threads: int = 8,
) -> CollectionReport:
    """Mark and sweep ``repo``; ``exclude_manifests`` (cluster, backup id) count as deleted (a dry run's retention).

    ``check_lease`` is called before every destructive step and must raise if the exclusive lease was lost.
    """
    started = time.monotonic()
    check = check_lease or (lambda: None)
    store = repo.store
    reader = RepositoryReader(repo, threads=threads)
    try:
        index_files = reader.index_files()
    except RepositoryError as exc:
        raise CollectionAborted(f"the index cannot be read, nothing was deleted: {exc}") from exc
    manifests = [m for m in reader.list_backups() if m not in set(exclude_manifests)]
    reach = _mark(reader, manifests)
    live, referenced_index_files = reach.blobs, reach.index_files

    superseded = {name for f in index_files.values() for name in f.supersedes}
    rows: dict[PackId, dict[BlobId, PackedBlob]] = {}
    for name in sorted(index_files):
        if name in superseded:
            continue
        for pack, blobs in index_files[name].packs.items():
            kept = rows.setdefault(pack, {})
            for blob in blobs:
                kept.setdefault(BlobId(blob[0]), blob)
    stored = {
        PackId(info.key.rsplit("/", 1)[-1]): info
        for info in store.list_info(PACKS_DIR)
        if is_hex_id(info.key.rsplit("/", 1)[-1])
    }

    keep: dict[PackId, list[PackedBlob]] = {}
    garbage: list[PackId] = []
    packs_live = packs_young = 0
    for pack in sorted(set(stored) | set(rows)):
        pack_rows = rows.get(pack, {})
        has_live = any(blob in live for blob in pack_rows)
        info = stored.get(pack)
        if info is None:
            if has_live:
                keep[pack] = list(pack_rows.values())  # already broken; keep the entries so `check` keeps saying so
            continue
        if has_live:
            packs_live += 1
        elif now - info.last_modified < safety_margin:
            packs_young += 1
        else:
            garbage.append(pack)
            continue
        if pack_rows:
            keep[pack] = list(pack_rows.values())

    orphans = orphan_artifacts(store, set(manifests), now=now, safety_margin=safety_margin)
    rewrite = bool(garbage) or len(index_files) > 1
    index_written: str | None = None
    deleted_packs: list[str] = []
    deleted_index: list[str] = []
    swept = Sweep()
    # The bucket's Object Lock default retention, read once; it decides how garbage is deleted.
    lock = default_retention(store) if garbage or orphans or (rewrite and not dry_run) else None
    remove = functools.partial(sweep, store, now=now, threads=threads, retention=lock, dry_run=dry_run)
    if rewrite and not dry_run:
        carried = {name for f in index_files.values() for name in f.supersedes} & referenced_index_files
        index_written, data = encode_index(keep, supersedes=set(index_files) | carried)
        check()
        # Content-addressed: if the key exists, an identical consolidated index is already there.
        with contextlib.suppress(ObjectExists):
            store.put(repo.index_key(index_written), data, create_only=True)
        check()
        deleted_packs = swept.add(remove([repo.pack_key(p) for p in garbage]))
        check()
        deleted_index = swept.add(remove([repo.index_key(n) for n in sorted(index_files)]))
    deleted_artifacts = orphans
    if not dry_run and orphans:
        check()
        deleted_artifacts = swept.add(remove(orphans))
    if dry_run:
        deleted_packs = swept.add(remove([repo.pack_key(p) for p in garbage]))
    sizes = {repo.pack_key(p): stored[p].size for p in garbage}
    return CollectionReport(
        dry_run=dry_run,
        manifests=len(manifests),
        blobs_indexed=sum(len(b) for b in rows.values()),
        blobs_live=len(live),
        packs=len(stored),
        packs_live=packs_live,
        packs_young=packs_young,
        packs_deleted=tuple(deleted_packs),
        bytes_deleted=sum(sizes.get(k, 0) for k in deleted_packs),
        index_written=index_written,
        index_files_deleted=tuple(k[len(INDEX_DIR) :] for k in deleted_index),
        skipped=tuple(swept.refused),
        seconds=time.monotonic() - started,
        artifacts_deleted=tuple(deleted_artifacts),
        retained=tuple((key, f"retained until {until.isoformat()}") for key, until in sorted(swept.retained.items())),
        versions_deleted=swept.versions_deleted,
    )


def orphan_artifacts(
    store: ObjectStore, manifests: set[tuple[str, str]], *, now: datetime, safety_margin: timedelta
) -> list[str]:
    """Files beside a manifest (``clusters/<c>/backups/<id>/<name>``) whose manifest is gone and that are older
    than the safety margin. A backup writes its etcd snapshot before its manifest, so a young one may belong to a
    backup still running (which also holds a shared lease that keeps this collection from running at all)."""
    out: list[str] = []
    for info in store.list_info(CLUSTERS_DIR):
        found = Repository.parse_artifact_key(info.key)
        if found is None:
            continue
        if found[:2] in manifests or now - info.last_modified < safety_margin:
            continue
        out.append(info.key)
    return out


def _mark(reader: RepositoryReader, manifests: Iterable[tuple[str, str]]) -> Reach:
    """Every blob the manifests reach; any manifest or tree that cannot be read aborts, since then we cannot know."""
    loaded: list[Manifest] = []
    for cluster, backup_id in manifests:
        try:
            loaded.append(reader.load_manifest(cluster, backup_id))
        except RepositoryError as exc:
            where = f"backup {cluster}/{backup_id}"
            raise CollectionAborted(f"{where}: manifest unreadable, nothing deleted: {exc}") from exc
    reach = reachable(reader, loaded)
    for problem in reach.unreadable:
        if problem.malformed:
            what = "a root tree" if problem.what == ROOT_TREE else "a tree"
            raise CollectionAborted(
                f"{problem.what} {problem.blob} of {problem.backup} is not {what}: {problem.error.__cause__}"
            ) from problem.error
        raise CollectionAborted(
            f"{problem.what} {problem.blob} of {problem.backup} cannot be read, nothing deleted: {problem.error}"
        ) from problem.error
    return reach
