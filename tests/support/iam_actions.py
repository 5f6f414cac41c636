"""Records the IAM actions (as IAM spells them) that code calls through botocore, per Lambda function.

``Recorder`` patches ``BaseClient._make_api_call`` while it is active; each call made inside
``recorder.as_function("backup_worker")`` is recorded for that function as (resource key, IAM action), the resource
key being the one of infra/iam-actions.json ("bucket", "replica-list", "backup-queue", ...) where the call names
one the recorder was told about, else None (matched against any resource of the function's row). Calls made from
other threads while a function is active count for it: a backup's listing and upload workers are its own.

What is not recorded, because no botocore call carries it: the KMS calls S3 makes on a function's behalf for
SSE-KMS objects (kms:GenerateDataKey on writes, kms:Decrypt on reads), which need the function's permission.
"""

from __future__ import annotations

import dataclasses
import json
import os
import warnings
from collections import defaultdict
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import botocore.client
from botocore.exceptions import ClientError

Entry = tuple[str | None, str]  # (resource key or None, IAM action)

# Botocore service names whose IAM prefix differs.
_PREFIX = {"monitoring": "cloudwatch"}
# Operations whose IAM action has another name (parameter-dependent ones are in _s3_actions and _dynamodb_actions).
_RENAMED = {
    "lambda:Invoke": "lambda:InvokeFunction",
    "sqs:SendMessageBatch": "sqs:SendMessage",
    "sqs:DeleteMessageBatch": "sqs:DeleteMessage",
    "sqs:ChangeMessageVisibilityBatch": "sqs:ChangeMessageVisibility",
    "s3:ListObjectsV2": "s3:ListBucket",
    "s3:ListObjects": "s3:ListBucket",
    "s3:HeadBucket": "s3:ListBucket",
    "s3:ListObjectVersions": "s3:ListBucketVersions",
    "s3:ListMultipartUploads": "s3:ListBucketMultipartUploads",
    "s3:ListParts": "s3:ListMultipartUploadParts",
    "s3:GetObjectLockConfiguration": "s3:GetBucketObjectLockConfiguration",
    "s3:CreateMultipartUpload": "s3:PutObject",
    "s3:UploadPart": "s3:PutObject",
    "s3:CompleteMultipartUpload": "s3:PutObject",
}
# S3 actions on the bucket itself (the "-list" resource); every other S3 action is on its objects.
_BUCKET_LEVEL = {"s3:ListBucket", "s3:ListBucketVersions", "s3:ListBucketMultipartUploads"}


def _bucket_level(action: str) -> bool:
    return action in _BUCKET_LEVEL or action.startswith(("s3:GetBucket", "s3:PutBucket"))


# Secret ids -> the table's resource keys, the most specific prefix first (infra/iam_roles.py's RESOURCES).
SECRETS = {"lifeboat/api-clients/": "api-client-secrets", "lifeboat/": "secrets"}
_TRANSACT = {"Put": "PutItem", "Update": "UpdateItem", "Delete": "DeleteItem", "ConditionCheck": "ConditionCheckItem"}


def _s3_actions(operation: str, params: Mapping[str, Any]) -> list[tuple[str, str]]:
    """(bucket, action) pairs one S3 call needs."""
    bucket = str(params.get("Bucket", ""))
    versioned = "VersionId" in params
    if operation == "HeadObject" or operation == "GetObject":
        return [(bucket, "s3:GetObjectVersion" if versioned else "s3:GetObject")]
    if operation == "DeleteObject":
        return [(bucket, "s3:DeleteObjectVersion" if versioned else "s3:DeleteObject")]
    if operation == "DeleteObjects":
        objects = params.get("Delete", {}).get("Objects", [])
        return sorted({(bucket, "s3:DeleteObjectVersion" if "VersionId" in o else "s3:DeleteObject") for o in objects})
    if operation in ("CopyObject", "UploadPartCopy"):
        source = params.get("CopySource")
        source_bucket = source["Bucket"] if isinstance(source, dict) else str(source).lstrip("/").split("/", 1)[0]
        return [(source_bucket, "s3:GetObject"), (bucket, "s3:PutObject")]
    action = _RENAMED.get(f"s3:{operation}", f"s3:{operation}")
    pairs = [(bucket, action)]
    if operation in ("PutObject", "CopyObject", "CreateMultipartUpload"):
        if "ObjectLockMode" in params or "ObjectLockRetainUntilDate" in params:
            pairs.append((bucket, "s3:PutObjectRetention"))
        if "ObjectLockLegalHoldStatus" in params:
            pairs.append((bucket, "s3:PutObjectLegalHold"))
    return pairs


def _dynamodb_actions(operation: str, params: Mapping[str, Any]) -> list[str]:
    if operation == "TransactWriteItems":
        return sorted({f"dynamodb:{_TRANSACT[k]}" for item in params.get("TransactItems", []) for k in item})
    if operation == "TransactGetItems":
        return ["dynamodb:GetItem"]
    return [f"dynamodb:{operation}"]


def _missing(exc: ClientError) -> bool:
    error = exc.response.get("Error", {})
    return error.get("Code") in ("404", "NoSuchKey", "NotFound")


@dataclass
class Recorder:
    """The IAM actions each function's calls needed, while active (``with recorder:``)."""

    buckets: dict[str, str] = field(default_factory=dict)  # bucket name -> "bucket" / "replica"
    queues: dict[str, str] = field(default_factory=dict)  # queue URL -> "backup-queue" / ...
    secrets: dict[str, str] = field(default_factory=lambda: dict(SECRETS))  # secret id prefix -> key, first match
    recorded: dict[str, set[Entry]] = field(default_factory=lambda: defaultdict(set))
    function: str | None = None
    _original: Any = None

    def __enter__(self) -> Recorder:
        self._original = botocore.client.BaseClient._make_api_call
        recorder = self

        def recording_call(client: Any, operation_name: str, api_params: Any) -> Any:
            function = recorder.function
            if function is None:
                return recorder._original(client, operation_name, api_params)
            try:
                result = recorder._original(client, operation_name, api_params)
            except ClientError as exc:
                recorder._record(function, client, operation_name, api_params, missing=_missing(exc))
                raise
            recorder._record(function, client, operation_name, api_params, missing=False)
            return result

        botocore.client.BaseClient._make_api_call = recording_call
        return self

    def __exit__(self, *exc: object) -> None:
        botocore.client.BaseClient._make_api_call = self._original

    @contextmanager
    def as_function(self, function: str) -> Iterator[None]:
        """Calls made inside count for ``function`` (the table's name: ``backup_worker``)."""
        previous, self.function = self.function, function
        try:
            yield
        finally:
            self.function = previous

    @contextmanager
    def outside(self) -> Iterator[None]:
        """Calls made inside count for no function: what the test does in AWS's place (an SQS event source's
        receive and delete, a message another function would send)."""
        previous, self.function = self.function, None
        try:
            yield
        finally:
            self.function = previous

    def _record(self, function: str, client: Any, operation: str, params: Mapping[str, Any], *, missing: bool) -> None:
        service = client.meta.service_model.service_name
        prefix = _PREFIX.get(service, service)
        entries: set[Entry] = set()
        if prefix == "s3":
            for bucket, action in _s3_actions(operation, params):
                base = self.buckets.get(bucket)
                level = f"{base}-list" if base and _bucket_level(action) else base
                entries.add((level, action))
                if missing and action in ("s3:GetObject", "s3:GetObjectVersion"):
                    # Without ListBucket a missing object answers 403, not the 404 the code relies on.
                    entries.add((f"{base}-list" if base else None, "s3:ListBucket"))
        elif prefix == "dynamodb":
            entries.update((None, a) for a in _dynamodb_actions(operation, params))
        elif prefix == "secretsmanager":
            secret = str(params.get("SecretId", ""))
            key = next((k for p, k in self.secrets.items() if secret.startswith(p)), None)
            entries.add((key, f"secretsmanager:{operation}"))
        elif prefix == "sqs":
            action = _RENAMED.get(f"sqs:{operation}", f"sqs:{operation}")
            entries.add((self.queues.get(str(params.get("QueueUrl", ""))), action))
        else:
            action = f"{prefix}:{operation}"
            entries.add((None, _RENAMED.get(action, action)))
            if prefix == "ec2" and params.get("TagSpecifications"):
                entries.add((None, "ec2:CreateTags"))  # tags on create need CreateTags too
        self.recorded[function].update(entries)


@dataclass(frozen=True)
class Comparison:
    """One function's recorded actions against its row of infra/iam-actions.json."""

    outside: list[str]  # recorded, not granted: the role would refuse the call
    unreached: dict[str, str | None]  # granted, not recorded: action -> its reason in the row (None: no reason)
    stale_reasons: list[str]  # a reason for an action the flows do reach, or one the row does not grant


def compare(recorded: set[Entry], row: Mapping[str, Any]) -> Comparison:
    reasons: Mapping[str, str] = row.get("reason", {})
    granted = {(key, action) for key, actions in row.items() if key != "reason" for action in actions}
    granted_actions = {action for _, action in granted}
    outside = sorted(
        f"{key or '?'} {action}"
        for key, action in recorded
        if ((key, action) not in granted if key else action not in granted_actions)
    )
    reached = {(key, action) for key, action in granted if (key, action) in recorded or (None, action) in recorded}
    unreached_actions = {action for _, action in granted - reached}
    unreached = {action: reasons.get(action) for action in sorted(unreached_actions)}
    stale = sorted(set(reasons) - unreached_actions)
    return Comparison(outside, unreached, stale)


class UnreachedOnMoto(UserWarning):
    """An action of a function's row that its flows on moto do not call (each has a reason in the row)."""


def check_rows(
    recorder: Recorder, table: Mapping[str, Any], functions: Iterable[str], *, partial: bool = False
) -> None:
    """Each function called only what its row of ``table`` grants, and its row grants nothing unreached without a
    reason (``partial``: only the first; the caller drove some of the function's flows, another test drives them
    all). Unreached actions are reported as ``UnreachedOnMoto`` warnings."""
    failures = []
    for function in functions:
        row = table[function]
        result = compare(recorder.recorded[function], row)
        _write_record(function, recorder.recorded[function])
        if partial:
            result = dataclasses.replace(result, unreached={}, stale_reasons=[])
        unexplained = sorted(a for a, reason in result.unreached.items() if not reason)
        problems = {
            "calls what its role does not grant": result.outside,
            "grants what no flow reaches and no reason explains": unexplained,
            "gives reasons for actions its flows reach, or does not grant": result.stale_reasons,
        }
        if any(problems.values()):
            failures.append(f"{function}: " + "; ".join(f"{k}: {v}" for k, v in problems.items() if v))
        if result.unreached:
            listed = "; ".join(f"{a} ({reason})" for a, reason in result.unreached.items())
            warnings.warn(UnreachedOnMoto(f"{function}: not reached on moto: {listed}"), stacklevel=3)
    assert not failures, "\n".join(failures)


def _write_record(function: str, entries: set[tuple[str | None, str]]) -> None:
    """With LIFEBOAT_IAM_RECORD set, add what ``function`` called to that JSON file (function -> "key action")."""
    path = os.environ.get("LIFEBOAT_IAM_RECORD")
    if not path:
        return
    recorded = json.loads(Path(path).read_text()) if Path(path).exists() else {}
    calls = set(recorded.get(function, [])) | {f"{key or '*'} {action}" for key, action in entries}
    recorded[function] = sorted(calls)
    Path(path).write_text(json.dumps(recorded, indent=1, sort_keys=True))
