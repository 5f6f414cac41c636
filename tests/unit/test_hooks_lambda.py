"""Lambda hooks: the invoke adapter (a stubbed client: moto runs Lambda functions only with docker) and the runner's
on_error and timeout semantics around it."""

from __future__ import annotations

import io
import json
import time
from typing import Any

import boto3
import pytest
from botocore.stub import Stubber

from chalicelib.aws.errors import NotFound
from chalicelib.aws.functions import FunctionFailed, FunctionInvoker
from chalicelib.backup.hooks import HookContext, HookFailed, HookRunner
from chalicelib.core.hooks import HookSettings

CONTEXT = HookContext("20260101T000000Z-abcdef", "prod", "shop")


def _client() -> Any:
    return boto3.client("lambda", region_name="us-east-1", aws_access_key_id="x", aws_secret_access_key="x")


def test_invoke_sends_the_payload_and_reads_the_answer() -> None:
    client = _client()
    with Stubber(client) as stub:
        expected = {
            "FunctionName": "quiesce",
            "InvocationType": "RequestResponse",
            "Payload": json.dumps(CONTEXT.payload("pre")).encode(),
        }
        stub.add_response("invoke", {"StatusCode": 200, "Payload": io.BytesIO(b'{"ok": true}')}, expected)
        assert FunctionInvoker(client).invoke("quiesce", CONTEXT.payload("pre")) == {"ok": True}


def test_function_error_and_missing_function_are_named() -> None:
    client = _client()
    with Stubber(client) as stub:
        answer = b'{"errorType": "RuntimeError", "errorMessage": "lock held"}'
        stub.add_response("invoke", {"StatusCode": 200, "FunctionError": "Unhandled", "Payload": io.BytesIO(answer)})
        stub.add_client_error("invoke", "ResourceNotFoundException", "Function not found: gone", 404)
        with pytest.raises(FunctionFailed, match="'quiesce' failed: RuntimeError: lock held"):
            FunctionInvoker(client).invoke("quiesce", {})
        with pytest.raises(NotFound, match="'gone'"):
            FunctionInvoker(client).invoke("gone", {})


class _Functions:
    def __init__(self, delay: float = 0.0, fail: bool = False) -> None:
        self.delay, self.fail = delay, fail
        self.calls: list[Any] = []

    def invoke(self, function: str, payload: dict[str, Any]) -> None:
        self.calls.append((function, payload))
        time.sleep(self.delay)
        if self.fail:
            raise FunctionFailed(f"Lambda function {function!r} failed: boom", "Unhandled")


def _settings(**body: Any) -> HookSettings:
    return HookSettings.from_dict({"pre": [{"lambda": {"function": "quiesce", **body}}]})


def test_runner_fail_raises_with_the_hook_named() -> None:
    functions = _Functions(fail=True)
    runner = HookRunner(functions=lambda: functions)
    with pytest.raises(HookFailed, match=r"pre hook 1 \(lambda quiesce\) failed: .*boom; on_error is fail"):
        runner.run("pre", _settings().pre, CONTEXT, None)
    assert functions.calls == [("quiesce", CONTEXT.payload("pre"))]


def test_runner_continue_records_and_timeout_applies() -> None:
    functions = _Functions(delay=1.0)
    runner = HookRunner(functions=lambda: functions)
    started = time.monotonic()
    errors = runner.run("pre", _settings(on_error="continue", timeout=0.2).pre, CONTEXT, None)
    assert time.monotonic() - started < 0.9
    assert errors == [{"resource": "hook/pre", "error": "pre hook 1 (lambda quiesce) failed: no answer within 0.2s"}]


def test_a_kind_without_its_backend_fails_clearly() -> None:
    with pytest.raises(HookFailed, match="Lambda hooks are not configured"):
        HookRunner().run("pre", _settings().pre, CONTEXT, None)
    exec_hook = HookSettings.from_dict({"post": [{"exec": {"namespace": "a", "pod": "b", "command": ["x"]}}]})
    [error] = HookRunner().run("post", exec_hook.post, CONTEXT, None)
    assert "the cluster could not be reached" in error["error"]
