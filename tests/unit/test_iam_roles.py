"""infra/lifeboat.yaml's function roles grant exactly the actions in infra/iam-actions.json, never "*"."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[2]
# Actions without resource-level permissions: AWS requires Resource "*".
RESOURCE_STAR_ALLOWED = {"ec2:DescribeSnapshots", "sts:GetCallerIdentity", "cloudwatch:PutMetricData"}
FUNCTIONS = {
    "api_handler",
    "backup_worker",
    "run_backup",
    "restore_worker",
    "verification_worker",
    "etcd_verifier",
    "replicator",
    "replication_reconciler",
    "ebs_snapshot_events",
    "ebs_snapshot_poller",
    "dispatcher",
    "maintenance",
    "rpo_monitor",
}


class _Loader(yaml.SafeLoader):
    pass


_Loader.add_multi_constructor("!", lambda loader, suffix, node: f"!{suffix}")


def _template() -> dict[str, Any]:
    return yaml.load((ROOT / "infra" / "lifeboat.yaml").read_text(), Loader=_Loader)  # noqa: S506


def _table() -> dict[str, Any]:
    data = json.loads((ROOT / "infra" / "iam-actions.json").read_text())
    return {name: spec for name, spec in data.items() if not name.startswith("_")}


def _logical_id(function: str) -> str:
    if function == "api_handler":
        return "APIHandlerRole"  # Chalice's logical id for the API function
    return "".join(part.capitalize() for part in function.split("_")) + "Role"


def _statements(role: dict[str, Any]) -> list[dict[str, Any]]:
    return [s for p in role["Properties"]["Policies"] for s in p["PolicyDocument"]["Statement"]]


def _as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


def test_every_function_has_a_role_and_a_table_entry() -> None:
    resources = _template()["Resources"]
    assert set(_table()) == FUNCTIONS
    for function in FUNCTIONS:
        assert resources[_logical_id(function)]["Type"] == "AWS::IAM::Role"


def test_role_actions_equal_the_table() -> None:
    resources = _template()["Resources"]
    for function, spec in _table().items():
        granted = {a for s in _statements(resources[_logical_id(function)]) for a in _as_list(s["Action"])}
        wanted = {a for key, acts in spec.items() if key != "reason" for a in acts}
        assert granted == wanted, function


def test_no_star_actions_and_star_resources_only_where_required() -> None:
    resources = _template()["Resources"]
    for function in FUNCTIONS:
        for statement in _statements(resources[_logical_id(function)]):
            actions = _as_list(statement["Action"])
            assert not any("*" in a for a in actions), function
            if "*" in _as_list(statement["Resource"]):
                assert set(actions) <= RESOURCE_STAR_ALLOWED, (function, actions)


def test_least_privilege_rules_of_the_issue() -> None:
    table = _table()

    def actions(function: str, *keys: str) -> set[str]:
        return {a for k in keys for a in table[function].get(k, [])}

    everything = {f: actions(f, *[k for k in table[f] if k != "reason"]) for f in table}
    assert not any(a.startswith("s3:Delete") for a in everything["api_handler"])
    deleting_primary = {f for f in table if any(a.startswith("s3:Delete") for a in actions(f, "bucket"))}
    assert deleting_primary == {"maintenance"}
    # Only replication writes the replica bucket (the replicator, and its reconciler, which replicates the backups
    # whose events were lost); the restore and verification workers may read it. Nothing else deletes there either.
    writing_replica = {f for f in table if any(not a.startswith("s3:Get") for a in actions(f, "replica"))}
    assert writing_replica == {"replicator", "replication_reconciler"}
    assert {f for f in table if any(a.startswith("s3:") for a in actions(f, "replica-list", "replica"))} == {
        "replicator",
        "replication_reconciler",
        "restore_worker",
        "verification_worker",
    }
    # Only the snapshot functions touch EC2 snapshots: the backup worker takes EBS snapshots (its volume stage),
    # the EBS functions settle and copy them, maintenance deletes those no backup records any more.
    assert {f for f in table if any(a.startswith("ec2:") for a in everything[f])} == {
        "backup_worker",
        "run_backup",
        "ebs_snapshot_events",
        "ebs_snapshot_poller",
        "maintenance",
    }
    assert {f for f in table if "ec2:DeleteSnapshot" in everything[f]} == {"maintenance"}
    # The internet-facing API handler: no S3 or EC2 at all, the key only through DynamoDB and SQS; of the secrets,
    # only the API clients' keys, which verifying a request's signature (and so resolving its grant) needs; never a
    # cluster's credentials.
    assert not any(a.startswith(("s3:", "ec2:")) for a in everything["api_handler"])
    assert not any(a.startswith("kms:") for a in everything["api_handler"] - actions("api_handler", "key-via-services"))
    assert "secrets" not in table["api_handler"]
    assert table["api_handler"]["api-client-secrets"] == ["secretsmanager:GetSecretValue"]
    assert {f for f in table if "api-client-secrets" in table[f]} == {"api_handler"}


def test_recorded_calls_outside_a_row_are_reported() -> None:
    from tests.support.iam_actions import compare

    table = _table()
    assert compare({("replica", "s3:PutObject"), ("bucket", "s3:GetObject")}, table["replicator"]).outside == []
    assert compare({("bucket", "s3:DeleteObject")}, table["api_handler"]).outside == ["bucket s3:DeleteObject"]


def test_every_reason_names_an_action_of_its_row() -> None:
    for function, spec in _table().items():
        granted = {a for key, acts in spec.items() if key != "reason" for a in acts}
        assert set(spec.get("reason", {})) <= granted, function
        assert all(isinstance(r, str) and r for r in spec.get("reason", {}).values()), function


def test_the_roles_section_is_written_from_the_table() -> None:
    import subprocess
    import sys

    check = subprocess.run([sys.executable, "infra/iam_roles.py", "--check"], cwd=ROOT)
    assert check.returncode == 0, "the template's roles differ from infra/iam-actions.json: run infra/iam_roles.py"


QUEUES = ("backup-queue", "restore-queue", "verification-queue", "replication-queue")


def test_the_key_is_granted_through_dynamodb_and_sqs_to_every_function_that_uses_them() -> None:
    # The catalog table and the queues are encrypted with the repository key: DynamoDB and SQS call KMS with the
    # caller's permissions, so a function that reads the table or a queue needs kms:Decrypt, and one that sends to
    # a queue kms:GenerateDataKey too; through those services only.
    for function, spec in _table().items():
        uses = bool(spec.get("table")) or any(spec.get(q) for q in QUEUES)
        sends = any("sqs:SendMessage" in spec.get(q, []) for q in QUEUES)
        wanted = ["kms:GenerateDataKey", "kms:Decrypt"] if sends else ["kms:Decrypt"] if uses else None
        assert spec.get("key-via-services") == wanted, function
    role = _template()["Resources"]["APIHandlerRole"]
    [statement] = [s for s in _statements(role) if "kms:Decrypt" in _as_list(s["Action"])]
    assert list(statement["Condition"]["StringEquals"]) == ["kms:ViaService"]
    text = (ROOT / "infra" / "lifeboat.yaml").read_text()
    via = (
        "kms:ViaService:\n"
        '                      - !Sub "dynamodb.${AWS::Region}.amazonaws.com"\n'
        '                      - !Sub "sqs.${AWS::Region}.amazonaws.com"\n'
    )
    users = sum("key-via-services" in spec for spec in _table().values())
    assert text.count("kms:ViaService:") == text.count(via) == users


def test_each_queue_is_polled_only_by_its_worker() -> None:
    poll = {"sqs:ReceiveMessage", "sqs:DeleteMessage", "sqs:GetQueueAttributes"}
    polling = {(f, q) for f, spec in _table().items() for q in QUEUES if poll <= set(spec.get(q, []))}
    assert polling == {
        ("backup_worker", "backup-queue"),
        ("restore_worker", "restore-queue"),
        ("verification_worker", "verification-queue"),
        ("replicator", "replication-queue"),
    }
    assert not any(set(spec.get(q, [])) & poll for f, spec in _table().items() for q in QUEUES if (f, q) not in polling)
