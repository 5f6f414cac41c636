"""Pytest plugin: records every AWS operation each app.py handler makes (``-p tests.support.iam_recorder``).

The operations are attributed to the Lambda function whose handler in app.py is on the call stack, and written as
JSON (function -> sorted IAM-style actions) to the path in LIFEBOAT_IAM_RECORD when the session ends.
"""

from __future__ import annotations

import json
import os
import sys
from collections import defaultdict
from typing import Any

import botocore.client
import pytest

_ROUTES = {
    "create_restore",
    "get_restore",
    "list_backups",
    "list_policies",
    "apply_policies",
    "get_policy",
    "delete_policy",
}
_RECORDED: dict[str, set[str]] = defaultdict(set)
_original = botocore.client.BaseClient._make_api_call
# Operations whose IAM action has another name.
_ACTIONS = {
    "s3:HeadObject": ["s3:GetObject"],
    "s3:ListObjectsV2": ["s3:ListBucket"],
    "s3:CopyObject": ["s3:GetObject", "s3:PutObject"],
    "s3:CreateMultipartUpload": ["s3:PutObject"],
    "s3:UploadPart": ["s3:PutObject"],
    "s3:CompleteMultipartUpload": ["s3:PutObject"],
    "dynamodb:TransactWriteItems": ["dynamodb:UpdateItem"],
}


def missing_from_table(recorded: dict[str, list[str]], table: dict[str, Any]) -> dict[str, list[str]]:
    """Actions recorded for a function that infra/iam-actions.json does not grant it."""
    missing = {}
    for function, operations in recorded.items():
        granted = {a for key, acts in table.get(function, {}).items() if key != "reason" for a in acts}
        needed = {a for op in operations for a in _ACTIONS.get(op, [op])}
        if needed - granted:
            missing[function] = sorted(needed - granted)
    return missing


def _function_on_stack() -> str | None:
    frame = sys._getframe(2)
    while frame is not None:
        if os.path.basename(frame.f_code.co_filename) == "app.py":
            name = frame.f_code.co_name
            return "api_handler" if name in _ROUTES else name
        frame = frame.f_back  # type: ignore[assignment]
    return None


def _recording_call(self: Any, operation_name: str, api_params: Any) -> Any:
    function = _function_on_stack()
    if function is not None:
        prefix = self.meta.service_model.signing_name
        _RECORDED[function].add(f"{prefix}:{operation_name}")
    return _original(self, operation_name, api_params)


def pytest_configure(config: pytest.Config) -> None:
    botocore.client.BaseClient._make_api_call = _recording_call  # type: ignore[method-assign]


def pytest_unconfigure(config: pytest.Config) -> None:
    botocore.client.BaseClient._make_api_call = _original  # type: ignore[method-assign]
    path = os.environ.get("LIFEBOAT_IAM_RECORD")
    if path:
        with open(path, "w") as out:
            json.dump({k: sorted(v) for k, v in sorted(_RECORDED.items())}, out, indent=1)
