"""The backup catalog against emulated DynamoDB (moto)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from chalicelib.catalog import (
    AlreadyExists,
    BackupCatalog,
    CatalogError,
    InvalidToken,
    RecordNotFound,
    StaleState,
    TableNotFound,
    Throttled,
)
from chalicelib.catalog.backups import MAX_ERRORS
from chalicelib.catalog.errors import WorkerSuperseded
from chalicelib.catalog.schema import TTL_ATTRIBUTE, create_table, table_definition
from chalicelib.core.models import BackupState

NOW = datetime(2026, 11, 22, 10, 15, tzinfo=UTC)
S = BackupState


def backup_id(minutes: int, suffix: str = "3fa9c2") -> str:
    return f"{(NOW + timedelta(minutes=minutes)).strftime('%Y%m%dT%H%M%SZ')}-{suffix}"


@pytest.fixture
def catalog(dynamodb: Any, table: str) -> BackupCatalog:
    return BackupCatalog(dynamodb, table)


def raw_item(dynamodb: Any, table: str, cluster: str, bid: str) -> dict[str, Any]:
    key = {"pk": {"S": f"CLUSTER#{cluster}"}, "sk": {"S": f"BACKUP#{bid}"}}
    return dict(dynamodb.get_item(TableName=table, Key=key, ConsistentRead=True)["Item"])


def make(catalog: BackupCatalog, cluster: str, minutes: int, state: BackupState, suffix: str = "3fa9c2") -> str:
    """A backup of ``cluster`` driven through the legal path to ``state``."""
    bid = backup_id(minutes, suffix)
    catalog.claim_job(f"job-{cluster}-{bid}", cluster, bid, now=NOW)
    path = {
        S.PENDING: [],
        S.RUNNING: [S.RUNNING],
        S.FAILED: [S.FAILED],
        S.COMPLETED: [S.RUNNING, S.COMPLETED],
        S.PARTIALLY_FAILED: [S.RUNNING, S.PARTIALLY_FAILED],
        S.EXPIRED: [S.RUNNING, S.COMPLETED, S.EXPIRED],
    }[state]
    for step in path:
        catalog.transition(cluster, bid, step, now=NOW)
    return bid


# -- schema -------------------------------------------------------------------------------------------------------


def test_table_has_the_defined_keys_indexes_and_ttl(dynamodb: Any, table: str) -> None:
    described = dynamodb.describe_table(TableName=table)["Table"]
    definition = table_definition(table)
    assert described["TableStatus"] == "ACTIVE"
    assert described["KeySchema"] == definition["KeySchema"]
    assert described["BillingModeSummary"]["BillingMode"] == "PAY_PER_REQUEST"
    indexes = {i["IndexName"]: i["KeySchema"] for i in described["GlobalSecondaryIndexes"]}
    assert indexes == {i["IndexName"]: i["KeySchema"] for i in definition["GlobalSecondaryIndexes"]}
    ttl = dynamodb.describe_time_to_live(TableName=table)["TimeToLiveDescription"]
    assert ttl == {"TimeToLiveStatus": "ENABLED", "AttributeName": TTL_ATTRIBUTE}


def test_creating_the_table_twice_is_already_exists(dynamodb: Any, table: str) -> None:
    with pytest.raises(AlreadyExists, match=table) as info:
        create_table(dynamodb, table)
    assert info.value.__cause__ is not None


def test_missing_table_is_table_not_found_naming_it(dynamodb: Any) -> None:
    catalog = BackupCatalog(dynamodb, "no-such-table")
    with pytest.raises(TableNotFound, match="no-such-table") as info:
        catalog.get("prod", backup_id(0))
    assert info.value.table == "no-such-table"
    assert info.value.__cause__ is not None
    with pytest.raises(TableNotFound):
        catalog.claim_job("job-1", "prod", backup_id(0), now=NOW)


# -- claiming jobs ------------------------------------------------------------------------------------------------


def test_claim_creates_a_pending_record(catalog: BackupCatalog) -> None:
    record, created = catalog.claim_job("job-1", "prod", backup_id(0), policy="hourly", parent="p-1", now=NOW)
    assert created is True
    assert record.state == S.PENDING
    assert (record.cluster, record.backup_id, record.job_id) == ("prod", backup_id(0), "job-1")
    assert catalog.get("prod", backup_id(0)) == record
    assert record.policy == "hourly" and record.parent == "p-1"
    assert record.created_at == "2026-11-22T10:15:00.000Z"


def test_a_claim_for_a_worker_creates_the_record_running_for_it_in_one_write(dynamodb: Any, table: str) -> None:
    announced: list[tuple[str, bool]] = []
    catalog = BackupCatalog(dynamodb, table, on_transition=lambda r, started: announced.append((r.state, started)))
    record, created = catalog.claim_job("job-1", "prod", backup_id(0), now=NOW, worker="token-a")
    assert created and record.state == S.RUNNING and record.worker == "token-a"
    assert record.started_at == record.heartbeat_at == record.created_at == "2026-11-22T10:15:00.000Z"
    assert catalog.get("prod", backup_id(0)) == record
    assert announced == [(S.RUNNING, True)]  # announced as the claim's transition would be: Backup Started
    assert catalog.latest("prod", states=[S.RUNNING]) == record  # indexed under its state
    # Fenced from the start: another token's writes are refused, the claimant's go through.
    with pytest.raises(WorkerSuperseded):
        catalog.heartbeat("prod", backup_id(0), NOW, worker="token-b")
    done = catalog.transition("prod", backup_id(0), S.COMPLETED, now=NOW, worker="token-a")
    assert done.state == S.COMPLETED
    # A redelivery finds the claim and creates nothing, running or not.
    again, created_again = catalog.claim_job("job-1", "prod", backup_id(1), now=NOW, worker="token-c")
    assert not created_again and again.backup_id == backup_id(0) and again.worker == "token-a"
    assert announced == [(S.RUNNING, True), (S.COMPLETED, False)]


def test_redelivered_job_returns_the_first_record_and_creates_no_second_backup(catalog: BackupCatalog) -> None:
    first, created = catalog.claim_job("job-1", "prod", backup_id(0), now=NOW)
    catalog.transition("prod", first.backup_id, S.RUNNING, now=NOW)
    # A re-delivered message gets a fresh backup id from its worker; the claim must map it to the first one.
    again, created_again = catalog.claim_job("job-1", "prod", backup_id(1), now=NOW + timedelta(minutes=1))
    assert created is True and created_again is False
    assert again.backup_id == first.backup_id
    assert again.state == S.RUNNING
    records, token = catalog.list("prod")
    assert [r.backup_id for r in records] == [first.backup_id]
    assert token is None
    with pytest.raises(RecordNotFound):
        catalog.find(backup_id(1))


def test_job_id_reused_for_another_cluster_is_refused(catalog: BackupCatalog) -> None:
    catalog.claim_job("job-1", "prod", backup_id(0), now=NOW)
    with pytest.raises(AlreadyExists, match="job-1"):
        catalog.claim_job("job-1", "staging", backup_id(1), now=NOW)
    assert catalog.list("staging") == ([], None)


def test_backup_id_used_by_another_job_is_refused_atomically(catalog: BackupCatalog, dynamodb: Any) -> None:
    catalog.claim_job("job-1", "prod", backup_id(0), now=NOW)
    with pytest.raises(AlreadyExists, match=backup_id(0)) as info:
        catalog.claim_job("job-2", "staging", backup_id(0), now=NOW)
    assert info.value.__cause__ is not None
    # Nothing of job-2 was written: retrying it with a fresh id creates the record.
    record, created = catalog.claim_job("job-2", "staging", backup_id(1), now=NOW)
    assert created is True and record.backup_id == backup_id(1)
    assert catalog.find(backup_id(0)).cluster == "prod"


@pytest.mark.parametrize("cluster", ["", "a#b"])
def test_claim_rejects_ambiguous_cluster_names(catalog: BackupCatalog, cluster: str) -> None:
    with pytest.raises(ValueError, match="must be non-empty and must not contain"):
        catalog.claim_job("job-1", cluster, backup_id(0), now=NOW)


# -- transitions --------------------------------------------------------------------------------------------------


def test_full_lifecycle_stores_typed_values(catalog: BackupCatalog, dynamodb: Any, table: str) -> None:
    bid = backup_id(0)
    catalog.claim_job("job-1", "prod", bid, now=NOW)
    running = catalog.transition("prod", bid, S.RUNNING, now=NOW + timedelta(seconds=5))
    assert running.state == S.RUNNING
    assert running.started_at == "2026-11-22T10:15:05.000Z"
    done = catalog.transition(
        "prod",
        bid,
        S.PARTIALLY_FAILED,
        now=NOW + timedelta(minutes=2),
        manifest_key=f"clusters/prod/backups/{bid}/manifest.json",
        counts={"objects": 1200, "blobs_new": 17},
        stats={"bytes_uploaded": 52_000_000_000},
        errors=[{"resource": "widgets.example.com", "error": "403 Forbidden"}],
        extra={"ratio": 0.25},
    )
    assert done.state == S.PARTIALLY_FAILED
    assert done.started_at == "2026-11-22T10:15:05.000Z"
    assert done.finished_at == "2026-11-22T10:17:00.000Z"
    assert done.counts == {"objects": 1200, "blobs_new": 17}
    assert done.stats == {"bytes_uploaded": 52_000_000_000}
    assert done.errors == [{"resource": "widgets.example.com", "error": "403 Forbidden"}]
    assert done.extra == {"ratio": 0.25}
    assert catalog.get("prod", bid) == done
    item = raw_item(dynamodb, table, "prod", bid)
    assert item["counts"] == {"M": {"objects": {"N": "1200"}, "blobs_new": {"N": "17"}}}
    assert item["stats"]["M"]["bytes_uploaded"] == {"N": "52000000000"}
    assert item["errors"]["L"][0]["M"]["error"] == {"S": "403 Forbidden"}
    assert item["version"] == {"N": "3"}
    assert item["gsi1pk"] == {"S": "CLUSTER#prod#STATE#PartiallyFailed"}


@pytest.mark.parametrize(
    ("reached", "target"),
    [
        (S.PENDING, S.COMPLETED),
        (S.PENDING, S.PARTIALLY_FAILED),
        (S.RUNNING, S.PENDING),
        (S.COMPLETED, S.RUNNING),
        (S.COMPLETED, S.FAILED),
        (S.FAILED, S.RUNNING),
        (S.FAILED, S.COMPLETED),
        (S.EXPIRED, S.COMPLETED),
        (S.PARTIALLY_FAILED, S.COMPLETED),
    ],
)
def test_a_record_never_moves_backwards(catalog: BackupCatalog, reached: BackupState, target: BackupState) -> None:
    bid = make(catalog, "prod", 0, reached)
    before = catalog.get("prod", bid)
    with pytest.raises(StaleState) as info:
        catalog.transition("prod", bid, target, now=NOW + timedelta(hours=1), failure="late")
    error = info.value
    assert (error.cluster, error.backup_id, error.current, error.target) == ("prod", bid, reached, target)
    assert bid in str(error) and str(reached) in str(error) and str(target) in str(error)
    assert catalog.get("prod", bid) == before


def test_duplicate_workers_cannot_both_finish(catalog: BackupCatalog) -> None:
    bid = make(catalog, "prod", 0, S.RUNNING)
    catalog.transition("prod", bid, S.COMPLETED, now=NOW, counts={"objects": 3})
    with pytest.raises(StaleState):
        catalog.transition("prod", bid, S.FAILED, now=NOW, failure="worker killed")
    assert catalog.get("prod", bid).counts == {"objects": 3}


def test_transition_of_a_missing_record_is_not_found(catalog: BackupCatalog) -> None:
    with pytest.raises(RecordNotFound, match=backup_id(0)) as info:
        catalog.transition("prod", backup_id(0), S.RUNNING, now=NOW)
    assert info.value.__cause__ is not None


def test_transition_rejects_unknown_fields(catalog: BackupCatalog) -> None:
    bid = make(catalog, "prod", 0, S.PENDING)
    with pytest.raises(TypeError, match="colour"):
        catalog.transition("prod", bid, S.RUNNING, now=NOW, colour="red")
    assert catalog.get("prod", bid).state == S.PENDING


def test_extra_is_merged_and_none_removes_a_field(catalog: BackupCatalog) -> None:
    bid = make(catalog, "prod", 0, S.PENDING)
    catalog.transition("prod", bid, S.RUNNING, now=NOW, extra={"checkpoint": {"kind": "pods", "continue": "abc"}})
    catalog.transition("prod", bid, S.RUNNING, now=NOW, failure="transient", extra={"attempt": 2})
    record = catalog.transition("prod", bid, S.COMPLETED, now=NOW, failure=None)
    assert record.extra == {"checkpoint": {"kind": "pods", "continue": "abc"}, "attempt": 2}
    assert record.failure is None


def test_error_list_is_capped_to_keep_the_item_small(catalog: BackupCatalog) -> None:
    bid = make(catalog, "prod", 0, S.RUNNING)
    errors = [{"resource": f"kind{i}", "error": "x" * 5000} for i in range(MAX_ERRORS + 50)]
    record = catalog.transition("prod", bid, S.PARTIALLY_FAILED, now=NOW, errors=errors)
    assert len(record.errors) == MAX_ERRORS
    assert record.errors[0]["resource"] == "kind0"
    assert len(record.errors[0]["error"]) < 5000
    assert record.extra["errors_omitted"] == 50


def test_heartbeat_only_while_running(catalog: BackupCatalog, dynamodb: Any, table: str) -> None:
    bid = make(catalog, "prod", 0, S.RUNNING)
    catalog.heartbeat("prod", bid, NOW + timedelta(minutes=7))
    item = raw_item(dynamodb, table, "prod", bid)
    assert item["heartbeat_at"] == {"S": "2026-11-22T10:22:00.000Z"}
    assert item["state"] == {"S": "Running"}
    catalog.transition("prod", bid, S.COMPLETED, now=NOW + timedelta(minutes=8))
    with pytest.raises(StaleState) as info:
        catalog.heartbeat("prod", bid, NOW + timedelta(minutes=9))
    assert info.value.current == S.COMPLETED
    assert raw_item(dynamodb, table, "prod", bid)["heartbeat_at"] == {"S": "2026-11-22T10:22:00.000Z"}


def test_naive_timestamps_are_refused(catalog: BackupCatalog) -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        catalog.claim_job("job-1", "prod", backup_id(0), now=datetime(2026, 1, 1))


# -- reads --------------------------------------------------------------------------------------------------------


def test_get_and_find(catalog: BackupCatalog) -> None:
    bid = make(catalog, "staging", 0, S.COMPLETED)
    make(catalog, "prod", 1, S.COMPLETED)
    assert catalog.find(bid) == catalog.get("staging", bid)
    assert catalog.find(bid).cluster == "staging"
    with pytest.raises(RecordNotFound):
        catalog.find("20990101T000000Z-000000")
    with pytest.raises(RecordNotFound):
        catalog.get("prod", bid)


def test_list_is_newest_first_and_pages_with_an_opaque_token(catalog: BackupCatalog) -> None:
    ids = [make(catalog, "prod", m, S.COMPLETED) for m in (3, 0, 4, 1, 2)]
    make(catalog, "other", 9, S.COMPLETED)
    seen: list[str] = []
    pages = 0
    token: str | None = None
    while True:
        records, token = catalog.list("prod", limit=2, next_token=token)
        pages += 1
        seen.extend(r.backup_id for r in records)
        assert all(r.cluster == "prod" for r in records)
        if token is None:
            break
        assert "prod" not in token  # opaque, not a raw key
    assert seen == sorted(ids, reverse=True)
    assert pages == 3


def test_list_filters_states_across_pages(catalog: BackupCatalog) -> None:
    wanted = []
    for minute in range(12):
        state = S.FAILED if minute % 3 else S.COMPLETED
        bid = make(catalog, "prod", minute, state)
        if state == S.COMPLETED:
            wanted.append(bid)
    seen: list[str] = []
    token: str | None = None
    while True:
        records, token = catalog.list("prod", limit=3, next_token=token, states={S.COMPLETED})
        assert len(records) <= 3
        seen.extend(r.backup_id for r in records)
        if token is None:
            break
    assert seen == sorted(wanted, reverse=True)
    failed, _ = catalog.list("prod", limit=50, states=[S.FAILED])
    assert len(failed) == 8 and {r.state for r in failed} == {S.FAILED}


@pytest.mark.parametrize("token", ["not-base64!", "e30", "eyJwayI6IkNMVVNURVIjb3RoZXIiLCJzayI6IkJBQ0tVUCN4In0"])
def test_bad_or_foreign_tokens_are_refused(catalog: BackupCatalog, token: str) -> None:
    make(catalog, "prod", 0, S.COMPLETED)
    # The last token is a valid key of cluster "other": it must not page through "prod".
    with pytest.raises(InvalidToken):
        catalog.list("prod", next_token=token)


def test_list_clusters(catalog: BackupCatalog) -> None:
    assert catalog.list_clusters() == []
    make(catalog, "prod", 0, S.PENDING)
    make(catalog, "prod", 1, S.PENDING)
    make(catalog, "dev", 2, S.PENDING)
    assert catalog.list_clusters() == ["dev", "prod"]


def test_latest_skips_unfinished_and_failed_backups(catalog: BackupCatalog) -> None:
    assert catalog.latest("prod") is None
    make(catalog, "prod", 0, S.COMPLETED)
    partial = make(catalog, "prod", 1, S.PARTIALLY_FAILED)
    make(catalog, "prod", 2, S.FAILED)
    make(catalog, "prod", 3, S.RUNNING)
    make(catalog, "other", 4, S.COMPLETED)
    latest = catalog.latest("prod")
    assert latest is not None and latest.backup_id == partial
    only_completed = catalog.latest("prod", states={S.COMPLETED})
    assert only_completed is not None and only_completed.backup_id == backup_id(0)
    assert catalog.latest("prod", states=set()) is None


def test_latest_ignores_an_expired_backup(catalog: BackupCatalog) -> None:
    older = make(catalog, "prod", 0, S.COMPLETED)
    newer = make(catalog, "prod", 1, S.COMPLETED)
    catalog.transition("prod", newer, S.EXPIRED, now=NOW)
    latest = catalog.latest("prod")
    assert latest is not None and latest.backup_id == older


def test_latest_asks_for_each_state_at_once(dynamodb: Any, table: str) -> None:
    import threading

    both = threading.Barrier(2, timeout=10)  # broken, and the test failed, if the second query waits for the first

    class Client:
        def query(self, **kwargs: Any) -> Any:
            if kwargs.get("IndexName"):
                both.wait()
            return dynamodb.query(**kwargs)

        def __getattr__(self, name: str) -> Any:
            return getattr(dynamodb, name)

    writer = BackupCatalog(dynamodb, table)
    make(writer, "prod", 0, S.COMPLETED)
    partial = make(writer, "prod", 1, S.PARTIALLY_FAILED)
    latest = BackupCatalog(Client(), table).latest("prod")
    assert latest is not None and latest.backup_id == partial


# -- DynamoDB failures --------------------------------------------------------------------------------------------


def _stubbed(dynamodb: Any) -> tuple[Any, Any]:
    import boto3
    from botocore.stub import Stubber

    client = boto3.client("dynamodb", region_name="us-east-1")
    return client, Stubber(client)


@pytest.mark.parametrize(
    "code", ["ProvisionedThroughputExceededException", "ThrottlingException", "RequestLimitExceeded"]
)
def test_throttling_is_throttled(dynamodb: Any, code: str) -> None:
    client, stub = _stubbed(dynamodb)
    stub.add_client_error("get_item", service_error_code=code, http_status_code=400)
    with stub, pytest.raises(Throttled) as info:
        BackupCatalog(client, "t").get("prod", backup_id(0))
    assert info.value.__cause__ is not None


def test_other_dynamodb_errors_are_catalog_errors(dynamodb: Any) -> None:
    client, stub = _stubbed(dynamodb)
    stub.add_client_error("query", service_error_code="InternalServerError", http_status_code=500)
    with stub, pytest.raises(CatalogError, match="InternalServerError"):
        BackupCatalog(client, "t").list("prod")


def test_concurrent_claim_of_the_same_job_returns_the_winner(dynamodb: Any) -> None:
    client, stub = _stubbed(dynamodb)
    stub.add_client_error(
        "transact_write_items",
        service_error_code="TransactionCanceledException",
        http_status_code=400,
        response_meta={},
        modeled_fields={
            "CancellationReasons": [
                {"Code": "TransactionConflict"},
                {"Code": "None"},
                {"Code": "None"},
                {"Code": "None"},
            ]
        },
    )
    job = {"pk": {"S": "JOB#job-1"}, "sk": {"S": "JOB"}, "cluster": {"S": "prod"}, "backup_id": {"S": backup_id(0)}}
    record = {
        "pk": {"S": "CLUSTER#prod"},
        "sk": {"S": f"BACKUP#{backup_id(0)}"},
        "cluster": {"S": "prod"},
        "backup_id": {"S": backup_id(0)},
        "state": {"S": "Pending"},
        "job_id": {"S": "job-1"},
    }
    stub.add_response("get_item", {"Item": job})
    stub.add_response("get_item", {"Item": job})
    stub.add_response("get_item", {"Item": record})
    with stub:
        winner, created = BackupCatalog(client, "t").claim_job("job-1", "prod", backup_id(5), now=NOW)
    assert created is False
    assert winner.backup_id == backup_id(0)


def test_latest_does_not_trust_a_stale_index_entry(dynamodb: Any) -> None:
    client, stub = _stubbed(dynamodb)

    def item(bid: str, state: str) -> dict[str, Any]:
        return {
            "pk": {"S": "CLUSTER#prod"},
            "sk": {"S": f"BACKUP#{bid}"},
            "cluster": {"S": "prod"},
            "backup_id": {"S": bid},
            "state": {"S": state},
            "job_id": {"S": f"job-{bid}"},
        }

    # The index still lists the newest backup as Completed, but retention has expired it meanwhile.
    stub.add_response("query", {"Items": [item(backup_id(1), "Completed")]})
    stub.add_response("get_item", {"Item": item(backup_id(1), "Expired")})
    stub.add_response("query", {"Items": [item(backup_id(0), "Completed")]})
    with stub:
        latest = BackupCatalog(client, "t").latest("prod", states={S.COMPLETED})
    assert latest is not None and latest.backup_id == backup_id(0)


def test_post_hook_failures_are_appended_to_a_finished_record_without_touching_its_state(
    catalog: BackupCatalog,
) -> None:
    bid = make(catalog, "prod", 0, S.COMPLETED)
    first = catalog.record_post_hooks(
        "prod", bid, [{"resource": "hook/post", "error": "post hook 1 (exec) failed: exit code 2"}], now=NOW
    )
    later = NOW + timedelta(minutes=1)
    again = catalog.record_post_hooks("prod", bid, [{"resource": "hook/post", "error": "second"}], now=later)
    assert first.state == again.state == S.COMPLETED
    assert again.extra["post_hooks"] == [
        {"resource": "hook/post", "error": "post hook 1 (exec) failed: exit code 2", "at": "2026-11-22T10:15:00.000Z"},
        {"resource": "hook/post", "error": "second", "at": "2026-11-22T10:16:00.000Z"},
    ]
    assert catalog.get("prod", bid).extra["post_hooks"] == again.extra["post_hooks"]
    with pytest.raises(RecordNotFound, match="prod/20991231T000000Z-000000 not found"):
        catalog.record_post_hooks("prod", "20991231T000000Z-000000", [{"error": "x"}], now=NOW)
