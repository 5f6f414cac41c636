"""tests/support/iam_actions.py: botocore operations as the IAM actions they need, and the comparison with a row."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import pytest

from tests.support.iam_actions import Recorder, compare

BUCKETS = {"primary": "bucket", "replica": "replica"}


def recorded(service: str, operation: str, params: dict[str, Any], *, missing: bool = False) -> set[Any]:
    recorder = Recorder(buckets=BUCKETS, queues={"https://q/backup": "backup-queue"})
    client = SimpleNamespace(meta=SimpleNamespace(service_model=SimpleNamespace(service_name=service)))
    recorder._record("f", client, operation, params, missing=missing)
    return recorder.recorded["f"]


@pytest.mark.parametrize(
    ("service", "operation", "params", "wanted"),
    [
        ("s3", "HeadObject", {"Bucket": "primary", "Key": "k"}, {("bucket", "s3:GetObject")}),
        ("s3", "ListObjectsV2", {"Bucket": "replica"}, {("replica-list", "s3:ListBucket")}),
        (
            "s3",
            "GetObjectLockConfiguration",
            {"Bucket": "primary"},
            {("bucket-list", "s3:GetBucketObjectLockConfiguration")},
        ),
        (
            "s3",
            "DeleteObject",
            {"Bucket": "primary", "Key": "k", "VersionId": "v"},
            {("bucket", "s3:DeleteObjectVersion")},
        ),
        (
            "s3",
            "CopyObject",
            {"Bucket": "replica", "Key": "k", "CopySource": {"Bucket": "primary", "Key": "k"}},
            {("bucket", "s3:GetObject"), ("replica", "s3:PutObject")},
        ),
        (
            "s3",
            "PutObject",
            {"Bucket": "primary", "Key": "k", "ObjectLockMode": "COMPLIANCE"},
            {("bucket", "s3:PutObject"), ("bucket", "s3:PutObjectRetention")},
        ),
        (
            "dynamodb",
            "TransactWriteItems",
            {"TransactItems": [{"ConditionCheck": {}}, {"Put": {}}]},
            {(None, "dynamodb:ConditionCheckItem"), (None, "dynamodb:PutItem")},
        ),
        ("sqs", "SendMessageBatch", {"QueueUrl": "https://q/backup"}, {("backup-queue", "sqs:SendMessage")}),
        ("lambda", "Invoke", {"FunctionName": "lifeboat-hook-x"}, {(None, "lambda:InvokeFunction")}),
        (
            "secretsmanager",
            "GetSecretValue",
            {"SecretId": "lifeboat/api-clients/ci"},
            {("api-client-secrets", "secretsmanager:GetSecretValue")},
        ),
        (
            "secretsmanager",
            "GetSecretValue",
            {"SecretId": "lifeboat/prod"},
            {("secrets", "secretsmanager:GetSecretValue")},
        ),
        (
            "ec2",
            "CopySnapshot",
            {"TagSpecifications": [{"Tags": []}]},
            {(None, "ec2:CopySnapshot"), (None, "ec2:CreateTags")},
        ),
    ],
)
def test_operations_as_iam_actions(service: str, operation: str, params: dict[str, Any], wanted: set[Any]) -> None:
    assert recorded(service, operation, params) == wanted


def test_a_missing_object_needs_list_bucket_to_answer_404() -> None:
    got = recorded("s3", "HeadObject", {"Bucket": "primary", "Key": "gone"}, missing=True)
    assert got == {("bucket", "s3:GetObject"), ("bucket-list", "s3:ListBucket")}


def test_calls_outside_a_function_are_not_recorded() -> None:
    recorder = Recorder()
    with recorder:
        with recorder.as_function("f"), recorder.outside():
            assert recorder.function is None
        assert recorder.function is None
    assert not recorder.recorded


ROW = {
    "bucket": ["s3:GetObject", "s3:PutObject"],
    "replica": ["s3:GetObject"],
    "table": ["dynamodb:Query"],
    "reason": {"s3:PutObject": "large uploads", "dynamodb:Query": "stale"},
}


def test_compare_a_row_with_what_was_recorded() -> None:
    result = compare({("bucket", "s3:GetObject"), ("replica", "s3:PutObject"), (None, "dynamodb:Query")}, ROW)
    assert result.outside == ["replica s3:PutObject"]  # granted on the primary only
    # The replica read is unreached and has no reason; PutObject has one; Query is reached, so its reason is stale.
    assert result.unreached == {"s3:GetObject": None, "s3:PutObject": "large uploads"}
    assert result.stale_reasons == ["dynamodb:Query"]
