"""infra/lifeboat.yaml: lint-clean, consistent with the catalog schema, deployable (into moto) for both roles.

moto's CloudFormation creates the KMS key and alias, the bucket (name, region, default encryption), the table,
the queues (visibility timeout, redrive, KMS key), the topic and the failure-events rule. It skips
AWS::S3::BucketPolicy, AWS::SQS::QueuePolicy, AWS::SNS::TopicPolicy and AWS::CloudWatch::Alarm, and ignores the
bucket's versioning, Object Lock, public access block, lifecycle and notification properties and the table's TTL,
PITR and SSE settings. Those are asserted on the template itself (and cfn-lint validates them against the resource
schemas).
"""

from __future__ import annotations

import json
import re
import warnings
from pathlib import Path
from typing import Any

import pytest
import yaml

from chalicelib.catalog.schema import TTL_ATTRIBUTE, table_definition

TEMPLATE = Path(__file__).resolve().parents[2] / "infra" / "lifeboat.yaml"
WORKER_TIMEOUT = 900  # seconds, .chalice/config.json's backup_worker and restore_worker
QUEUES = {
    "BackupJobsQueue": "BackupJobsDeadLetterQueue",
    "RestoreJobsQueue": "RestoreJobsDeadLetterQueue",
    "VerificationJobsQueue": "VerificationJobsDeadLetterQueue",
    "ReplicationQueue": "ReplicationDeadLetterQueue",
}
UNSUPPORTED_BY_MOTO = {
    "primary": {
        "AWS::S3::BucketPolicy",
        "AWS::SQS::QueuePolicy",
        "AWS::CloudWatch::Alarm",
        "AWS::SNS::TopicPolicy",
    },
    "replica": {"AWS::S3::BucketPolicy"},
}


class _CfnLoader(yaml.SafeLoader):
    """Reads CloudFormation's short-form tags (!Ref, !Sub, ...) into their long JSON form."""


def _intrinsic(loader: yaml.SafeLoader, suffix: str, node: yaml.Node) -> dict[str, Any]:
    value: Any
    if isinstance(node, yaml.ScalarNode):
        value = loader.construct_scalar(node)
        if suffix == "GetAtt":
            value = value.split(".", 1)
    elif isinstance(node, yaml.SequenceNode):
        value = loader.construct_sequence(node, deep=True)
    else:
        value = loader.construct_mapping(node, deep=True)  # type: ignore[arg-type]
    if suffix in ("Ref", "Condition"):
        return {suffix: value}
    return {f"Fn::{suffix}": value}


_CfnLoader.add_multi_constructor("!", _intrinsic)


@pytest.fixture(scope="module")
def template() -> dict[str, Any]:
    return dict(yaml.load(TEMPLATE.read_text(), Loader=_CfnLoader))


def resources(template: dict[str, Any], kind: str) -> dict[str, dict[str, Any]]:
    return {name: r for name, r in template["Resources"].items() if r["Type"] == kind}


# -- static checks ------------------------------------------------------------------------------------------------


def test_cfn_lint_reports_nothing() -> None:
    from cfnlint.api import ManualArgs, lint_file

    matches = lint_file(TEMPLATE, ManualArgs(regions=["us-east-1", "us-west-2"]))
    assert [str(m) for m in matches] == []


def test_cfn_lint_would_catch_a_broken_template(tmp_path: Path) -> None:
    from cfnlint.api import ManualArgs, lint_file

    broken = tmp_path / "broken.yaml"
    broken.write_text(TEMPLATE.read_text().replace("VisibilityTimeout: 5400", "VisibilityTimeout: 99999", 1))
    assert lint_file(broken, ManualArgs(regions=["us-east-1"]))


def test_table_in_template_matches_the_catalog_schema(template: dict[str, Any]) -> None:
    props = template["Resources"]["Table"]["Properties"]
    expected = table_definition("x")
    assert props["BillingMode"] == expected["BillingMode"]
    assert props["KeySchema"] == expected["KeySchema"]
    assert sorted(props["AttributeDefinitions"], key=str) == sorted(expected["AttributeDefinitions"], key=str)
    assert props["GlobalSecondaryIndexes"] == expected["GlobalSecondaryIndexes"]
    assert props["TimeToLiveSpecification"] == {"AttributeName": TTL_ATTRIBUTE, "Enabled": True}
    assert props["PointInTimeRecoverySpecification"] == {"PointInTimeRecoveryEnabled": True}
    assert props["SSESpecification"]["SSEEnabled"] is True
    assert props["SSESpecification"]["KMSMasterKeyId"] == {"Ref": "Key"}


def test_bucket_is_encrypted_versioned_lockable_and_private(template: dict[str, Any]) -> None:
    bucket = template["Resources"]["Bucket"]
    assert "Condition" not in bucket  # both roles have a repository bucket
    props = bucket["Properties"]
    (rule,) = props["BucketEncryption"]["ServerSideEncryptionConfiguration"]
    assert rule["ServerSideEncryptionByDefault"] == {
        "SSEAlgorithm": "aws:kms",
        "KMSMasterKeyID": {"Fn::GetAtt": ["Key", "Arn"]},
    }
    assert rule["BucketKeyEnabled"] is True
    assert props["VersioningConfiguration"] == {"Status": "Enabled"}
    assert props["ObjectLockEnabled"] is True
    condition, with_retention, without = props["ObjectLockConfiguration"]["Fn::If"]
    assert condition == "HasRetention" and without == {"Ref": "AWS::NoValue"}
    assert with_retention["Rule"]["DefaultRetention"]["Days"] == {"Ref": "ObjectLockRetentionDays"}
    assert template["Parameters"]["ObjectLockRetentionDays"]["Default"] == 0
    assert template["Conditions"]["HasRetention"] == {
        "Fn::Not": [{"Fn::Equals": [{"Ref": "ObjectLockRetentionDays"}, 0]}]
    }
    assert set(props["PublicAccessBlockConfiguration"].values()) == {True}
    assert len(props["PublicAccessBlockConfiguration"]) == 4
    rules = props["LifecycleConfiguration"]["Rules"]
    assert any(r.get("AbortIncompleteMultipartUpload", {}).get("DaysAfterInitiation") for r in rules)
    assert all(r["Status"] == "Enabled" for r in rules)
    assert template["Resources"]["Key"]["Properties"]["EnableKeyRotation"] is True


def test_immutability_mode_is_governance_in_the_primary_compliance_in_the_replica_and_never_undercut(
    template: dict[str, Any],
) -> None:
    props = template["Resources"]["Bucket"]["Properties"]
    _, with_retention, _ = props["ObjectLockConfiguration"]["Fn::If"]
    assert with_retention["Rule"]["DefaultRetention"]["Mode"] == {
        "Fn::If": ["LockModeByRole", {"Fn::If": ["IsPrimary", "GOVERNANCE", "COMPLIANCE"]}, {"Ref": "ObjectLockMode"}]
    }
    assert template["Parameters"]["ObjectLockMode"]["Default"] == "ByRole"
    assert template["Conditions"]["LockModeByRole"] == {"Fn::Equals": [{"Ref": "ObjectLockMode"}, "ByRole"]}
    (noncurrent,) = [r for r in props["LifecycleConfiguration"]["Rules"] if "NoncurrentVersionExpiration" in r]
    # With retention on, noncurrent versions live the retention's days after turning noncurrent: never less.
    assert noncurrent["NoncurrentVersionExpiration"]["NoncurrentDays"] == {
        "Fn::If": ["HasRetention", {"Ref": "ObjectLockRetentionDays"}, {"Ref": "NoncurrentVersionDays"}]
    }
    assert noncurrent["ExpiredObjectDeleteMarker"] is True


def test_bucket_policy_denies_plain_http(template: dict[str, Any]) -> None:
    (policy,) = resources(template, "AWS::S3::BucketPolicy").values()
    assert policy["Properties"]["Bucket"] == {"Ref": "Bucket"}
    (statement,) = policy["Properties"]["PolicyDocument"]["Statement"]
    assert statement["Effect"] == "Deny" and statement["Principal"] == "*" and statement["Action"] == "s3:*"
    assert statement["Condition"] == {"Bool": {"aws:SecureTransport": "false"}}
    assert statement["Resource"] == [{"Fn::GetAtt": ["Bucket", "Arn"]}, {"Fn::Sub": "${Bucket.Arn}/*"}]


def test_new_objects_notify_the_replication_queue(template: dict[str, Any]) -> None:
    condition, notification, otherwise = template["Resources"]["Bucket"]["Properties"]["NotificationConfiguration"][
        "Fn::If"
    ]
    assert condition == "IsPrimary" and otherwise == {"Ref": "AWS::NoValue"}
    (target,) = notification["QueueConfigurations"]
    assert target["Event"] == "s3:ObjectCreated:*"
    assert target["Queue"] == {"Fn::GetAtt": ["ReplicationQueue", "Arn"]}
    policy = template["Resources"]["ReplicationQueuePolicy"]
    assert policy["Properties"]["Queues"] == [{"Ref": "ReplicationQueue"}]
    (statement,) = [s for s in policy["Properties"]["PolicyDocument"]["Statement"] if s["Effect"] == "Allow"]
    assert statement["Principal"] == {"Service": "s3.amazonaws.com"} and statement["Action"] == "sqs:SendMessage"
    # The queue policy names the bucket by ARN built from the same name formula the bucket uses.
    bucket_name = template["Resources"]["Bucket"]["Properties"]["BucketName"]["Fn::Sub"]
    source = statement["Condition"]["ArnEquals"]["aws:SourceArn"]["Fn::Sub"]
    assert source == f"arn:${{AWS::Partition}}:s3:::{bucket_name}"
    # S3 validates the destination when the notification is set: the policy must be created before the bucket.
    tags = template["Resources"]["Bucket"]["Properties"]["Tags"]["Fn::If"][1]
    assert {"Ref": "ReplicationQueuePolicy"} in [t["Value"] for t in tags]
    statements = template["Resources"]["Key"]["Properties"]["KeyPolicy"]["Statement"]
    services = json.dumps(statements)
    assert "s3.amazonaws.com" in services and "cloudwatch.amazonaws.com" in services


@pytest.mark.parametrize("queue", sorted(QUEUES))
def test_queues_have_dead_letter_queues_kms_and_long_visibility(template: dict[str, Any], queue: str) -> None:
    props = template["Resources"][queue]["Properties"]
    dlq = QUEUES[queue]
    assert props["VisibilityTimeout"] >= 6 * WORKER_TIMEOUT
    assert props["RedrivePolicy"] == {"deadLetterTargetArn": {"Fn::GetAtt": [dlq, "Arn"]}, "maxReceiveCount": 5}
    assert props["KmsMasterKeyId"] == {"Ref": "Key"}
    assert template["Resources"][dlq]["Properties"]["KmsMasterKeyId"] == {"Ref": "Key"}
    assert template["Resources"][queue]["Condition"] == template["Resources"][dlq]["Condition"] == "IsPrimary"


def test_alarms_watch_every_dead_letter_queue_and_failed_backups(template: dict[str, Any]) -> None:
    alarms = resources(template, "AWS::CloudWatch::Alarm").values()
    watched = {
        a["Properties"]["Dimensions"][0]["Value"]["Fn::GetAtt"][0]
        for a in alarms
        if a["Properties"]["Namespace"] == "AWS/SQS"
    }
    assert watched == set(QUEUES.values())
    (failed,) = [a for a in alarms if a["Properties"].get("MetricName") == "BackupsFailed"]
    assert failed["Properties"]["Namespace"] == "Lifeboat"
    assert failed["Properties"]["Threshold"] == 0
    assert failed["Properties"]["ComparisonOperator"] == "GreaterThanThreshold"
    # Replication lag alarms compare against a threshold in seconds (tests/integration/test_replication_infra.py).
    lag_metrics = {"ReplicationLag", "ReplicationBacklogAge"}
    for alarm in alarms:
        assert alarm["Properties"]["AlarmActions"] == [{"Ref": "AlarmTopic"}]
        assert alarm["Properties"]["ComparisonOperator"] == "GreaterThanThreshold"
        if alarm["Properties"].get("MetricName") not in lag_metrics:
            assert alarm["Properties"]["Threshold"] == 0


def test_an_alarm_watches_damaged_blobs_found_by_the_daily_check(template: dict[str, Any]) -> None:
    alarms = resources(template, "AWS::CloudWatch::Alarm")
    [alarm] = [a for a in alarms.values() if a["Properties"]["MetricName"] == "RepositoryDamagedBlobs"]
    props = alarm["Properties"]
    assert props["Namespace"] == "Lifeboat" and props["Threshold"] == 0
    assert props["ComparisonOperator"] == "GreaterThanThreshold"
    assert {"Name": "service", "Value": "lifeboat"} in props["Dimensions"]


def test_every_failure_event_goes_to_the_alarm_topic(template: dict[str, Any]) -> None:
    from chalicelib.core.events import DETAIL_TYPES, FAILURE_TYPES, SOURCE

    rule = template["Resources"]["FailureEventsRule"]
    assert rule["Type"] == "AWS::Events::Rule" and rule["Condition"] == "IsPrimary"
    pattern = rule["Properties"]["EventPattern"]
    assert pattern["source"] == [SOURCE]
    assert set(pattern["detail-type"]) == set(FAILURE_TYPES)
    assert set(pattern["detail-type"]) <= set(DETAIL_TYPES)  # no misspelt type that would never match
    assert rule["Properties"]["Targets"] == [{"Id": "alarm-topic", "Arn": {"Ref": "AlarmTopic"}}]
    # EventBridge may publish to the topic (only from this rule) and use the key that encrypts it.
    (policy,) = resources(template, "AWS::SNS::TopicPolicy").values()
    assert policy["Properties"]["Topics"] == [{"Ref": "AlarmTopic"}]
    statements = policy["Properties"]["PolicyDocument"]["Statement"]
    by_service = {st["Principal"]["Service"]: st for st in statements}
    assert by_service["events.amazonaws.com"]["Action"] == "sns:Publish"
    assert by_service["events.amazonaws.com"]["Condition"] == {
        "ArnEquals": {"aws:SourceArn": {"Fn::GetAtt": ["FailureEventsRule", "Arn"]}}
    }
    assert by_service["cloudwatch.amazonaws.com"]["Action"] == "sns:Publish"  # the alarms keep publishing
    key_statements = template["Resources"]["Key"]["Properties"]["KeyPolicy"]["Statement"]
    services = [st["Fn::If"][1]["Principal"]["Service"] for st in key_statements if "Fn::If" in st]
    assert any("events.amazonaws.com" in s for s in services)


def test_only_storage_exists_in_the_replica_role(template: dict[str, Any]) -> None:
    unconditional = {name for name, r in template["Resources"].items() if "Condition" not in r}
    assert unconditional == {"Key", "KeyAlias", "Bucket", "BucketPolicy"}
    # The VPC endpoints' conditions include IsPrimary (they exist only where the functions run).
    conditions = {r.get("Condition") for r in template["Resources"].values()}
    assert conditions == {None, "IsPrimary", "HasVpcEndpoints", "HasVpcInterfaceEndpoints"}
    def implies_primary(name: str) -> bool:
        if name == "IsPrimary":
            return True
        parts = template["Conditions"][name].get("Fn::And", [])
        return any("Condition" in part and implies_primary(part["Condition"]) for part in parts)

    assert all(implies_primary(name) for name in conditions - {None})


# -- deployment into moto -----------------------------------------------------------------------------------------


def _deploy(region: str, role: str) -> tuple[dict[str, str], set[str]]:
    """Create the stack; returns its outputs and the resource types moto skipped."""
    import boto3

    cloudformation = boto3.client("cloudformation", region_name=region)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        cloudformation.create_stack(
            StackName=f"lifeboat-dev-{role}",
            TemplateBody=TEMPLATE.read_text(),
            Parameters=[{"ParameterKey": "Role", "ParameterValue": role}],
        )
    (stack,) = cloudformation.describe_stacks(StackName=f"lifeboat-dev-{role}")["Stacks"]
    assert stack["StackStatus"] == "CREATE_COMPLETE", stack.get("StackStatusReason")
    skipped = {
        match.group(0)
        for w in caught
        if "not supported by moto" in str(w.message) and (match := re.search(r"AWS::[\w:]+", str(w.message)))
    }
    return {o["OutputKey"]: o["OutputValue"] for o in stack.get("Outputs", [])}, skipped


def _check_storage(region: str, role: str, outputs: dict[str, str]) -> None:
    import boto3

    s3 = boto3.client("s3", region_name=region)
    kms = boto3.client("kms", region_name=region)
    bucket = outputs["BucketName"]
    assert bucket.startswith(f"lifeboat-dev-{role}-") and bucket.endswith(f"-{region}")
    assert outputs["BucketArn"] == f"arn:aws:s3:::{bucket}"
    location = s3.get_bucket_location(Bucket=bucket)["LocationConstraint"]
    assert (location or "us-east-1") == region
    (rule,) = s3.get_bucket_encryption(Bucket=bucket)["ServerSideEncryptionConfiguration"]["Rules"]
    assert rule["ApplyServerSideEncryptionByDefault"] == {
        "SSEAlgorithm": "aws:kms",
        "KMSMasterKeyID": outputs["KeyArn"],
    }
    assert outputs["KeyArn"].startswith(f"arn:aws:kms:{region}:")
    assert kms.get_key_rotation_status(KeyId=outputs["KeyArn"])["KeyRotationEnabled"] is True
    aliases = kms.list_aliases(KeyId=outputs["KeyArn"])["Aliases"]
    assert [a["AliasName"] for a in aliases] == ["alias/lifeboat-dev"] == [outputs["KeyAlias"]]


def _check_catalog_and_queues(region: str, outputs: dict[str, str]) -> None:
    import boto3

    dynamodb = boto3.client("dynamodb", region_name=region)
    sqs = boto3.client("sqs", region_name=region)
    table = dynamodb.describe_table(TableName=outputs["TableName"])["Table"]
    expected = table_definition(outputs["TableName"])
    assert table["KeySchema"] == expected["KeySchema"]
    assert sorted(table["AttributeDefinitions"], key=str) == sorted(expected["AttributeDefinitions"], key=str)
    indexes = {i["IndexName"]: (i["KeySchema"], i["Projection"]) for i in table["GlobalSecondaryIndexes"]}
    assert indexes == {i["IndexName"]: (i["KeySchema"], i["Projection"]) for i in expected["GlobalSecondaryIndexes"]}
    assert table["BillingModeSummary"]["BillingMode"] == "PAY_PER_REQUEST"
    # describe_key would fit, but moto fails on a key whose policy came from a template as an object.
    key_id = outputs["KeyArn"].rsplit("/", 1)[1]
    for name in ("BackupJobs", "RestoreJobs", "Replication"):
        attributes = sqs.get_queue_attributes(QueueUrl=outputs[f"{name}QueueUrl"], AttributeNames=["All"])["Attributes"]
        assert attributes["QueueArn"] == outputs[f"{name}QueueArn"]
        assert int(attributes["VisibilityTimeout"]) >= 6 * WORKER_TIMEOUT
        assert attributes["KmsMasterKeyId"] == key_id
        redrive = json.loads(attributes["RedrivePolicy"])
        assert redrive["maxReceiveCount"] == 5
        dlq_url = outputs[f"{name}DeadLetterQueueUrl"]
        dlq = sqs.get_queue_attributes(QueueUrl=dlq_url, AttributeNames=["QueueArn", "KmsMasterKeyId"])["Attributes"]
        assert redrive["deadLetterTargetArn"] == dlq["QueueArn"]
        assert dlq["KmsMasterKeyId"] == key_id
    topics = [t["TopicArn"] for t in boto3.client("sns", region_name=region).list_topics()["Topics"]]
    assert outputs["AlarmTopicArn"] in topics
    events = boto3.client("events", region_name=region)
    (rule,) = events.list_rules(NamePrefix="lifeboat-dev-failures")["Rules"]
    assert json.loads(rule["EventPattern"])["source"] == ["lifeboat"]
    targets = events.list_targets_by_rule(Rule=rule["Name"])["Targets"]
    assert [t["Arn"] for t in targets] == [outputs["AlarmTopicArn"]]


@pytest.mark.parametrize(("primary_region", "replica_region"), [("us-east-1", "us-west-2"), ("us-west-2", "us-east-1")])
def test_both_roles_deploy(aws: None, primary_region: str, replica_region: str) -> None:
    import boto3

    primary, skipped_primary = _deploy(primary_region, "primary")
    replica, skipped_replica = _deploy(replica_region, "replica")
    assert skipped_primary == UNSUPPORTED_BY_MOTO["primary"]
    assert skipped_replica == UNSUPPORTED_BY_MOTO["replica"]

    _check_storage(primary_region, "primary", primary)
    _check_storage(replica_region, "replica", replica)
    assert primary["KeyArn"] != replica["KeyArn"]
    _check_catalog_and_queues(primary_region, primary)

    # The replica stack holds storage only: no catalog, queues or topic of its own.
    assert set(replica) == {"BucketName", "BucketArn", "KeyArn", "KeyAlias"}
    assert boto3.client("dynamodb", region_name=replica_region).list_tables()["TableNames"] == []
    assert boto3.client("sqs", region_name=replica_region).list_queues().get("QueueUrls", []) == []


def test_every_queue_denies_plain_http(template: dict[str, Any]) -> None:
    denied: set[str] = set()
    for policy in resources(template, "AWS::SQS::QueuePolicy").values():
        for statement in policy["Properties"]["PolicyDocument"]["Statement"]:
            if statement["Effect"] != "Deny":
                continue
            assert statement["Principal"] == "*" and statement["Action"] == "sqs:*"
            assert statement["Condition"] == {"Bool": {"aws:SecureTransport": "false"}}
            resources_ = statement["Resource"] if isinstance(statement["Resource"], list) else [statement["Resource"]]
            arns = {r["Fn::GetAtt"][0] for r in resources_}
            assert {q["Ref"] for q in policy["Properties"]["Queues"]} == arns
            denied |= arns
    assert denied == set(resources(template, "AWS::SQS::Queue"))


def test_verification_alarms_watch_failures_rto_and_overdue_runs(template: dict[str, Any]) -> None:
    alarms = {
        a["Properties"].get("MetricName"): a["Properties"]
        for a in resources(template, "AWS::CloudWatch::Alarm").values()
    }
    for metric in ("VerificationsFailed", "VerificationRtoOverTarget", "PoliciesVerificationOverdue"):
        alarm = alarms[metric]
        assert alarm["Namespace"] == "Lifeboat" and alarm["Threshold"] == 0
        assert alarm["Dimensions"] == [{"Name": "service", "Value": "lifeboat"}]  # what powertools publishes
    # A monitor that stops reporting must not look like "nothing overdue".
    assert alarms["PoliciesVerificationOverdue"]["TreatMissingData"] == "breaching"
