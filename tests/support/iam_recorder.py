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
