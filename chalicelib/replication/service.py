"""The replicator: verified server-side copies into the replica region, a manifest only after its whole closure."""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal

from chalicelib.aws.events import Publisher, announce
from chalicelib.catalog.dynamo import iso
from chalicelib.catalog.errors import CatalogError, RecordNotFound, StaleState
from chalicelib.core.errors import FormatError
from chalicelib.core.events import replication_completed, replication_failed
from chalicelib.core.index_format import decode_index, index_id
from chalicelib.core.manifest import Manifest
from chalicelib.core.models import ReplicaState
from chalicelib.observability import logger
from chalicelib.replication.closure import Closure, backup_closure
from chalicelib.replication.errors import (
    ChecksumMismatch,
    ClosureIncomplete,
    ReplicaConflict,
    ReplicationError,
    SourceMissing,
)
from chalicelib.replication.events import ObjectCreated, ObjectKind, RepositoryObject, classify
from chalicelib.replication.storage import ObjectInfo, ReplicaBuckets, b64_to_hex
from chalicelib.repository.errors import RepositoryError
from chalicelib.repository.reader import RepositoryReader
from chalicelib.repository.repo import CONFIG_KEY, MANIFEST_NAME, Repository, RepositoryConfig

DEFAULT_ATTEMPTS = 3
DEFAULT_THREADS = 8
# Within one batch: whatever a manifest needs goes first, so its closure check mostly finds objects already there.
_ORDER = {
    ObjectKind.CONFIG: 0,
    ObjectKind.PACK: 1,
    ObjectKind.INDEX: 2,
    ObjectKind.ARTIFACT: 3,
    ObjectKind.MANIFEST: 4,
    ObjectKind.OTHER: 5,
}


def _utcnow() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True)
class Copied:
    key: str
    action: Literal["skipped", "copied", "repaired"]


@dataclass(frozen=True)
class BackupReplicated:
    cluster: str
    backup_id: str
    region: str
    lag_s: float | None  # manifest written in the primary -> manifest verified in the replica
    copies: tuple[Copied, ...]
    first: bool = True  # this run completed it; a duplicate event or reconciler pass only re-verified it

    def count(self, action: str) -> int:
        return sum(1 for c in self.copies if c.action == action)


class BatchFailed(ReplicationError):
    """Some objects of a batch could not be replicated; the rest were. Retrying the batch redoes only those."""

    def __init__(self, failures: Sequence[tuple[str, Exception]]) -> None:
        first_key, first = failures[0]
        super().__init__(f"{len(failures)} object(s) not replicated; first {first_key}: {first}")
        self.failures = list(failures)


class Replicator:
    """Replicates one primary repository into one replica region. One instance per invocation (index cache)."""

    def __init__(
        self,
        buckets: ReplicaBuckets,
        *,
        region: str,
        open_reader: Callable[[], RepositoryReader],
        catalog: Any | None = None,
        clock: Callable[[], datetime] = _utcnow,
        attempts: int = DEFAULT_ATTEMPTS,
        threads: int = DEFAULT_THREADS,
        events: Publisher | None = None,
    ) -> None:
        """``events`` announces Replication Completed (by the run that completed a backup) and Failed."""
        if attempts < 1 or threads < 1:
            raise ValueError("attempts and threads must be at least 1")
        self.buckets = buckets
        self.region = region
        self._open_reader = open_reader
        self._catalog = catalog
        self._clock = clock
        self._attempts = attempts
        self._threads = threads
        self._reader: RepositoryReader | None = None
        self._config_ok = False
        self._events = events

    # -- entry points -------------------------------------------------------------------------------------------

    def handle(self, events: Iterable[ObjectCreated]) -> list[Copied | BackupReplicated]:
        """Replicate what a batch of events names: every object is attempted; failures are raised together after."""
        wanted: dict[str, RepositoryObject] = {}
        for event in events:
            if event.bucket != self.buckets.source_bucket or not event.key.startswith(self.buckets.prefix):
                logger().info("event outside the repository ignored", extra={"bucket": event.bucket, "key": event.key})
                continue
            obj = classify(event.key[len(self.buckets.prefix) :])
            wanted.setdefault(obj.key, obj)  # duplicates within a batch are one copy
        results: list[Copied | BackupReplicated] = []
        failures: list[tuple[str, Exception]] = []
        for obj in sorted(wanted.values(), key=lambda o: (_ORDER[o.kind], o.key)):
            try:
                result = self.replicate(obj)
            except (ReplicationError, RepositoryError, CatalogError) as exc:
                logger().warning("replication failed", extra={"key": obj.key, "error": str(exc)})
                failures.append((obj.key, exc))
                continue
            if result is not None:
                results.append(result)
        if failures:
            raise BatchFailed(failures) from failures[0][1]
        return results

    def replicate(self, obj: RepositoryObject) -> Copied | BackupReplicated | None:
        if obj.kind == ObjectKind.OTHER:
            logger().info("not a repository object; ignored", extra={"key": obj.key})
            return None
        if obj.kind == ObjectKind.MANIFEST:
            assert obj.cluster is not None and obj.backup_id is not None
            return self.replicate_backup(obj.cluster, obj.backup_id)
        self.ensure_config()
        if obj.kind == ObjectKind.PACK:
            assert obj.content_id is not None
            return self.ensure(obj.key, obj.content_id)
        if obj.kind == ObjectKind.INDEX:
            assert obj.content_id is not None
            return self._replicate_index(obj.content_id)
        if obj.kind == ObjectKind.ARTIFACT:
            return self._replicate_artifact(obj.key, None)
        return None  # config.json: ensure_config above did it

    def replicate_backup(self, cluster: str, backup_id: str) -> BackupReplicated | None:
        """Copy everything ``backup_id`` reaches that the replica lacks or holds damaged, then its manifest.

        Returns None when the primary no longer has the manifest (retention removed it after the event).
        """
        key = Repository.manifest_key(cluster, backup_id)
        try:
            try:
                data, written = self.buckets.source_get(key)
            except SourceMissing:
                logger().info("manifest no longer in the primary; nothing to replicate", extra={"key": key})
                return None
            self._mark(cluster, backup_id, ReplicaState.PENDING)
            manifest = _parse_manifest(data, cluster, backup_id, key)
            self.ensure_config()
            listing = (k for k, _ in self.buckets.list_source(key[: -len(MANIFEST_NAME)]))
            closure = backup_closure(self.reader(), manifest, listing)
            copies = self._ensure_closure(closure)
            # The commit point in the replica: only now can a reader of the replica see this backup.
            copies.append(self.ensure(key, hashlib.sha256(data).hexdigest()))
        except (ReplicationError, RepositoryError) as exc:
            self._mark(cluster, backup_id, ReplicaState.FAILED, error=str(exc))
            announce(self._events, replication_failed(cluster, backup_id, self.region, error=str(exc)))
            raise
        now = self._clock()
        lag = (now - written).total_seconds() if written is not None else None
        record = self._mark(cluster, backup_id, ReplicaState.REPLICATED, lag_s=lag, now=now)
        # Only the run that completed it measures lag; a duplicate event or a reconciler pass would re-measure.
        first = record is None or record.replicas.get(self.region, {}).get("replicated_at") == iso(now)
        result = BackupReplicated(cluster, backup_id, self.region, lag, tuple(copies), first)
        if first:
            copied, repaired = result.count("copied"), result.count("repaired")
            event = replication_completed(cluster, backup_id, self.region, lag_s=lag, copied=copied, repaired=repaired)
            announce(self._events, event)
        logger().info(
            "backup replicated",
            extra={
                "cluster": cluster,
                "backup_id": backup_id,
                "region": self.region,
                "lag_s": lag,
                "copied": result.count("copied"),
                "repaired": result.count("repaired"),
            },
        )
        return result

    # -- objects ------------------------------------------------------------------------------------------------

    def ensure(self, key: str, expected_hex: str, *, size: int | None = None) -> Copied:
        """Make the replica hold ``key`` with SHA-256 ``expected_hex``: skip if it does, copy (again) otherwise.

        A copy that does not verify is retried; after the last attempt it is deleted again and reported, never
        accepted: the replica never holds wrong bytes under a name (for a manifest: a wrong commit point).
        """
        present = self.buckets.replica_head(key)
        if present is not None and self._holds(key, present, expected_hex):
            return Copied(key, "skipped")
        if present is not None:
            logger().warning("replica object differs from its checksum; copying it again", extra={"key": key})
        for attempt in range(1, self._attempts + 1):
            copied = self.buckets.copy(key, size or 0)
            if self._verified(key, copied, expected_hex):
                return Copied(key, "repaired" if present is not None else "copied")
            logger().warning("copy did not verify", extra={"key": key, "attempt": attempt})
        self.buckets.replica_delete(key)
        raise ChecksumMismatch(
            f"{key}: the replica copy does not have SHA-256 {expected_hex} after {self._attempts} attempts", key=key
        )

    def ensure_config(self) -> None:
        """The replica's config.json is the primary's (same repository id), copied before anything else."""
        if self._config_ok:
            return
        try:
            data, _ = self.buckets.source_get(CONFIG_KEY)
        except SourceMissing as exc:
            raise ClosureIncomplete(f"the primary has no repository ({CONFIG_KEY} is missing)") from exc
        expected = hashlib.sha256(data).hexdigest()
        present = self.buckets.replica_head(CONFIG_KEY)
        if present is not None and not self._holds(CONFIG_KEY, present, expected):
            self._refuse_foreign_repository(data)
        self.ensure(CONFIG_KEY, expected)
        self._config_ok = True

    def reader(self) -> RepositoryReader:
        if self._reader is None:
            self._reader = self._open_reader()
        return self._reader

    def _ensure_closure(self, closure: Closure) -> list[Copied]:
        copies = self._ensure_many([(Repository.pack_key(p), p) for p in closure.packs])
        copies += self._ensure_many([(Repository.pack_key(p), p) for p in closure.neighbour_packs], lenient=True)
        copies += self._ensure_many([(Repository.index_key(i), i) for i in closure.index_files])
        for artifact, recorded in closure.artifacts:
            copies.append(self._replicate_artifact(artifact, recorded))
        return copies

    def _ensure_many(self, items: list[tuple[str, str]], *, lenient: bool = False) -> list[Copied]:
        """Ensure every (key, sha256) at once; all are attempted before the first failure is raised."""

        def one(item: tuple[str, str]) -> Copied | Exception:
            try:
                return self.ensure(*item)
            except SourceMissing as exc:
                if lenient:  # a pack an index names but the primary lost: the replica mirrors the primary
                    logger().warning("pack named by an index file is not in the primary", extra={"key": item[0]})
                    return Copied(item[0], "skipped")
                return exc
            except ReplicationError as exc:
                return exc

        with ThreadPoolExecutor(max_workers=self._threads, thread_name_prefix="lifeboat-replicate") as pool:
            outcomes = list(pool.map(one, items))
        for outcome in outcomes:
            if isinstance(outcome, Exception):
                raise outcome
        return [o for o in outcomes if isinstance(o, Copied)]

    def _replicate_index(self, name: str) -> Copied:
        """An index file reaches the replica only after the packs it names, so the replica's index never dangles."""
        key = Repository.index_key(name)
        data, _ = self.buckets.source_get(key)
        if index_id(data) != name:
            raise ClosureIncomplete(f"primary index file {key} does not hash to its name: damaged, not replicated")
        try:
            packs = decode_index(data).packs
        except FormatError as exc:
            raise ClosureIncomplete(f"primary index file {key}: {exc}") from exc
        self._ensure_many([(Repository.pack_key(p), p) for p in sorted(packs)], lenient=True)
        return self.ensure(key, name)

    def _replicate_artifact(self, key: str, recorded_hex: str | None) -> Copied:
        head = self.buckets.source_head(key)
        primary_hex = b64_to_hex(head.sha256_b64) if head.sha256_b64 else None
        if recorded_hex and primary_hex and primary_hex != recorded_hex:
            raise ChecksumMismatch(f"{key}: the primary copy does not have the SHA-256 its manifest records", key=key)
        expected = recorded_hex or primary_hex or self.buckets.source_sha256(key)
        return self.ensure(key, expected, size=head.size)

    def _holds(self, key: str, info: ObjectInfo, expected_hex: str) -> bool:
        if info.sha256_b64:
            return b64_to_hex(info.sha256_b64) == expected_hex
        return self.buckets.replica_sha256(key) == expected_hex  # multipart or no stored checksum: hash the bytes

    def _verified(self, key: str, copied: ObjectInfo, expected_hex: str) -> bool:
        if copied.sha256_b64:  # S3 computed it over the bytes it wrote
            return b64_to_hex(copied.sha256_b64) == expected_hex
        head = self.buckets.replica_head(key)
        return head is not None and self._holds(key, head, expected_hex)

    def _refuse_foreign_repository(self, primary_config: bytes) -> None:
        try:
            replica = RepositoryConfig.from_json(self.buckets.replica_get(CONFIG_KEY))
        except RepositoryError:
            return  # unreadable: a damaged copy of ours, repaired by the copy that follows
        primary = RepositoryConfig.from_json(primary_config)
        if replica.id != primary.id:
            raise ReplicaConflict(
                f"s3://{self.buckets.replica_bucket}/{self.buckets.prefix} holds repository {replica.id}, not "
                f"{primary.id}: refusing to mix two repositories"
            )

    # -- catalog ------------------------------------------------------------------------------------------------

    def _mark(
        self,
        cluster: str,
        backup_id: str,
        state: ReplicaState,
        *,
        lag_s: float | None = None,
        now: datetime | None = None,
        error: str | None = None,
    ) -> Any | None:
        if self._catalog is None:
            return None
        try:
            return self._catalog.set_replica_state(
                cluster, backup_id, self.region, state, lag_s=lag_s, now=now or self._clock(), error=error
            )
        except RecordNotFound:
            logger().info("no catalog record for a replicated manifest", extra={"cluster": cluster, "id": backup_id})
        except StaleState:
            pass  # already Replicated: the replica was complete before; this run only re-verified it
        except CatalogError as exc:
            if state != ReplicaState.FAILED:
                raise
            # Recording the failure failed too: the original error (raised by the caller) matters more.
            logger().warning("could not record the replication failure", extra={"error": str(exc)})
        return None


def _parse_manifest(data: bytes, cluster: str, backup_id: str, key: str) -> Manifest:
    try:
        manifest = Manifest.from_json(data)
    except (FormatError, AttributeError) as exc:
        raise ClosureIncomplete(f"primary manifest {key} is unreadable: {exc}") from exc
    if (manifest.cluster, manifest.backup_id) != (cluster, backup_id):
        raise ClosureIncomplete(f"primary manifest {key} names backup {manifest.cluster}/{manifest.backup_id}")
    return manifest
