"""The repository's side of a one-shot backup: its index and its parent's objects, then the check of what it reuses."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from chalicelib.backup.compact import CompactCollector
from chalicelib.backup.errors import BackupError
from chalicelib.backup.head_start import Opened, in_background
from chalicelib.backup.reuse import PriorObjects, load_prior
from chalicelib.backup.verify import EarlyCheck, damaged
from chalicelib.core.ids import BlobId


def open_repository(
    repo: Any,
    cluster: str,
    parent_to_read: Callable[[], str | None],
    guess: Callable[[], str | None] | None = None,
    *,
    reuse_unchanged: bool = True,
) -> Opened:
    """``repo``'s index, and the objects of the backup of ``cluster`` that ``parent_to_read`` names, once it does
    (None: none). ``guess`` names the parent earlier, unconfirmed: its manifest is read while the index loads, and
    its trees once it has; they are kept only if ``parent_to_read`` names the same backup. Without
    ``reuse_unchanged`` no parent is read."""
    from chalicelib.repository import RepositoryReader

    reader = RepositoryReader(repo, reuse_loaded_index=True)
    if not reuse_unchanged:
        return Opened(repo, reader.load_index(), None, None, reader)
    early = guess or parent_to_read
    reading = in_background(lambda: parent_manifest(reader, cluster, early()), "lifeboat-read-parent")
    index = reader.load_index()
    read, manifest = reading.result()
    parent_uid, prior = prior_objects(reader, manifest)
    parent = parent_to_read() if guess is not None else read
    if parent != read:
        # The catalog's index named a backup the consistent read did not confirm: read the confirmed one.
        manifest = parent_manifest(reader, cluster, parent)[1]
        parent_uid, prior = prior_objects(reader, manifest)
    if parent is None:
        return Opened(repo, index, None, None, reader)
    check = None
    if prior is not None and len(prior):
        # The sample of the parent's blobs is read while the backup lists; its root and trees, hash-checked as
        # they were loaded just now, count as read (``verify.EarlyCheck``).
        verified = [manifest.root_tree, *prior.tree_ids()]
        check = EarlyCheck(reader, index, prior.digests(), verified=verified)
    return Opened(repo, index, parent_uid, prior, reader, parent, check)


def parent_manifest(reader: Any, cluster: str, parent: str | None) -> tuple[str | None, Any]:
    """(``parent``, its manifest); None for the manifest when there is no parent or it cannot be read."""
    from chalicelib.repository.errors import RepositoryError

    if parent is None:
        return None, None
    try:
        return parent, reader.load_manifest(cluster, parent)
    except RepositoryError:
        return parent, None  # reuse is only a shortcut: without the parent, every object takes the full path


def prior_objects(reader: Any, manifest: Any) -> tuple[str | None, PriorObjects | None]:
    """The cluster uid and objects of the backup ``manifest`` describes (None, None: every object takes the full
    path)."""
    from chalicelib.repository.errors import RepositoryError

    if manifest is None or not manifest.cluster_uid:
        return None, None
    try:
        return manifest.cluster_uid, load_prior(reader, manifest, manifest.cluster_uid)
    except RepositoryError:
        # Reuse is only a shortcut: a parent that cannot be read makes this backup a full one, not a failed one.
        return None, None


def refuse_damaged_reuse(
    opened: Opened,
    collector: CompactCollector,
    trees: list[BlobId],
    cluster: str,
    early: EarlyCheck | None = None,
) -> None:
    """Fail the backup before its commit when a sample of the blobs it deduplicates against does not read: a
    manifest reaching a damaged blob would be unrestorable, and would hide the damage behind a new backup.
    ``early``: the ``EarlyCheck`` of the parent's blobs, whose results need not be read again."""
    if opened.reader is None:
        return
    # The collector sampled the reused blobs per pack as it wrote the trees: no set of them all is kept.
    checked = early.results() if early is not None else None
    failed = damaged(opened.reader, opened.index, collector.reused_sample(), always=trees, checked=checked)
    if failed:
        packs = sorted({str(opened.index[blob].pack) for blob, _ in failed})
        raise BackupError(
            f"cluster {cluster!r}: {len(failed)} blob(s) this backup deduplicates against are damaged "
            f"(packs {', '.join(packs[:3])}; first: {failed[0][1]}); nothing was committed"
        )
