"""`chalice package` merged with infra/lifeboat.yaml and completed by infra/deploy.py."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from infra import deploy

ROOT = Path(__file__).resolve().parents[2]
ROLE = """  {name}Role:
    Type: AWS::IAM::Role
    Properties:
      AssumeRolePolicyDocument:
        Version: "2012-10-17"
        Statement:
          - Effect: Allow
            Principal: {{Service: lambda.amazonaws.com}}
            Action: sts:AssumeRole
"""


def _function_ids(template: dict[str, Any]) -> list[str]:
    return sorted(k for k, v in template["Resources"].items() if v["Type"] == deploy.FUNCTION_TYPE)


def _with_roles(tmp_path: Path, names: list[str]) -> Path:
    """infra/lifeboat.yaml plus one stand-in role per function (the real roles live under '# Function roles')."""
    text = deploy.INFRA_TEMPLATE.read_text()
    present = [n for n in names if f"\n  {n}Role:\n" not in text]
    roles = "".join(ROLE.format(name=n) for n in present)
    merged = tmp_path / "merge.yaml"
    merged.write_text(text.replace("Resources:\n", "Resources:\n" + roles, 1))
    return merged


@pytest.fixture(scope="module")
def packaged(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    tmp = tmp_path_factory.mktemp("package")
    names = [
        "APIHandler", "BackupWorker", "Dispatcher", "EbsSnapshotEvents", "EbsSnapshotPoller", "EtcdVerifier",
        "Maintenance", "ReplicationReconciler", "Replicator", "RestoreWorker", "RpoMonitor", "RunBackup",
        "VerificationWorker",
    ]  # fmt: skip
    path = deploy.package("dev", tmp / "out", _with_roles(tmp, names))
    return {"path": path, "template": json.loads(path.read_text()), "names": names}


def test_every_function_runs_as_its_own_role_from_the_template(packaged: dict[str, Any]) -> None:
    template = packaged["template"]
    assert _function_ids(template) == packaged["names"]
    for lid in _function_ids(template):
        props = template["Resources"][lid]["Properties"]
        assert props["Role"] == {"Fn::GetAtt": [f"{lid}Role", "Arn"]}
        assert template["Resources"][lid]["Condition"] == "IsPrimary"


def test_environment_refers_to_the_stack_and_no_account_id_is_typed(packaged: dict[str, Any]) -> None:
    template = packaged["template"]
    env = template["Resources"]["BackupWorker"]["Properties"]["Environment"]["Variables"]
    assert env["LIFEBOAT_TABLE"] == {"Ref": "Table"}
    assert env["LIFEBOAT_BUCKET"] == {"Ref": "Bucket"}
    assert env["LIFEBOAT_BACKUP_QUEUE_URL"] == {"Ref": "BackupJobsQueue"}
    assert env["LIFEBOAT_REPLICA_BUCKET"] == {"Ref": "ReplicaBucketName"}
    # API clients' keys are per client (`lifeboat api-clients add`), not one secret the stack makes.
    assert not any("SecretsManager" in r["Type"] for r in template["Resources"].values())
    text = packaged["path"].read_text()
    assert "111111111111" not in text and "222222222222" not in text and "000000000000" not in text
    config = (ROOT / ".chalice" / "config.json").read_text()
    assert "sqs.us-east-1.amazonaws.com" not in config and "111111111111" not in config


def test_queue_event_sources_reference_the_template_queues(packaged: dict[str, Any]) -> None:
    resources = packaged["template"]["Resources"]
    queues = {
        lid: next(iter(resources[lid]["Properties"]["Events"].values()))["Properties"]["Queue"]
        for lid in ("BackupWorker", "RestoreWorker", "VerificationWorker", "Replicator")
    }
    assert queues == {
        "BackupWorker": {"Fn::GetAtt": ["BackupJobsQueue", "Arn"]},
        "RestoreWorker": {"Fn::GetAtt": ["RestoreJobsQueue", "Arn"]},
        "VerificationWorker": {"Fn::GetAtt": ["VerificationJobsQueue", "Arn"]},
        "Replicator": {"Fn::GetAtt": ["ReplicationQueue", "Arn"]},
    }


def test_each_function_may_poll_the_queue_it_reads_and_decrypt_its_messages(packaged: dict[str, Any]) -> None:
    # A role given to a function replaces the one SAM would create with its SQS poller policy: the role has to grant
    # the polling itself, or the event source mapping cannot be created.
    resources = packaged["template"]["Resources"]
    readers = {
        lid: event["Properties"]["Queue"]
        for lid in _function_ids(packaged["template"])
        for event in resources[lid]["Properties"].get("Events", {}).values()
        if event["Type"] == "SQS"
    }
    assert len(readers) == 4
    for lid, queue in readers.items():
        statements = [
            s for p in resources[f"{lid}Role"]["Properties"]["Policies"] for s in p["PolicyDocument"]["Statement"]
        ]
        polling = {a for s in statements if queue in s["Resource"] for a in s["Action"]}
        assert {"sqs:ReceiveMessage", "sqs:DeleteMessage", "sqs:GetQueueAttributes"} <= polling, lid
        key = [s for s in statements if {"Fn::GetAtt": ["Key", "Arn"]} in s["Resource"] and "Condition" in s]
        assert any("kms:Decrypt" in s["Action"] for s in key), lid


def test_functions_join_the_vpc_only_when_subnets_are_given(packaged: dict[str, Any]) -> None:
    template = packaged["template"]
    vpc = template["Resources"]["Replicator"]["Properties"]["VpcConfig"]
    assert vpc["Fn::If"][0] == "HasVpc"
    assert vpc["Fn::If"][1]["SubnetIds"] == {"Ref": "SubnetIds"}
    assert template["Parameters"]["SubnetIds"]["Default"] == ""
    policy = "arn:${AWS::Partition}:iam::aws:policy/service-role/"
    for lid in _function_ids(template):
        # Lambda creates a VPC function's network interfaces with the function's role.
        assert template["Resources"][f"{lid}Role"]["Properties"]["ManagedPolicyArns"] == [
            {
                "Fn::If": [
                    "HasVpc",
                    {"Fn::Sub": policy + "AWSLambdaVPCAccessExecutionRole"},
                    {"Fn::Sub": policy + "AWSLambdaBasicExecutionRole"},
                ]
            }
        ], lid


def test_merged_template_passes_cfn_lint(packaged: dict[str, Any]) -> None:
    lint = Path(sys.executable).with_name("cfn-lint")
    result = subprocess.run([str(lint), str(packaged["path"])], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


def test_packaging_fails_naming_every_missing_role() -> None:
    template = yaml.safe_load(
        "Resources:\n  BackupWorker: {Type: 'AWS::Serverless::Function', Properties: {}}\n"
        "  RunBackup: {Type: 'AWS::Serverless::Function', Properties: {}}\n"
        "  RunBackupRole: {Type: 'AWS::IAM::Role', Properties: {}}\n"
    )
    with pytest.raises(deploy.PackagingError, match=r"BackupWorkerRole") as error:
        deploy.complete(template, {"Resources": {}})
    assert "RunBackupRole" not in str(error.value)
