"""Cross-region replication under moto: real S3 -> SQS notifications feed the replicator; the replica is checked."""

from __future__ import annotations

import hashlib
import random
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
import pytest

from chalicelib.core.models import ReplicaState
from chalicelib.replication import (
    BatchFailed,
    ChecksumMismatch,
    ClosureIncomplete,
    Copied,
    Reconciler,
    ReplicaBuckets,
    ReplicaConflict,
    Replicator,
)
from chalicelib.replication.worker import handle_messages
from chalicelib.repository import RepositoryReader, check_repository
from chalicelib.repository.repo import Repository
from tests.support.replication import (
    CLUSTER,
    PREFIX,
    PRIMARY_BUCKET,
    REPLICA_BUCKET,
    REPLICA_REGION,
    ReplicationEnv,
    make_env,
    message_key,
    objects,
    write_backup,
)

FULL = "20260101T000000Z-aaaaaa"
INCR = "20260102T000000Z-bbbbbb"
CHANGED = ["app-0/config-001", "app-0/config-002", "app-2/config-039"]


@pytest.fixture
def env(aws: None, table: str) -> ReplicationEnv:
    return make_env()


def replicate(env: ReplicationEnv, bodies: list[str], *, batch: int = 10, **options: Any) -> list[Any]:
    """Deliver ``bodies`` in SQS-sized batches to a fresh replicator each (one Lambda invocation per batch)."""
    results: list[Any] = []
    for start in range(0, len(bodies), batch):
        replicator = env.services.replicator() if not options else _replicator(env, **options)
        results.extend(replicator.handle(_events(bodies[start : start + batch])))
    return results


def _events(bodies: list[str]) -> list[Any]:
    from chalicelib.replication import parse_message

    return [event for body in bodies for event in parse_message(body)]


def _replicator(env: ReplicationEnv, **options: Any) -> Replicator:
    services = env.services
    return Replicator(
        options.pop("buckets", None) or services.replica_buckets(),
        region=REPLICA_REGION,
        open_reader=lambda: RepositoryReader(services.repository()),
        catalog=services.catalog(),
        **options,
    )


def replica_state(env: ReplicationEnv, backup_id: str) -> dict[str, Any]:
    return env.services.catalog().get(CLUSTER, backup_id).replicas.get(REPLICA_REGION, {})


def assert_replica_restorable(env: ReplicationEnv, *backup_ids: str) -> None:
    report = check_repository(env.replica_reader(), read_data=True)
    assert report.ok, report.problems
    assert {b for _, b in env.replica_reader().list_backups()} == set(backup_ids)


# -- full and incremental -----------------------------------------------------------------------------------------


def test_full_backup_reaches_the_replica_verified_encrypted_and_marked(env: ReplicationEnv) -> None:
    write_backup(env, FULL, objects())
    bodies = env.drain()
    assert message_key(bodies[-1]).endswith("manifest.json")

    summary = handle_messages(env.services.replicator(), bodies)

    assert summary["events"] == len(bodies) == len(env.stored())
    assert env.stored(replica=True) == env.stored()  # byte for byte
    assert len(env.copies) == len(env.stored())  # each object copied once, none twice
    for key in env.stored(replica=True):
        head = env.s3_replica.head_object(Bucket=REPLICA_BUCKET, Key=PREFIX + key, ChecksumMode="ENABLED")
        assert head["ServerSideEncryption"] == "aws:kms"
        assert head["SSEKMSKeyId"] == env.kms_key_arn  # the replica region's key
        assert head["ChecksumSHA256"]
    state = replica_state(env, FULL)
    assert state["state"] == ReplicaState.REPLICATED
    assert 0 <= state["lag_s"] < 60
    assert env.services.catalog().get(CLUSTER, FULL).state == "Completed"  # the backup's own state is untouched
    assert_replica_restorable(env, FULL)


def test_incremental_backup_copies_only_its_new_pack_index_and_manifest(env: ReplicationEnv) -> None:
    write_backup(env, FULL, objects())
    replicate(env, env.drain())
    before = set(env.stored())
    env.copies.clear()

    write_backup(env, INCR, objects(changed=CHANGED), parent=FULL)
    bodies = env.drain()
    new = set(env.stored()) - before
    results = replicate(env, bodies)

    assert sorted(env.copies) == sorted(new)
    assert {k.split("/")[0] for k in new} == {"packs", "index", "clusters"} and len(new) == 3
    (backup,) = [r for r in results if not isinstance(r, Copied)]
    assert backup.count("copied") == 1 and backup.count("skipped") > 3  # only the manifest was left to copy
    assert replica_state(env, INCR)["state"] == ReplicaState.REPLICATED
    assert_replica_restorable(env, FULL, INCR)


# -- delivery order and duplicates --------------------------------------------------------------------------------


def test_duplicate_and_reordered_events_copy_each_object_once(env: ReplicationEnv) -> None:
    write_backup(env, FULL, objects())
    bodies = env.drain()
    shuffled = bodies * 3
    random.Random(7).shuffle(shuffled)

    replicate(env, shuffled, batch=4)

    assert sorted(env.copies) == sorted(env.stored())
    assert replica_state(env, FULL)["state"] == ReplicaState.REPLICATED
    assert_replica_restorable(env, FULL)


def test_manifest_event_before_its_blobs_copies_the_closure_first_and_the_manifest_last(env: ReplicationEnv) -> None:
    write_backup(env, FULL, objects())
    bodies = env.drain()
    (manifest,) = [b for b in bodies if message_key(b).endswith("manifest.json")]

    replicate(env, [manifest])

    assert env.copies[-1] == Repository.manifest_key(CLUSTER, FULL)
    assert env.copies[0] == "config.json"
    index_at = min(i for i, k in enumerate(env.copies) if k.startswith("index/"))
    assert all(k.startswith("packs/") for k in env.copies[1:index_at])  # packs, then their index, then manifest
    assert_replica_restorable(env, FULL)

    copies = len(env.copies)
    results = replicate(env, [b for b in bodies if b is not manifest])  # the late events of its blobs
    assert len(env.copies) == copies
    assert {r.action for r in results} == {"skipped"}


def test_a_manifest_never_appears_before_its_data(env: ReplicationEnv) -> None:
    write_backup(env, FULL, objects())
    bodies = env.drain()
    seen_manifest_early = []

    def check_order(params: dict[str, Any], **_: Any) -> None:
        if params["Key"].endswith("manifest.json"):
            replica = set(env.stored(replica=True))
            primary = set(env.stored()) - {params["Key"][len(PREFIX) :]}
            seen_manifest_early.append(primary - replica)

    env.s3_replica.meta.events.register("provide-client-params.s3.CopyObject", check_order)
    replicate(env, list(reversed(bodies)))
    assert seen_manifest_early == [set()]


# -- verification and repair --------------------------------------------------------------------------------------


def test_corrupted_replica_objects_are_detected_and_repaired(env: ReplicationEnv) -> None:
    write_backup(env, FULL, objects())
    bodies = env.drain()
    replicate(env, bodies)
    packs = sorted(k for k in env.stored(replica=True) if k.startswith("packs/"))
    damaged = bytearray(env.stored(replica=True)[packs[0]])
    damaged[10] ^= 0xFF
    # One with a stored (wrong) checksum, compared without a download; one without, which is hashed.
    env.s3_replica.put_object(
        Bucket=REPLICA_BUCKET, Key=PREFIX + packs[0], Body=bytes(damaged), ChecksumAlgorithm="SHA256"
    )
    env.s3_replica.put_object(Bucket=REPLICA_BUCKET, Key=PREFIX + packs[1], Body=b"truncated")
    assert not check_repository(env.replica_reader()).ok
    env.copies.clear()

    (manifest,) = [b for b in bodies if message_key(b).endswith("manifest.json")]
    (result,) = replicate(env, [manifest])  # a redelivered event re-verifies the whole closure

    assert sorted(env.copies) == packs[:2]
    assert {c.key for c in result.copies if c.action == "repaired"} == set(packs[:2])
    assert env.stored(replica=True) == env.stored()
    assert_replica_restorable(env, FULL)


class _FlakyCopies(ReplicaBuckets):
    """Damages the replica right after the first ``bad`` copies of ``key``, as a faulty transfer would."""

    def __init__(self, inner: ReplicaBuckets, key: str, bad: int) -> None:
        self.__dict__.update(inner.__dict__)
        self._target, self._bad, self.attempts = key, bad, 0

    def copy(self, key: str, size: int) -> Any:
        info = super().copy(key, size)
        if key == self._target:
            self.attempts += 1
            if self.attempts <= self._bad:
                self._replica.put_object(
                    Bucket=self.replica_bucket, Key=self.prefix + key, Body=b"garbage", ChecksumAlgorithm="SHA256"
                )
                return type(info)(info.size, None)  # make the replicator look at the replica itself
        return info


def test_a_copy_that_does_not_verify_is_retried(env: ReplicationEnv) -> None:
    write_backup(env, FULL, objects())
    bodies = env.drain()
    pack = next(message_key(b) for b in bodies if message_key(b).startswith("packs/"))
    flaky = _FlakyCopies(env.services.replica_buckets(), pack, bad=2)

    replicate(env, bodies, buckets=flaky)

    assert flaky.attempts == 3
    assert env.stored(replica=True)[pack] == env.stored()[pack]
    assert replica_state(env, FULL)["state"] == ReplicaState.REPLICATED


def _data_only_pack(env: ReplicationEnv) -> str:
    """A pack holding object blobs but no tree: the closure can still be computed when its bytes are bad."""
    index = RepositoryReader(env.services.repository()).load_index()
    with_trees = {e.pack for e in index.values() if e.type == "tree"}
    return Repository.pack_key(sorted({e.pack for e in index.values()} - with_trees)[0])


def test_a_damaged_tree_in_the_primary_holds_the_manifest_back(env: ReplicationEnv) -> None:
    write_backup(env, FULL, objects())
    bodies = env.drain()
    index = RepositoryReader(env.services.repository()).load_index()
    pack = Repository.pack_key(next(e.pack for e in index.values() if e.type == "tree"))
    env.s3.put_object(Bucket=PRIMARY_BUCKET, Key=PREFIX + pack, Body=b"bit rot in the primary")

    with pytest.raises(BatchFailed) as caught:
        replicate(env, bodies)

    failed = dict(caught.value.failures)
    assert isinstance(failed[Repository.manifest_key(CLUSTER, FULL)], ClosureIncomplete)
    assert Repository.manifest_key(CLUSTER, FULL) not in env.stored(replica=True)
    assert "cannot be read" in replica_state(env, FULL)["error"]


def test_a_mismatch_that_persists_is_reported_and_never_accepted(env: ReplicationEnv) -> None:
    write_backup(env, FULL, objects())
    bodies = env.drain()
    pack = _data_only_pack(env)
    env.s3.put_object(Bucket=PRIMARY_BUCKET, Key=PREFIX + pack, Body=b"bit rot in the primary")  # no longer its id

    with pytest.raises(BatchFailed) as caught:
        replicate(env, bodies)

    failed = {key: exc for key, exc in caught.value.failures}
    assert isinstance(failed[pack], ChecksumMismatch)
    assert isinstance(failed[Repository.manifest_key(CLUSTER, FULL)], ChecksumMismatch)
    # Three attempts each: for its own event, for the index file naming it, for the manifest's closure.
    assert env.copies.count(pack) == 3 * 3
    replica = env.stored(replica=True)
    assert pack not in replica  # the last bad copy is not left behind as if it were good
    assert Repository.manifest_key(CLUSTER, FULL) not in replica
    assert not any(k.startswith("index/") for k in replica)  # an index file never names a pack the replica lacks
    state = replica_state(env, FULL)
    assert state["state"] == ReplicaState.FAILED and pack in state["error"]


def test_a_replica_bucket_holding_another_repository_is_refused(env: ReplicationEnv) -> None:
    foreign = {"compression": "zstd", "created_at": "2026-01-01T00:00:00Z", "id": "f" * 32, "version": 1}
    env.s3_replica.put_object(Bucket=REPLICA_BUCKET, Key=PREFIX + "config.json", Body=orjson.dumps(foreign))
    write_backup(env, FULL, objects())

    with pytest.raises(BatchFailed) as caught:
        replicate(env, env.drain())

    assert all(isinstance(exc, ReplicaConflict) for _, exc in caught.value.failures)
    assert env.copies == []


# -- large artifacts ----------------------------------------------------------------------------------------------


def test_large_artifacts_are_copied_part_by_part_and_checked_against_the_manifest(env: ReplicationEnv) -> None:
    etcd = random.Random(1).randbytes(12 << 20)
    write_backup(env, FULL, objects(namespaces=1, per_namespace=5), etcd=etcd)
    bodies = env.drain()
    buckets = ReplicaBuckets(
        env.s3,
        PRIMARY_BUCKET,
        env.s3_replica,
        REPLICA_BUCKET,
        kms_key_id=env.kms_key_arn,
        copy_limit=5 << 20,
        part_size=5 << 20,
    )
    parts: list[str] = []
    env.s3_replica.meta.events.register(
        "provide-client-params.s3.UploadPartCopy", lambda params, **_: parts.append(params["CopySourceRange"])
    )

    replicate(env, bodies, buckets=buckets)

    key = f"clusters/{CLUSTER}/backups/{FULL}/etcd.db"
    assert parts == ["bytes=0-5242879", "bytes=5242880-10485759", "bytes=10485760-12582911"]
    copy = env.s3_replica.get_object(Bucket=REPLICA_BUCKET, Key=PREFIX + key)
    assert hashlib.sha256(copy["Body"].read()).digest() == hashlib.sha256(etcd).digest()
    assert copy["SSEKMSKeyId"] == env.kms_key_arn
    assert replica_state(env, FULL)["state"] == ReplicaState.REPLICATED


def test_a_failed_part_aborts_the_multipart_copy(env: ReplicationEnv) -> None:
    from types import SimpleNamespace

    from chalicelib.replication import ReplicationStorageError

    env.s3.put_object(Bucket=PRIMARY_BUCKET, Key=PREFIX + "big", Body=bytes(11 << 20))
    buckets = ReplicaBuckets(
        env.s3, PRIMARY_BUCKET, env.s3_replica, REPLICA_BUCKET, copy_limit=5 << 20, part_size=5 << 20
    )

    def fail_second_part(params: dict[str, Any], **_: Any) -> Any:
        if str(params.get("query_string", {}).get("partNumber")) == "2":  # the serialized request
            return SimpleNamespace(status_code=500), {"Error": {"Code": "InternalError", "Message": "boom"}}
        return None

    env.s3_replica.meta.events.register("before-call.s3.UploadPartCopy", fail_second_part)
    with pytest.raises(ReplicationStorageError, match="InternalError"):
        buckets.copy("big", 11 << 20)

    assert env.s3_replica.list_multipart_uploads(Bucket=REPLICA_BUCKET).get("Uploads", []) == []
    assert buckets.replica_head("big") is None


def test_an_artifact_that_differs_from_its_recorded_checksum_holds_the_manifest_back(env: ReplicationEnv) -> None:
    write_backup(env, FULL, objects(namespaces=1, per_namespace=5), etcd=b"snapshot", etcd_sha256="0" * 64)

    with pytest.raises(BatchFailed):
        replicate(env, env.drain())

    assert Repository.manifest_key(CLUSTER, FULL) not in env.stored(replica=True)
    assert replica_state(env, FULL)["state"] == ReplicaState.FAILED


# -- reconciler ---------------------------------------------------------------------------------------------------


def test_the_reconciler_catches_a_dropped_manifest_event(env: ReplicationEnv) -> None:
    write_backup(env, FULL, objects())
    replicate(env, env.drain())
    write_backup(env, INCR, objects(changed=CHANGED), parent=FULL)
    bodies = env.drain()
    replicate(env, [b for b in bodies if not message_key(b).endswith("manifest.json")])  # the manifest's is lost
    assert "state" not in replica_state(env, INCR)
    later = datetime.now(UTC) + timedelta(minutes=10)

    fresh = Reconciler(env.services.replicator(), env.services.catalog(), clock=lambda: datetime.now(UTC)).run()
    report = Reconciler(env.services.replicator(), env.services.catalog(), clock=lambda: later).run()
    again = Reconciler(env.services.replicator(), env.services.catalog(), clock=lambda: later).run()

    assert (fresh.deferred, fresh.replicated) == (1, ())  # too young: its event may still come
    assert [f"{u.cluster}/{u.backup_id}" for u in report.backlog] == [f"{CLUSTER}/{INCR}"]
    assert report.replicated == (f"{CLUSTER}/{INCR}",) and report.failed == {}
    assert report.oldest_age_s >= 600
    assert (again.manifests, again.backlog) == (2, ())
    assert replica_state(env, INCR)["state"] == ReplicaState.REPLICATED
    assert_replica_restorable(env, FULL, INCR)


def test_the_reconciler_stops_before_the_deadline_and_reports_failures(env: ReplicationEnv) -> None:
    write_backup(env, FULL, objects(namespaces=1, per_namespace=5))
    write_backup(env, INCR, objects(namespaces=1, per_namespace=6), parent=FULL)
    env.drain()  # every event lost
    pack = sorted(k for k in env.stored() if k.startswith("packs/"))[-1]
    later = datetime.now(UTC) + timedelta(hours=1)

    out_of_time = Reconciler(env.services.replicator(), env.services.catalog(), clock=lambda: later).run(
        time_left_ms=lambda: 60_000
    )
    env.s3.delete_object(Bucket=PRIMARY_BUCKET, Key=PREFIX + pack)
    report = Reconciler(env.services.replicator(), env.services.catalog(), clock=lambda: later).run()

    assert out_of_time.deferred == 2 and out_of_time.replicated == ()
    assert len(report.backlog) == 2
    assert len(report.failed) + len(report.replicated) == 2 and report.failed
    assert all(pack.rsplit("/", 1)[1] in e and "missing" in e for e in report.failed.values())


# -- restore from the replica alone ------------------------------------------------------------------------------


def test_the_replica_alone_restores_after_the_primary_bucket_is_gone(env: ReplicationEnv) -> None:
    full, incr = objects(), objects(changed=CHANGED)
    write_backup(env, FULL, full)
    write_backup(env, INCR, incr, parent=FULL)
    replicate(env, env.drain())
    for key in env.stored():
        env.s3.delete_object(Bucket=PRIMARY_BUCKET, Key=PREFIX + key)
    env.s3.delete_bucket(Bucket=PRIMARY_BUCKET)

    reader = RepositoryReader(env.services.repository(replica=True))
    for backup_id, expected in ((FULL, full), (INCR, incr)):
        manifest = reader.load_manifest(CLUSTER, backup_id)
        entries = [entry for _, entry in reader.walk(manifest)]
        blobs = dict(reader.read_blobs({e.blob for e in entries}))
        restored = {(e.kind, e.name, orjson.loads(blobs[e.blob]).get("data", {}).get("payload")) for e in entries}
        assert restored == {(o["kind"], o["metadata"]["name"], o.get("data", {}).get("payload")) for o in expected}
    assert check_repository(reader, read_data=True).ok
