"""What backups reach: the one walk from manifests to root trees, scope trees, objects, packs, artifacts and volume
snapshots (which live in a storage system, not the repository: the walk names them, it never reads them).

Garbage collection, ``repo check``, replication and the commit check of a sharded backup must agree on this set:
prune deletes what no backup reaches, and a replica receives exactly what its backups reach. So they all call
``reachable`` and differ only in what they do about the trees it could not read (``Reach.unreadable``): GC aborts,
check reports and goes on, replication refuses the backup, the commit check rejects the commit.

Reads are batched: the index is loaded once, every root tree is read in one batch and every scope tree in a
second one. Object blobs are only looked up in the index, never read.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from functools import cached_property
from typing import TYPE_CHECKING, Any

from chalicelib.core.errors import FormatError
from chalicelib.core.ids import BlobId, PackId
from chalicelib.core.manifest import Manifest
from chalicelib.core.packs import is_hex_id
from chalicelib.core.trees import TreeEntry, decode_root, decode_tree
from chalicelib.repository.errors import RepositoryCorrupt, RepositoryError
from chalicelib.repository.repo import MANIFEST_NAME, PACKS_DIR, Repository

if TYPE_CHECKING:
    from chalicelib.repository.reader import RepositoryReader
    from chalicelib.repository.store import ObjectStore

ROOT_TREE = "root tree"
SCOPE_TREE = "scope tree"

# What decoding a damaged or foreign blob as a tree can raise.
_DECODE_ERRORS = (FormatError, KeyError, TypeError, AttributeError, ValueError)

# Where a blob is first needed: (position of the manifest, scope or None for its root tree, entry or None for a tree).
_Need = tuple[int, str | None, TreeEntry | None]


@dataclass(frozen=True)
class Unreadable:
    """A tree the walk could not read (``malformed`` False) or decode (True): what it reaches is unknown."""

    blob: BlobId
    what: str  # ROOT_TREE or SCOPE_TREE
    backup: str  # "backup <cluster>/<id>" of the first backup that needs it
    where: str  # the first place that needs it, as ``Reach.where`` says it
    error: RepositoryError
    malformed: bool


@dataclass(frozen=True)
class Artifact:
    """A large file stored beside a backup's manifest (an etcd snapshot), and the SHA-256 the manifest records."""

    key: str
    sha256: str | None


@dataclass(frozen=True)
class VolumeSnapshotRef:
    """A volume snapshot a backup's manifest records: where it lives, and which claim of which backup it holds."""

    type: str  # "csi" (a VolumeSnapshot and its content in the cluster) or "ebs"
    driver: str
    snapshot_handle: str  # the storage system's id ("" while the snapshot never became ready)
    namespace: str
    pvc: str
    snapshot_name: str  # the VolumeSnapshot the backup made
    content_name: str
    backup: str  # "backup <cluster>/<id>"
    state: str
    region: str = ""  # an EBS snapshot's region (its copies are refs of their own, in their regions)


@dataclass(frozen=True)
class Reach:
    """Everything the walked manifests reach, and what could not be read on the way."""

    manifests: tuple[Manifest, ...]
    index: Mapping[BlobId, Any]  # the reader's index (blob -> IndexEntry), as the walk saw it
    first: dict[BlobId, _Need]  # every reached blob, in walk order, with the first place that needs it
    roots: dict[BlobId, dict[str, BlobId]]  # root tree -> its scopes, for the roots that could be read
    unreadable: tuple[Unreadable, ...]
    artifacts: tuple[Artifact, ...] = ()
    stored_packs: frozenset[PackId] | None = None  # the pack listing, when the caller gave one
    entries: dict[BlobId, list[TreeEntry]] = field(default_factory=dict)  # scope tree -> entries (``keep_entries``)
    volume_snapshots: tuple[VolumeSnapshotRef, ...] = ()

    @cached_property
    def snapshot_handles(self) -> frozenset[tuple[str, str]]:
        """(driver, handle) of every storage snapshot the manifests reach: what retention must not delete."""
        return frozenset((v.driver, v.snapshot_handle) for v in self.volume_snapshots if v.snapshot_handle)

    @property
    def blobs(self) -> Collection[BlobId]:
        """Every blob reached: root trees, scope trees and objects."""
        return self.first.keys()

    @cached_property
    def trees(self) -> frozenset[BlobId]:
        """The root and scope trees among ``blobs``."""
        return frozenset(blob for blob, need in self.first.items() if need[2] is None)

    @cached_property
    def index_files(self) -> frozenset[str]:
        """The index file names the manifests list."""
        return frozenset(name for manifest in self.manifests for name in manifest.index_files)

    @cached_property
    def unindexed(self) -> tuple[BlobId, ...]:
        """Reached blobs in no index file, in walk order."""
        return tuple(blob for blob in self.first if blob not in self.index)

    @cached_property
    def packs(self) -> frozenset[PackId]:
        """The packs holding an indexed reached blob."""
        index = self.index
        return frozenset(index[blob].pack for blob in self.first if blob in index)

    @cached_property
    def missing_packs(self) -> dict[BlobId, PackId]:
        """Reached blob -> its pack, for packs the listing lacks (empty without a listing), in walk order."""
        if self.stored_packs is None:
            return {}
        index, stored = self.index, self.stored_packs
        return {b: index[b].pack for b in self.first if b in index and index[b].pack not in stored}

    def backups_reaching(self, blobs: Collection[BlobId]) -> dict[tuple[str, str], list[BlobId]]:
        """(cluster, backup id) -> the ``blobs`` that backup reaches (in walk order), from this walk's trees.

        Needs the scope trees' entries (``reachable(..., keep_entries=True)``): a shared blob is recorded once in
        ``first``, under the first backup only, but every backup reaching it is affected."""
        wanted = frozenset(blobs) & self.first.keys()
        found: dict[tuple[str, str], list[BlobId]] = {}
        if not wanted:
            return found
        if not self.entries and any(need[2] is not None for need in self.first.values()):
            raise ValueError("backups_reaching needs a walk made with keep_entries=True")
        for manifest in self.manifests:
            reached = [manifest.root_tree]
            for _scope, tree in sorted(self.roots.get(manifest.root_tree, {}).items()):
                reached.append(tree)
                reached.extend(entry.blob for entry in self.entries.get(tree, ()))
            hits = list(dict.fromkeys(blob for blob in reached if blob in wanted))
            if hits:
                found[(manifest.cluster, manifest.backup_id)] = hits
        return found

    def where(self, blob: BlobId) -> str:
        """The first place that needs ``blob``: "tree of backup C/ID, scope NS", "backup C/ID, scope NS, kind name"."""
        position, scope, entry = self.first[blob]
        backup = backup_label(self.manifests[position])
        if scope is None:
            return f"root tree of {backup}"
        where = f"{backup}, scope {scope or '(cluster)'}"
        if entry is None:
            return f"tree of {where}"
        return f"{where}, {entry.resource}{'.' + entry.group if entry.group else ''} {entry.name}"


def backup_label(manifest: Manifest) -> str:
    """How messages name a backup: "backup <cluster>/<id>"."""
    return f"backup {manifest.cluster}/{manifest.backup_id}"


def reachable(
    reader: RepositoryReader,
    manifests: Iterable[Manifest],
    *,
    stored_packs: Collection[PackId] | None = None,
    listing: Iterable[str] | None = None,
    keep_entries: bool = False,
) -> Reach:
    """Walk ``manifests`` (in order) to every blob they reach; report trees that cannot be read, do not raise.

    ``stored_packs`` (the pack listing) lets ``Reach.missing_packs`` say which reached packs are gone; ``listing``
    (keys of the backups' directories) yields their artifacts; ``keep_entries`` keeps each scope tree's entries.
    Raises only when the index itself cannot be read.
    """
    manifests = tuple(manifests)
    index = reader.load_index()
    unreadable: list[Unreadable] = []
    roots = _read_roots(reader, manifests, unreadable)
    decoded = _read_scope_trees(reader, manifests, roots, unreadable)
    first = _first_needs(manifests, roots, decoded)
    if unreadable:  # in walk order, so the first one reported is the first one met
        order = {blob: n for n, blob in enumerate(first)}
        unreadable.sort(key=lambda u: order.get(u.blob, len(order)))
    return Reach(
        manifests=manifests,
        index=index,
        first=first,
        roots=roots,
        unreadable=tuple(unreadable),
        artifacts=tuple(artifacts_of(manifests, listing)) if listing is not None else (),
        stored_packs=frozenset(stored_packs) if stored_packs is not None else None,
        entries=decoded if keep_entries else {},
        volume_snapshots=tuple(volume_snapshots_of(manifests)),
    )


def _read_roots(
    reader: RepositoryReader, manifests: Sequence[Manifest], unreadable: list[Unreadable]
) -> dict[BlobId, dict[str, BlobId]]:
    """Every manifest's root tree, read in one batch and decoded; failures go to ``unreadable``."""
    wanted: dict[BlobId, int] = {}
    for position, manifest in enumerate(manifests):
        wanted.setdefault(manifest.root_tree, position)
    roots: dict[BlobId, dict[str, BlobId]] = {}
    for root, result in reader.try_read_blobs(list(wanted), where=_batch_where(ROOT_TREE, manifests)):
        backup = backup_label(manifests[wanted[root]])
        where = f"root tree of {backup}"
        if isinstance(result, RepositoryError):
            unreadable.append(Unreadable(root, ROOT_TREE, backup, where, result, malformed=False))
            continue
        try:
            roots[root] = decode_root(result)
        except _DECODE_ERRORS as exc:
            error = RepositoryCorrupt(f"blob {root} ({where}) is not a root tree: {exc}")
            error.__cause__ = exc
            unreadable.append(Unreadable(root, ROOT_TREE, backup, where, error, malformed=True))
    return roots


def _read_scope_trees(
    reader: RepositoryReader,
    manifests: Sequence[Manifest],
    roots: dict[BlobId, dict[str, BlobId]],
    unreadable: list[Unreadable],
) -> dict[BlobId, list[TreeEntry]]:
    """Every scope tree the roots name, read in one batch and decoded; failures go to ``unreadable``."""
    wanted: dict[BlobId, tuple[int, str]] = {}  # tree -> the first (backup, scope) that needs it
    for position, manifest in enumerate(manifests):
        for scope, tree in sorted(roots.get(manifest.root_tree, {}).items()):
            wanted.setdefault(tree, (position, scope))
    decoded: dict[BlobId, list[TreeEntry]] = {}
    for tree, result in reader.try_read_blobs(list(wanted), where=_batch_where(SCOPE_TREE, manifests)):
        position, scope = wanted[tree]
        backup = backup_label(manifests[position])
        place = f"{backup}, scope {scope or '(cluster)'}"
        if isinstance(result, RepositoryError):
            unreadable.append(Unreadable(tree, SCOPE_TREE, backup, f"tree of {place}", result, malformed=False))
            continue
        try:
            decoded[tree] = decode_tree(result)
        except _DECODE_ERRORS as exc:
            error = RepositoryCorrupt(f"blob {tree} ({place}) is not a scope tree: {exc}")
            error.__cause__ = exc
            unreadable.append(Unreadable(tree, SCOPE_TREE, backup, f"tree of {place}", error, malformed=True))
    return decoded


def _first_needs(
    manifests: Sequence[Manifest], roots: dict[BlobId, dict[str, BlobId]], decoded: dict[BlobId, list[TreeEntry]]
) -> dict[BlobId, _Need]:
    """Every reached blob with the first place that needs it: backups in order, then scopes, then entries."""
    first: dict[BlobId, _Need] = {}
    for position, manifest in enumerate(manifests):
        root = manifest.root_tree
        if root in first:
            continue  # another backup of the same root tree: everything under it is recorded already
        first[root] = (position, None, None)
        for scope, tree in sorted(roots.get(root, {}).items()):
            if tree in first:
                continue
            first[tree] = (position, scope, None)
            for entry in decoded.get(tree, ()):
                if entry.blob not in first:
                    first[entry.blob] = (position, scope, entry)
    return first


def volume_snapshots_of(manifests: Iterable[Manifest]) -> list[VolumeSnapshotRef]:
    """The volume snapshots ``manifests`` record: every record that names a snapshot or a storage handle (a claim
    recorded as excluded or not snapshot-able has neither), and each copy of an EBS snapshot in another region, in
    manifest order."""
    out: list[VolumeSnapshotRef] = []
    for manifest in manifests:
        for record in manifest.volume_snapshots or ():
            if not isinstance(record, dict):
                continue
            handle = str(record.get("snapshot_handle") or record.get("snapshot_id") or "")
            name = str(record.get("snapshot_name") or "")
            if not handle and not name:
                continue
            out.append(
                VolumeSnapshotRef(
                    type=str(record.get("type") or "csi"),
                    driver=str(record.get("driver") or ""),
                    snapshot_handle=handle,
                    namespace=str(record.get("namespace") or ""),
                    pvc=str(record.get("pvc") or ""),
                    snapshot_name=name,
                    content_name=str(record.get("content_name") or ""),
                    backup=backup_label(manifest),
                    state=str(record.get("state") or ""),
                    region=str(record.get("region") or ""),
                )
            )
            for copy in record.get("copies") or ():
                if isinstance(copy, dict) and copy.get("snapshot_id"):
                    out.append(replace(out[-1], snapshot_handle=str(copy["snapshot_id"]), region=str(copy["region"])))
    return out


def list_packs(store: ObjectStore) -> set[PackId]:
    """The ids of the packs in the store: one listing."""
    return {PackId(name) for key in store.list(PACKS_DIR) if is_hex_id(name := key.rsplit("/", 1)[-1])}


def artifacts_of(manifests: Sequence[Manifest], listing: Iterable[str]) -> list[Artifact]:
    """The artifacts of ``manifests`` among ``listing`` (keys of their directories), with recorded checksums."""
    keys = list(listing)
    out: list[Artifact] = []
    for manifest in manifests:
        recorded = recorded_checksums(manifest)
        directory = Repository.manifest_key(manifest.cluster, manifest.backup_id)[: -len(MANIFEST_NAME)]
        for key in artifact_keys(keys, manifest.cluster, manifest.backup_id):
            out.append(Artifact(key, recorded.get(key[len(directory) :])))
    return sorted(out, key=lambda a: a.key)


def artifact_keys(keys: Iterable[str], cluster: str, backup_id: str) -> list[str]:
    """The large files of a backup (etcd snapshots beside its manifest, database dumps), from a listing of its
    directory."""
    return sorted(k for k in keys if (found := Repository.parse_artifact_key(k)) and found[:2] == (cluster, backup_id))


def recorded_checksums(manifest: Manifest) -> dict[str, str]:
    """Name in the backup's directory -> SHA-256 (hex) for artifacts whose checksum the manifest records
    (``etcd_snapshot``, and each stored dump of ``dumps``)."""
    out: dict[str, str] = {}
    etcd = manifest.etcd_snapshot
    if isinstance(etcd, dict) and (digest := _hex_digest(etcd.get("sha256"))):
        out[str(etcd.get("key") or etcd.get("name") or "etcd.db").rsplit("/", 1)[-1]] = digest
    for dump in manifest.dumps:
        if isinstance(dump, dict) and dump.get("key") and (digest := _hex_digest(dump.get("sha256"))):
            out[str(dump["key"])] = digest
    return out


def _hex_digest(value: Any) -> str | None:
    if isinstance(value, str):
        value = value.removeprefix("sha256:").lower()
        return value if is_hex_id(value) else None
    return None


def _batch_where(what: str, manifests: Sequence[Manifest]) -> str:
    """The ``where`` of one batch read: the backup when there is one, else how many (each error names its blob)."""
    plural = "s" if what == SCOPE_TREE or len(manifests) != 1 else ""
    whose = backup_label(manifests[0]) if len(manifests) == 1 else f"{len(manifests)} backups"
    return f"{what}{plural} of {whose}"
