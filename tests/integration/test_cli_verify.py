"""``lifeboat verify run`` and ``lifeboat verifications``: a run from the command line, listed and described."""

from __future__ import annotations

import json
import uuid
from typing import Any

import pytest

from chalicelib.cli.main import main
from chalicelib.cli.output import EXIT_ERROR, EXIT_OK
from chalicelib.core.policies import Policy
from tests.conftest import TEST_BUCKET, TEST_TABLE
from tests.support.api import register_test_cluster
from tests.support.verification import apply_policy, back_up

AWS = ["--table", TEST_TABLE, "--bucket", TEST_BUCKET, "--region", "us-east-1"]


def _cli(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str]:
    capsys.readouterr()
    code = main(list(argv))
    captured = capsys.readouterr()
    return code, captured.out + captured.err


@pytest.fixture
def registered(services: Any, kubeconfig_path: Any) -> str:
    return register_test_cluster(services, kubeconfig_path.read_text(), "verify")


def _policy(services: Any, cluster: str, namespaces: list[str]) -> Policy:
    return apply_policy(services, namespaces, {"schedule": "0 4 * * 0", "rto_target_minutes": 15}, cluster=cluster)


def test_verify_run_then_list_and_describe(
    capsys: Any, services: Any, registered: str, kubeconfig_path: Any, app_ns: Any
) -> None:
    policy = _policy(services, registered, list(app_ns.namespaces))
    backup = back_up(services, kubeconfig_path, policy)

    capsys.readouterr()
    code = main(["verify", "run", policy.name, *AWS, "--output", "json"])
    out = capsys.readouterr().out
    assert code == EXIT_OK, out
    result = json.loads(out)
    assert result["state"] == "Succeeded" and result["backup_id"] == backup.backup_id
    assert result["rto_s"] > 0 and result["rto_target_minutes"] == 15

    code, out = _cli(capsys, "verifications", "list", policy.name, *AWS)
    assert code == EXIT_OK and result["verification_id"] in out and "Succeeded" in out

    code, out = _cli(capsys, "verifications", "describe", result["verification_id"], *AWS)
    assert code == EXIT_OK
    assert f"verification {result['verification_id']} of {policy.name}: Succeeded" in out
    assert "vs target 15 min" in out and "phases: fetch" in out

    capsys.readouterr()
    main(["status", *AWS, "--output", "json"])
    (mine,) = [s for s in json.loads(capsys.readouterr().out) if s["name"] == policy.name]
    assert mine["verification"]["verified_backup_id"] == backup.backup_id
    assert mine["verification"]["rto_target_minutes"] == 15 and mine["verification"]["overdue"] is False
    code, out = _cli(capsys, "status", *AWS)
    assert "Restore verification" in out and policy.name in out


def test_verify_run_without_a_backup_exits_1_saying_why(capsys: Any, services: Any, registered: str) -> None:
    policy = _policy(services, registered, ["shop"])

    code, out = _cli(capsys, "verify", "run", policy.name, *AWS)

    assert code == EXIT_ERROR
    assert f"policy {policy.name!r} has no Completed backup to verify" in out


def test_an_unknown_verification_is_one_sentence(capsys: Any, services: Any) -> None:
    code, out = _cli(capsys, "verifications", "describe", "v000000000000", *AWS)
    assert code == EXIT_ERROR
    assert "verification 'v000000000000' is not in the catalog" in out


def test_verify_run_queues_to_the_deployment_and_waits_for_its_end(
    capsys: Any, services: Any, registered: str, kubeconfig_path: Any, app_ns: Any, monkeypatch: Any
) -> None:
    import threading

    from chalicelib.services import Services
    from chalicelib.settings import Settings

    policy = _policy(services, registered, list(app_ns.namespaces))
    back_up(services, kubeconfig_path, policy)
    sqs = services.client("sqs")
    url = sqs.create_queue(QueueName=f"verify-{uuid.uuid4().hex[:6]}")["QueueUrl"]
    monkeypatch.setenv("LIFEBOAT_VERIFICATION_QUEUE_URL", url)

    code, out = _cli(capsys, "verify", "run", policy.name, *AWS)
    assert code == EXIT_OK and "queued" in out
    (queued,) = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10)["Messages"]
    sqs.delete_message(QueueUrl=url, ReceiptHandle=queued["ReceiptHandle"])

    lambda_side = Services(
        Settings(table=TEST_TABLE, bucket=TEST_BUCKET, region="us-east-1", verification_queue_url=url)
    )

    def deployment() -> None:  # what the verification_worker function does with the next message
        for _ in range(60):
            got = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=1, WaitTimeSeconds=1).get("Messages", [])
            if got:
                lambda_side.verification_worker().handle_message(got[0]["Body"])
                return

    worker = threading.Thread(target=deployment)
    worker.start()
    capsys.readouterr()
    code = main(["verify", "run", policy.name, *AWS, "--wait", "--output", "json"])
    worker.join()
    out = capsys.readouterr().out
    # The deployment's side ran in this process too and logged to stdout; the command's answer is the indented doc.
    result = json.loads(out[out.index("{\n") :])

    assert code == EXIT_OK and result["state"] == "Succeeded" and result["policy"] == policy.name
