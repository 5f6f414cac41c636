"""Retention + garbage collection end to end (moto S3 and DynamoDB), the CLI around them, and leased backups."""

from __future__ import annotations

import json
from datetime import timedelta
from typing import Any

import pytest

from chalicelib.catalog import BackupCatalog
from chalicelib.cli.main import main
from chalicelib.cli.output import EXIT_ERROR, EXIT_OK, EXIT_USAGE
from chalicelib.core.models import BackupRecord, BackupState
from chalicelib.maintenance.errors import RepositoryBusy
from chalicelib.maintenance.leased_backup import LeasedBackupService
from chalicelib.maintenance.retention import RetentionService
from chalicelib.repository import RepositoryReader, check_repository
from chalicelib.services import Services
from tests.conftest import TEST_BUCKET, TEST_REGION, TEST_TABLE
from tests.support.builders import backup_id_at, backup_reaching, record_backup
from tests.support.clocks import utc
from tests.support.objects import configmaps

EKS = {"type": "eks", "cluster_name": "prod", "region": "eu-central-1"}
POLICY = {
    "policies": [
        {
            "name": "nightly",
            "cluster": "prod",
            "schedule": {"cron": "0 2 * * *"},
            "scope": {"include_namespaces": ["shop"]},
            "retention": {"keep_last": 2},
            "rpo_target_minutes": 60 * 24 * 365 * 10,
        }
    ]
}
DAYS = [utc(2026, 1, d, 2, 0) for d in (1, 2, 3, 4)]
CLI = ["--table", TEST_TABLE, "--bucket", TEST_BUCKET, "--region", TEST_REGION, "--output", "json"]


@pytest.fixture
def world(services: Services) -> dict[str, Any]:
    """Four nightly backups of prod (each with objects of its own plus shared ones), a manual backup of prod, and a
    backup of another cluster that shares blobs with the oldest nightly one."""
    services.cluster_catalog().register("prod", EKS, kubernetes_version="v1.31.0", now=DAYS[0])
    services.policy_service().apply_document(POLICY)
    repo = services.repository(create=True)
    catalog: BackupCatalog = services.catalog()
    shared = configmaps("shared", 3)
    reach: dict[str, set[Any]] = {}
    for i, day in enumerate(DAYS):
        bid = backup_id_at(day)
        _, reach[bid] = backup_reaching(repo, "prod", bid, shared + configmaps(f"night{i}", 2))
        record_backup(catalog, "prod", bid, policy="nightly", started=day)
    manual = backup_id_at(utc(2025, 12, 1), "manual")
    _, reach[manual] = backup_reaching(repo, "prod", manual, configmaps("manual", 2))
    record_backup(catalog, "prod", manual, policy=None, started=utc(2025, 12, 1))
    other = backup_id_at(utc(2026, 1, 1, 5), "others")
    _, reach[other] = backup_reaching(repo, "eu", other, configmaps("night0", 2, namespace="shop"))
    record_backup(catalog, "eu", other, policy=None, started=utc(2026, 1, 1, 5))
    return {"repo": repo, "catalog": catalog, "reach": reach, "manual": manual, "other": other}


def state(catalog: BackupCatalog, cluster: str, bid: str) -> BackupState:
    return catalog.get(cluster, bid).state


def test_maintenance_expires_by_retention_and_collects_only_garbage(services: Services, world: dict[str, Any]) -> None:
    catalog, repo, reach = world["catalog"], world["repo"], world["reach"]
    dropped, kept = [backup_id_at(d) for d in DAYS[:2]], [backup_id_at(d) for d in DAYS[2:]]
    before = set(repo.store.list("packs/"))

    report = services.maintenance_service(safety_margin=timedelta(0), wait_s=0).run()

    assert report.status == "done"
    assert sorted((e.backup_id, e.outcome) for e in report.expired) == [(b, "expired") for b in dropped]
    reader = RepositoryReader(repo)
    assert {b for _, b in reader.list_backups()} == set(kept) | {world["manual"], world["other"]}
    for bid in dropped:
        assert state(catalog, "prod", bid) == BackupState.EXPIRED
        assert catalog.get("prod", bid).extra["expired_by"] == "retention"
    for bid in kept:
        assert state(catalog, "prod", bid) == BackupState.COMPLETED
    assert state(catalog, "prod", world["manual"]) == BackupState.COMPLETED  # no policy: never expired
    # Night 0's own objects are still needed by the other cluster; night 1's are garbage now.
    still_needed = set().union(*(reach[b] for b in kept + [world["manual"], world["other"]]))
    garbage = (reach[dropped[0]] | reach[dropped[1]]) - still_needed
    assert report.collection is not None
    assert len(report.collection.packs_deleted) == len(garbage) > 0
    assert set(repo.store.list("packs/")) == before - set(report.collection.packs_deleted)
    problems = check_repository(RepositoryReader(repo), read_data=True).problems
    assert problems == []
    again = services.maintenance_service(safety_margin=timedelta(0), wait_s=0).run()
    assert again.expired == [] and again.collection is not None and again.collection.packs_deleted == ()


def test_maintenance_waits_for_running_backups_and_deletes_nothing_meanwhile(
    services: Services, world: dict[str, Any]
) -> None:
    lock = services.repository_lock()
    backup = lock.acquire_shared("job-in-progress.1")
    before = set(world["repo"].store.list(""))
    report = services.maintenance_service(safety_margin=timedelta(0), wait_s=0).run()
    assert report.status == "busy" and "job-in-progress.1" in report.message
    assert set(world["repo"].store.list("")) == before
    backup.release()
    assert services.maintenance_service(safety_margin=timedelta(0), wait_s=0).run().status == "done"


def test_a_crash_between_manifest_delete_and_expiry_is_finished_next_time(
    services: Services, world: dict[str, Any]
) -> None:
    catalog: BackupCatalog = world["catalog"]

    class Crashing:
        def __getattr__(self, name: str) -> Any:
            return getattr(catalog, name)

        def transition(self, *args: Any, **kwargs: Any) -> BackupRecord:
            raise RuntimeError("Lambda timed out")

    retention = RetentionService(services.policy_catalog(), Crashing())
    with pytest.raises(RuntimeError):
        retention.expire(world["repo"], retention.plans())
    oldest = backup_id_at(DAYS[0])
    assert state(catalog, "prod", oldest) == BackupState.COMPLETED  # manifest gone, record not moved yet
    report = services.maintenance_service(safety_margin=timedelta(0), wait_s=0).run()
    assert {e.backup_id for e in report.expired} == {backup_id_at(d) for d in DAYS[:2]}
    assert state(catalog, "prod", oldest) == BackupState.EXPIRED
    assert check_repository(RepositoryReader(world["repo"]), read_data=True).ok


def test_cli_retention_preview_says_what_is_kept_and_why(world: dict[str, Any], capsys: Any) -> None:
    assert main(["retention", "preview", "nightly", *CLI]) == EXIT_OK
    doc = json.loads(capsys.readouterr().out)
    assert doc["retention"] == "2 last"
    decisions = [(d["backup_id"], d["keep"], d["reasons"]) for d in doc["backups"]]
    assert decisions == [
        (backup_id_at(DAYS[3]), True, ["last"]),
        (backup_id_at(DAYS[2]), True, ["last"]),
        (backup_id_at(DAYS[1]), False, []),
        (backup_id_at(DAYS[0]), False, []),
    ]


def test_cli_maintenance_dry_run_deletes_nothing(world: dict[str, Any], capsys: Any) -> None:
    before = set(world["repo"].store.list(""))
    assert main(["maintenance", "run", "--dry-run", "--safety-margin-hours", "0", *CLI]) == EXIT_OK
    doc = json.loads(capsys.readouterr().out)
    assert {e["outcome"] for e in doc["expired"]} == {"would_expire"} and len(doc["expired"]) == 2
    assert doc["collection"]["dry_run"] is True and doc["collection"]["packs_deleted"] > 0
    assert set(world["repo"].store.list("")) == before


def test_cli_status_reports_rpo_against_target(services: Services, world: dict[str, Any], capsys: Any) -> None:
    assert main(["status", *CLI]) == EXIT_OK
    (status,) = json.loads(capsys.readouterr().out)
    assert status["name"] == "nightly" and status["last_success_id"] == backup_id_at(DAYS[3])
    assert status["retained"] == 4 and status["retention"] == "2 last" and not status["rpo_exceeded"]
    assert status["rpo_minutes"] > 0 and status["next_run_at"]
    # The 3-2-1 report of the latest backup: no replica is configured here, so the rule is broken and says why.
    copies = status["copies"]
    assert copies["backup_id"] == status["last_success_id"] and not copies["rule_ok"]
    assert "no copy outside the primary region" in copies["problems"]
    # A target the newest backup misses turns the status into an alarm (exit code 1).
    tight = json.loads(json.dumps(POLICY))
    tight["policies"][0]["rpo_target_minutes"] = 60
    services.policy_service().apply_document(tight)
    assert main(["status", *CLI]) == EXIT_ERROR
    (status,) = json.loads(capsys.readouterr().out)
    assert status["rpo_exceeded"] and status["rpo_target_minutes"] == 60


def test_cli_policies_apply_list_describe_delete(services: Services, tmp_path: Any, capsys: Any) -> None:
    services.cluster_catalog().register("prod", EKS, kubernetes_version="v1.31.0", now=DAYS[0])
    path = tmp_path / "policies.yaml"
    path.write_text(
        "policies:\n  - name: shop-nightly\n    cluster: prod\n    schedule: {cron: '0 2 * * *', timezone: "
        "Europe/Berlin}\n    scope: {include_namespaces: ['shop*']}\n"
    )
    assert main(["policies", "apply", "-f", str(path), *CLI]) == EXIT_OK
    assert json.loads(capsys.readouterr().out)[0]["change"] == "created"
    assert main(["policies", "list", *CLI]) == EXIT_OK
    assert [p["name"] for p in json.loads(capsys.readouterr().out)] == ["shop-nightly"]
    assert main(["policies", "describe", "shop-nightly", *CLI]) == EXIT_OK
    described = json.loads(capsys.readouterr().out)
    assert described["schedule"]["timezone"] == "Europe/Berlin" and described["recent_runs"] == []
    assert main(["policies", "delete", "shop-nightly", *CLI]) == EXIT_OK
    capsys.readouterr()
    assert main(["policies", "describe", "shop-nightly", *CLI]) == EXIT_ERROR
    assert "policy 'shop-nightly' not found" in capsys.readouterr().err
    path.write_text("policies:\n  - name: bad\n    cluster: prod\n    schedule: {cron: '0 2 * *'}\n    scope: {}\n")
    assert main(["policies", "apply", "-f", str(path), *CLI]) == EXIT_ERROR
    err = capsys.readouterr().err
    assert "schedule.cron" in err and "scope: is empty" in err


# -- backups under a shared lease --------------------------------------------------------------------------------


class FakeJob:
    job_id = "schedule:nightly:20260101T020000Z"


class FakeService:
    def __init__(self, state: BackupState, fail: bool = False) -> None:
        self.state, self.fail = state, fail
        self.seen_leases: list[str] = []

    def run(self, job: Any, **kwargs: Any) -> Any:
        self.seen_leases = [lease.holder for lease in self.leases.live_shared(self.scope, now=self.now())]
        if self.fail:
            raise RuntimeError("catalog unreachable")
        record = BackupRecord(cluster="prod", backup_id="b", state=self.state, job_id=job.job_id)
        return type("Outcome", (), {"record": record})()


def leased(services: Services, state: BackupState, fail: bool = False) -> tuple[LeasedBackupService, FakeService]:
    lock = services.repository_lock()
    inner = FakeService(state, fail)
    inner.leases, inner.scope, inner.now = lock.leases, lock.scope, lock.clock  # type: ignore[attr-defined]
    return LeasedBackupService(inner, lock, wait_s=0), inner


def test_a_backup_holds_a_shared_lease_while_it_runs(services: Services, table: str) -> None:
    service, inner = leased(services, BackupState.COMPLETED)
    service.run(FakeJob())
    assert len(inner.seen_leases) == 1 and inner.seen_leases[0].startswith("schedule:nightly:20260101T020000Z.")
    lock = services.repository_lock()
    assert lock.leases.live_shared(lock.scope, now=lock.clock()) == []  # released once final


@pytest.mark.parametrize(("state", "fail", "left"), [(BackupState.RUNNING, False, 1), (BackupState.FAILED, True, 0)])
def test_a_non_final_run_leaves_its_lease_to_lapse(
    services: Services, table: str, state: BackupState, fail: bool, left: int
) -> None:
    service, _ = leased(services, state, fail)
    if fail:
        with pytest.raises(RuntimeError):
            service.run(FakeJob())
    else:
        service.run(FakeJob())
    lock = services.repository_lock()
    assert len(lock.leases.live_shared(lock.scope, now=lock.clock())) == left


def test_a_backup_does_not_start_while_a_collection_runs(services: Services, table: str) -> None:
    lock = services.repository_lock()
    gc = lock.acquire_exclusive("maintenance-x")
    service, inner = leased(services, BackupState.COMPLETED)
    with pytest.raises(RepositoryBusy, match="maintenance-x"):
        service.run(FakeJob())
    assert inner.seen_leases == []
    gc.release()


def test_shards_and_commits_of_a_sharded_backup_are_leased(services: Services, table: str) -> None:
    lock = services.repository_lock()
    seen: dict[str, list[str]] = {}

    class Sharded:
        def _live(self) -> list[str]:
            return [lease.holder for lease in lock.leases.live_shared(lock.scope, now=lock.clock())]

        def run_shard(self, message: Any, **kwargs: Any) -> dict[str, Any]:
            seen["shard"] = self._live()
            return {"status": "done", **kwargs}

        def commit(self, message: Any) -> tuple[None, str]:
            seen["commit"] = self._live()
            return None, "committed"

        def record(self, cluster: str, backup_id: str) -> str:
            return f"{cluster}/{backup_id}"

    message = type("Message", (), {"backup_id": "20260101T020000Z-abcdef"})()
    service = LeasedBackupService(Sharded(), lock, wait_s=0)
    assert service.run_shard(message, remaining_ms=None) == {"status": "done", "remaining_ms": None}
    assert seen["shard"] == ["20260101T020000Z-abcdef.shards"]
    # The next shard, here or in another process, takes the same lease: one lease item per backup, not per shard.
    service.run_shard(message, remaining_ms=None)
    LeasedBackupService(Sharded(), lock, wait_s=0).run_shard(message, remaining_ms=None)
    assert seen["shard"] == ["20260101T020000Z-abcdef.shards"]
    service.commit(message)
    # The commit ran under the backup's lease, left by the shards for the hand-over...
    assert seen["commit"] == ["20260101T020000Z-abcdef.shards"]
    # ...and released it: the backup relies on nothing it has not written.
    assert lock.leases.live_shared(lock.scope, now=lock.clock()) == []
    assert service.record("prod", "b") == "prod/b"  # everything else passes through


def test_the_shard_that_fails_a_sharded_backup_releases_its_lease(services: Services, table: str) -> None:
    lock = services.repository_lock()

    class Failing:
        def run_shard(self, message: Any, **kwargs: Any) -> dict[str, Any]:
            return {"status": "Failed", "error": "out of attempts"}

    message = type("Message", (), {"backup_id": "20260101T020000Z-abcdef"})()
    service = LeasedBackupService(Failing(), lock, wait_s=0)
    assert service.run_shard(message)["status"] == "Failed"
    assert lock.leases.live_shared(lock.scope, now=lock.clock()) == []


def test_maintenance_runs_a_sampled_read_data_check_and_publishes_damaged_blobs(
    services: Services, world: dict[str, Any], monkeypatch: Any
) -> None:
    from chalicelib.maintenance import service as maintenance_module

    repo = world["repo"]
    reader = RepositoryReader(repo)
    index = reader.load_index()
    # An object's blob in a frame that holds no tree: a damaged tree would stop the collection, by design.
    tree_frames = {(e.pack, e.frame_offset) for e in index.values() if e.type == "tree"}
    blob, entry = next(
        (b, e) for b, e in sorted(index.items()) if e.type != "tree" and (e.pack, e.frame_offset) not in tree_frames
    )
    key = repo.pack_key(entry.pack)
    body = bytearray(repo.store.get(key))
    body[entry.frame_offset] ^= 0x55
    repo.store.put(key, bytes(body), create_only=False)

    report = services.maintenance_service(safety_margin=timedelta(days=3650), wait_s=0, check_blobs=10_000).run()

    assert report.check is not None and report.check["damaged_blobs"] >= 1
    assert any(p["blob_id"] == blob for p in report.check["problems"])
    assert report.to_dict()["check"]["damaged_blobs"] == report.check["damaged_blobs"]
    published: list[tuple[str, float]] = []

    class Metrics:
        def add_metric(self, *, name: str, unit: Any, value: float) -> None:
            published.append((name, value))

        def flush_metrics(self) -> None:
            pass

    monkeypatch.setattr("chalicelib.observability.metrics", lambda: Metrics())
    maintenance_module.publish_maintenance_metrics(report)
    assert ("RepositoryDamagedBlobs", report.check["damaged_blobs"]) in published


def _damage(repo: Any, blob: Any) -> None:
    entry = RepositoryReader(repo).load_index()[blob]
    key = repo.pack_key(entry.pack)
    body = bytearray(repo.store.get(key))
    body[entry.frame_offset] ^= 0x55
    repo.store.put(key, bytes(body), create_only=False)


def test_the_daily_check_marks_the_backups_that_reach_a_damaged_blob(
    services: Services, world: dict[str, Any]
) -> None:
    reach, catalog = world["reach"], world["catalog"]
    # An object both nightly backups that retention keeps (keep_last 2) share, and no other backup reaches.
    kept = [backup_id_at(DAYS[2]), backup_id_at(DAYS[3])]
    others = reach[world["manual"]] | reach[world["other"]]
    blob = sorted((reach[kept[0]] & reach[kept[1]]) - others)[0]
    _damage(world["repo"], blob)

    report = services.maintenance_service(safety_margin=timedelta(days=3650), wait_s=0, check_blobs=10_000).run()

    assert report.check is not None
    marked = {(d["cluster"], d["backup_id"]) for d in report.check["damaged_backups"]}
    assert marked == {("prod", kept[0]), ("prod", kept[1])}
    for cluster, bid in marked:
        record = catalog.get(cluster, bid)
        assert record.damaged is not None
        assert record.damaged["blobs"] == [str(blob)] and record.damaged["count"] == 1
        assert record.damaged["found_at"]
        assert record.state == BackupState.COMPLETED  # marking never moves the state
    for bid in set(reach) - set(kept):
        cluster = "eu" if bid == world["other"] else "prod"
        assert catalog.get(cluster, bid).damaged is None
    assert report.to_dict()["check"]["damaged_backups"] == report.check["damaged_backups"]


def test_a_second_finding_keeps_when_the_damage_was_first_found(services: Services, world: dict[str, Any]) -> None:
    catalog: BackupCatalog = world["catalog"]
    bid = backup_id_at(DAYS[1])
    first = catalog.mark_damaged("prod", bid, blobs=["a" * 64], count=1, now=utc(2026, 2, 1))
    again = catalog.mark_damaged("prod", bid, blobs=["b" * 64, "c" * 64], count=2, now=utc(2026, 2, 2))
    assert first.damaged is not None and again.damaged is not None
    assert again.damaged["found_at"] == first.damaged["found_at"]
    assert again.damaged["checked_at"] > first.damaged["checked_at"]
    assert again.damaged["count"] == 2 and again.damaged["blobs"] == ["b" * 64, "c" * 64]
    assert again.state == first.state


def _marked(world: dict[str, Any]) -> tuple[str, Any]:
    """The newest nightly backup marked damaged on one of its objects (not a tree)."""
    bid = backup_id_at(DAYS[3])
    reader = RepositoryReader(world["repo"])
    manifest = reader.load_manifest("prod", bid)
    blob = next(entry.blob for _scope, entry in reader.walk(manifest))
    world["catalog"].mark_damaged("prod", bid, blobs=[blob], count=1, now=utc(2026, 2, 1))
    return bid, blob


def test_cli_backups_list_shows_a_damaged_backup(world: dict[str, Any], capsys: Any) -> None:
    bid, blob = _marked(world)
    table_cli = [a for a in CLI if a not in ("--output", "json")]
    assert main(["backups", "list", "--cluster", "prod", *table_cli]) == EXIT_OK
    lines = capsys.readouterr().out.splitlines()
    assert any(bid in line and "damaged" in line for line in lines)
    assert not any(backup_id_at(DAYS[2]) in line and "damaged" in line for line in lines)
    assert main(["backups", "list", "--cluster", "prod", *CLI]) == EXIT_OK
    listed = {r["backup_id"]: r for r in json.loads(capsys.readouterr().out)}
    assert listed[bid]["damaged"]["blobs"] == [str(blob)] and listed[bid]["damaged"]["count"] == 1
    assert listed[backup_id_at(DAYS[2])]["damaged"] is None


def test_cli_backups_describe_names_the_damaged_blobs_and_where(world: dict[str, Any], capsys: Any) -> None:
    bid, blob = _marked(world)
    assert main(["backups", "describe", bid, *CLI]) == EXIT_OK
    doc = json.loads(capsys.readouterr().out)
    assert doc["record"]["damaged"]["count"] == 1
    (found,) = doc["damaged_blobs"]
    assert found["blob_id"] == str(blob) and found["where"].startswith(f"backup prod/{bid}, scope ")
    table_cli = [a for a in CLI if a not in ("--output", "json")]
    assert main(["backups", "describe", bid, *table_cli]) == EXIT_OK
    out = capsys.readouterr().out
    assert "damaged" in out and str(blob)[:12] in out and found["where"].split(",")[0] in out


def test_cli_repo_check_reads_a_subset_of_the_data(world: dict[str, Any], capsys: Any, monkeypatch: Any) -> None:
    from chalicelib.repository import check as check_module

    reader = RepositoryReader(world["repo"])
    manifest = reader.load_manifest("prod", backup_id_at(DAYS[3]))
    _damage(world["repo"], next(entry.blob for _scope, entry in reader.walk(manifest)))
    indexed = len(reader.load_index())

    assert main(["repo", "check", "--read-data-subset", "0", *CLI]) == EXIT_OK  # objects are read only when sampled
    capsys.readouterr()
    assert main(["repo", "check", "--read-data-subset", "100%", *CLI]) == EXIT_ERROR
    assert any(p["kind"] == "blob_corrupt" for p in json.loads(capsys.readouterr().out)["problems"])

    samples: list[Any] = []
    real = check_module.check_repository

    def spy(*args: Any, **kwargs: Any) -> Any:
        samples.append(kwargs.get("sample"))
        return real(*args, **kwargs)

    monkeypatch.setattr(check_module, "check_repository", spy)
    main(["repo", "check", "--read-data-subset", "3", *CLI])
    main(["repo", "check", "--read-data-subset", "50%", *CLI])
    main(["repo", "check", *CLI])
    assert samples == [3, -(-indexed // 2), None]


@pytest.mark.parametrize("subset", ["x", "-1", "150%", "%", "1.5"])
def test_cli_repo_check_refuses_a_malformed_subset(world: dict[str, Any], subset: str) -> None:
    with pytest.raises(SystemExit) as caught:  # an argparse usage error
        main(["repo", "check", "--read-data-subset", subset, *CLI])
    assert caught.value.code == EXIT_USAGE


def test_cli_repo_check_subset_and_no_read_data_exclude_each_other(world: dict[str, Any]) -> None:
    with pytest.raises(SystemExit) as caught:
        main(["repo", "check", "--read-data-subset", "5", "--no-read-data", *CLI])
    assert caught.value.code == EXIT_USAGE
