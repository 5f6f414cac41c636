"""bench/moto_flat.py: moto's server whose per-request costs do not grow with the data answers as stock moto does: a
cancelled transaction leaves every item as it was, a key Query pages its partition in order, sends are all received."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from bench.harness import _moto

TABLE = "lifeboat-bench-tx"


@pytest.fixture(scope="module")
def endpoint() -> Iterator[str]:
    from sandbox.environment import FAKE_CREDENTIALS

    with pytest.MonkeyPatch.context() as env:
        for key, value in FAKE_CREDENTIALS.items():
            env.setenv(key, value)
        with _moto("bench.moto_flat") as url:
            yield url


@pytest.fixture(scope="module")
def ddb(endpoint: str) -> Any:
    import boto3

    from chalicelib.catalog.schema import create_table

    client = boto3.client("dynamodb", region_name="us-east-1", endpoint_url=endpoint)
    create_table(client, TABLE)
    return client


def _key(pk: str, sk: str = "x") -> dict[str, Any]:
    return {"pk": {"S": pk}, "sk": {"S": sk}}


def _get(ddb: Any, pk: str) -> dict[str, Any] | None:
    item: dict[str, Any] | None = ddb.get_item(TableName=TABLE, Key=_key(pk), ConsistentRead=True).get("Item")
    return item


def test_a_cancelled_transaction_undoes_the_updates_puts_and_deletes_applied_before_the_failing_check(ddb):
    ddb.put_item(TableName=TABLE, Item={**_key("a"), "n": {"N": "1"}})
    ddb.put_item(TableName=TABLE, Item={**_key("d"), "n": {"N": "4"}})
    items = [
        {
            "Update": {
                "TableName": TABLE,
                "Key": _key("a"),
                "UpdateExpression": "SET n = :two",
                "ExpressionAttributeValues": {":two": {"N": "2"}},
            }
        },
        {"Put": {"TableName": TABLE, "Item": {**_key("b"), "n": {"N": "3"}}}},
        {"Delete": {"TableName": TABLE, "Key": _key("d")}},
        {"ConditionCheck": {"TableName": TABLE, "Key": _key("c"), "ConditionExpression": "attribute_exists(pk)"}},
    ]
    with pytest.raises(ddb.exceptions.TransactionCanceledException) as cancelled:
        ddb.transact_write_items(TransactItems=items)
    reasons = [r["Code"] for r in cancelled.value.response["CancellationReasons"]]
    assert reasons == ["None", "None", "None", "ConditionalCheckFailed"]
    assert _get(ddb, "a") == {**_key("a"), "n": {"N": "1"}}
    assert _get(ddb, "b") is None
    assert _get(ddb, "d") == {**_key("d"), "n": {"N": "4"}}


def test_a_transaction_whose_checks_pass_is_applied(ddb):
    ddb.put_item(TableName=TABLE, Item={**_key("e"), "n": {"N": "1"}})
    put = {
        "TableName": TABLE,
        "Item": {**_key("f"), "n": {"N": "6"}},
        "ConditionExpression": "attribute_not_exists(pk)",
    }
    check = {"TableName": TABLE, "Key": _key("e"), "ConditionExpression": "attribute_exists(pk)"}
    ddb.transact_write_items(TransactItems=[{"Put": put}, {"ConditionCheck": check}])
    assert _get(ddb, "f") == {**_key("f"), "n": {"N": "6"}}


def test_a_key_query_reads_its_partition_in_order_in_pages_and_an_index_query_the_whole_index(ddb):
    for pk, sk in (("p1", "RUN#a"), ("p1", "RUN#b"), ("p1", "RUN#c"), ("p1", "OTHER"), ("p2", "RUN#d")):
        ddb.put_item(TableName=TABLE, Item={**_key(pk, sk), "gsi2pk": {"S": "DUE#0"}, "gsi2sk": {"S": pk + sk}})
    query = {
        "TableName": TABLE,
        "KeyConditionExpression": "pk = :pk AND begins_with(sk, :prefix)",
        "ExpressionAttributeValues": {":pk": {"S": "p1"}, ":prefix": {"S": "RUN#"}},
        "ScanIndexForward": False,
        "Limit": 2,
    }
    first = ddb.query(**query)
    second = ddb.query(**query, ExclusiveStartKey=first["LastEvaluatedKey"])
    assert [i["sk"]["S"] for i in first["Items"]] == ["RUN#c", "RUN#b"]
    assert [i["sk"]["S"] for i in second["Items"]] == ["RUN#a"] and "LastEvaluatedKey" not in second
    due = ddb.query(
        TableName=TABLE,
        IndexName="gsi2",
        KeyConditionExpression="gsi2pk = :pk",
        ExpressionAttributeValues={":pk": {"S": "DUE#0"}},
    )
    assert [i["gsi2sk"]["S"] for i in due["Items"]] == ["p1OTHER", "p1RUN#a", "p1RUN#b", "p1RUN#c", "p2RUN#d"]


def test_sends_into_a_standard_queue_are_received_once_each_and_counted(endpoint):
    import boto3

    sqs = boto3.client("sqs", region_name="us-east-1", endpoint_url=endpoint)
    url = sqs.create_queue(QueueName="lifeboat-bench-jobs")["QueueUrl"]
    for batch in range(3):
        entries = [{"Id": str(i), "MessageBody": f"job-{batch}-{i}"} for i in range(10)]
        sent = sqs.send_message_batch(QueueUrl=url, Entries=entries)
        assert len(sent["Successful"]) == 10 and not sent.get("Failed")
    sqs.send_message(QueueUrl=url, MessageBody="job-single")
    counts = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["ApproximateNumberOfMessages"])["Attributes"]
    assert counts["ApproximateNumberOfMessages"] == "31"
    bodies = []
    while got := sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10, VisibilityTimeout=60).get("Messages"):
        bodies.extend(m["Body"] for m in got)
    assert sorted(bodies) == sorted([f"job-{b}-{i}" for b in range(3) for i in range(10)] + ["job-single"])
