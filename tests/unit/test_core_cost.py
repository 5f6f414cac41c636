"""The cost model: per-run request counts, the itemised estimate, price overrides and the CLI around them."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from chalicelib.cli.main import main
from chalicelib.core.cost.model import (
    ClusterShape,
    Estimate,
    PolicyShape,
    backup_requests,
    estimate,
    fixed,
    replication_requests,
    restore_requests,
    shape_from_backups,
)
from chalicelib.core.cost.prices import PRICES, InvalidPrices, with_overrides
from chalicelib.core.models import BackupRecord, BackupState


def test_a_noop_incremental_writes_no_pack_and_no_index() -> None:
    shape = ClusterShape(objects=10_000)
    noop = backup_requests(shape, 0.0)
    one = backup_requests(shape, 0.01)
    assert noop.s3_put == 1  # the manifest only
    assert noop.bytes_written == 0
    assert one.s3_put > noop.s3_put
    assert backup_requests(shape, 1.0).s3_put > one.s3_put


def test_replication_copies_every_object_the_backup_wrote() -> None:
    run = backup_requests(ClusterShape(objects=30_000), 0.01)
    assert replication_requests(run).s3_copy == run.s3_put


def test_the_estimate_is_itemised_by_service_and_sums_to_the_total() -> None:
    result = estimate(ClusterShape(objects=10_000), PolicyShape(replica=True), PRICES)
    services = set(result.by_service())
    assert {"Lambda", "S3", "DynamoDB", "SQS", "EventBridge", "KMS", "CloudWatch"} <= services
    assert "Transfer" in services  # a replica region pays inter-region transfer
    assert result.total == pytest.approx(sum(line.usd for line in result.lines))
    items = {line.item for line in result.lines}
    assert "storage, replica region" in items and "COPY requests (replication)" in items


def test_pvcs_add_ebs_snapshot_storage_and_copies() -> None:
    without = estimate(ClusterShape(objects=30_000), PolicyShape(replica=True), PRICES)
    with_pvcs = estimate(ClusterShape(objects=30_000, pvcs=50, pvc_gib=10), PolicyShape(replica=True), PRICES)
    assert "EBS" not in without.by_service()
    assert with_pvcs.by_service()["EBS"] > 0
    assert with_pvcs.total > without.total


def test_fixed_costs_hold_the_key_the_alarms_and_the_dispatcher_tick() -> None:
    items = {line.item for line in fixed(PRICES).lines}
    assert "customer managed key" in items and "dispatcher GB-seconds" in items
    assert fixed(PRICES).total > 1.0


def test_a_price_override_changes_the_line_it_prices() -> None:
    prices = with_overrides({"secretsmanager_secret_month": 0.0})
    shape = ClusterShape(objects=2000, auth="kubeconfig_secret")
    assert estimate(shape, PolicyShape(), prices).by_service()["Secrets Manager"] < 0.01
    assert estimate(shape, PolicyShape(), PRICES).by_service()["Secrets Manager"] >= 0.4


@pytest.mark.parametrize("overrides", [{"s3_nope": 1.0}, {"s3_get": -1}, {"s3_get": "cheap"}, {"s3_get": True}])
def test_a_bad_price_override_is_refused(overrides: dict[str, object]) -> None:
    with pytest.raises(InvalidPrices):
        with_overrides(overrides)


def test_the_price_table_says_when_and_where_it_was_taken() -> None:
    assert PRICES["region"] == "us-east-1" and PRICES["taken"] == "2026-12" and "AWS" in PRICES["source"]


def test_the_shape_comes_from_the_last_backups() -> None:
    def rec(bid: str, objects: int, new: int, parent: str | None) -> BackupRecord:
        counts = {"objects": objects, "blobs_new": new, "namespaces": 7}
        return BackupRecord("c", bid, BackupState.COMPLETED, "j", parent=parent, counts=counts)

    shape = shape_from_backups([rec("b3", 5000, 100, "b2"), rec("b2", 5000, 50, "b1"), rec("b1", 5000, 5000, None)])
    assert shape.objects == 5000 and shape.namespaces == 7
    assert shape.change_rate == pytest.approx(0.015)
    with pytest.raises(ValueError, match="no completed backups"):
        shape_from_backups([])


def test_cli_estimate_json(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["cost", "estimate", "--objects", "10000", "--replica", "-o", "json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["total_usd"] == pytest.approx(sum(doc["by_service"].values()), abs=1e-3)
    assert doc["shape"]["objects"] == 10000 and doc["policy"]["replica"] is True
    assert doc["prices"]["taken"] == "2026-12"


def test_cli_estimate_table_and_price_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    prices = tmp_path / "prices.json"
    prices.write_text(json.dumps({"cloudwatch_metric_month": 0, "secretsmanager_secret_month": 0}))
    assert main(["cost", "estimate", "--objects", "2000", "--prices", str(prices)]) == 0
    out = capsys.readouterr().out
    assert "total" in out and "S3" in out
    prices.write_text(json.dumps({"no_such_price": 1}))
    assert main(["cost", "estimate", "--prices", str(prices)]) == 1
    assert "unknown price" in capsys.readouterr().err


def test_cli_estimate_from_a_registered_clusters_backups(
    table: str, bucket: str, dynamodb: object, capsys: pytest.CaptureFixture[str]
) -> None:
    from datetime import UTC, datetime

    from chalicelib.catalog.backups import BackupCatalog
    from chalicelib.catalog.clusters import ClusterCatalog

    catalog = BackupCatalog(dynamodb, table)
    now = datetime(2026, 12, 1, tzinfo=UTC)
    parent = None
    for i, new in enumerate((8000, 80, 160)):
        bid = f"b{i}"
        catalog.claim_job(f"j{i}", "prod", bid, policy="hourly", parent=parent, now=now)
        catalog.transition("prod", bid, BackupState.RUNNING, now=now)
        counts = {"objects": 8000, "blobs_new": new, "namespaces": 12}
        catalog.transition("prod", bid, BackupState.COMPLETED, now=now, counts=counts)
        parent = bid
    args = ["cost", "estimate", "--from-cluster", "prod", "--table", table, "--bucket", bucket, "-o", "json"]
    assert main(args) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["shape"]["objects"] == 8000 and doc["shape"]["namespaces"] == 12
    assert doc["shape"]["change_rate"] == pytest.approx(0.015)
    assert doc["shape"]["auth"] == "eks" and "Secrets Manager" not in doc["by_service"]  # never registered: --auth
    ClusterCatalog(dynamodb, table).register(
        "prod", {"type": "kubeconfig_secret", "secret_id": "lifeboat/prod"}, kubernetes_version=None, now=now
    )
    assert main(args) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["shape"]["auth"] == "kubeconfig_secret" and doc["by_service"]["Secrets Manager"] >= 0.4
    assert main([*args[:3], "nowhere", *args[4:]]) == 1
    assert "no completed backups" in capsys.readouterr().err


def test_a_policy_costs_one_custom_metric() -> None:
    result = estimate(ClusterShape(objects=10_000), PolicyShape(replica=True), PRICES)
    [metric] = [line for line in result.lines if line.unit == "metric-month"]
    assert metric.quantity == 1 and metric.usd == pytest.approx(PRICES["cloudwatch_metric_month"])


def test_an_eks_cluster_stores_no_secret_and_a_kubeconfig_one_does() -> None:
    eks = estimate(ClusterShape(objects=10_000), PolicyShape(), PRICES)
    assert "Secrets Manager" not in eks.by_service()  # IAM authentication: nothing stored, nothing read
    for kind in ("kubeconfig_secret", "token_secret"):
        stored = estimate(ClusterShape(objects=10_000, auth=kind), PolicyShape(), PRICES)
        [secret] = [line for line in stored.lines if line.unit == "secret-month"]
        assert secret.quantity == 1 and stored.by_service()["Secrets Manager"] >= 0.4
        assert stored.total == pytest.approx(eks.total + stored.by_service()["Secrets Manager"])


def test_a_self_managed_clusters_etcd_snapshots_add_its_tls_secret() -> None:
    shape = ClusterShape(objects=10_000, auth="kubeconfig_secret", etcd_mib=50)
    [secrets] = [line for line in estimate(shape, PolicyShape(), PRICES).lines if line.unit == "secret-month"]
    assert secrets.quantity == 2  # the kubeconfig and the etcd client certificate


@pytest.mark.parametrize(("auth", "secret"), [("eks", False), ("kubeconfig_secret", True), ("token_secret", True)])
def test_cli_estimate_takes_the_auth_kind(auth: str, secret: bool, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["cost", "estimate", "--auth", auth, "-o", "json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["shape"]["auth"] == auth
    assert ("Secrets Manager" in doc["by_service"]) is secret


def test_cli_estimate_defaults_to_an_eks_cluster(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["cost", "estimate", "-o", "json"]) == 0
    assert json.loads(capsys.readouterr().out)["shape"]["auth"] == "eks"


def test_a_restore_reads_each_pack_once_and_checkpoints_every_200_objects() -> None:
    small, large = ClusterShape(objects=400, namespaces=4), ClusterShape(objects=300_000, namespaces=200)
    assert restore_requests(small).s3_get == 6  # config, manifest, index, root tree, the trees, one pack
    assert restore_requests(small).ddb_write == 6  # create, claim, 2 checkpoints, finish, event mark
    assert restore_requests(large).ddb_write == 1 + 1 + 1500 + 2
    # 300,000 objects: ~44 packs of objects, ~5 of trees; namespaces do not add GETs (their trees are contiguous)
    assert restore_requests(large).s3_get == 2 + 1 + 1 + 5 + 44
    assert restore_requests(small, index_files=13).s3_get == 18
    assert restore_requests(small, seconds=95).ddb_write == 9  # three heartbeats


def test_verification_runs_are_priced_as_restores() -> None:
    shape = ClusterShape(objects=10_000)
    none = estimate(shape, PolicyShape(verifications_per_month=0), PRICES)
    four = estimate(shape, PolicyShape(verifications_per_month=4), PRICES)

    def gets(result: Estimate) -> float:
        return next(line.quantity for line in result.lines if line.item == "GET/HEAD requests")

    # hourly backups: the consolidated index and, on average, 12 more index files since the daily GC
    assert gets(four) - gets(none) == pytest.approx(4 * restore_requests(shape, index_files=13).s3_get)
