"""`deploy` into moto's CloudFormation: replica stack first, primary stack fed with its outputs, in two regions.

moto creates the template's plain CloudFormation resources (buckets, table, queues, keys, roles) and skips
AWS::Serverless::*, AWS::SecretsManager::Secret and AWS::S3::BucketPolicy (it does not run the SAM transform), so
the functions are asserted on the template the deployed stack holds.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import boto3
import pytest
import yaml
from moto import mock_aws

from infra import deploy
from tests.integration.test_deploy_package import packaged  # noqa: F401  (module fixture)

pytestmark = pytest.mark.filterwarnings("ignore:Tried to parse AWS::Serverless")


@pytest.fixture
def template(packaged: dict[str, Any], tmp_path: Path) -> Path:  # noqa: F811
    """The packaged template without what points at AWS::Serverless::* resources, which moto leaves unresolved:
    Chalice's outputs and the API's invoke permission."""
    body = json.loads(Path(packaged["path"]).read_text())
    body["Resources"] = {k: v for k, v in body["Resources"].items() if v["Type"] != "AWS::Lambda::Permission"}
    infra = yaml.load(deploy.INFRA_TEMPLATE.read_text(), deploy._CfnLoader)
    body["Outputs"] = {k: v for k, v in body["Outputs"].items() if k in infra["Outputs"]}
    path = tmp_path / "sam.json"
    path.write_text(json.dumps(body))
    (tmp_path / "deployment.zip").symlink_to(Path(packaged["path"]).with_name("deployment.zip"))
    return path


@pytest.fixture
def aws(monkeypatch: pytest.MonkeyPatch) -> Any:
    for key, value in {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
    }.items():
        monkeypatch.setenv(key, value)
    monkeypatch.delenv("AWS_ENDPOINT_URL", raising=False)
    with mock_aws():
        yield


def test_deploy_creates_the_replica_then_the_primary_stack_with_its_outputs(aws: Any, template: Path) -> None:
    outputs = deploy.deploy("dev", "us-east-1", "us-west-2", template)

    west = boto3.client("cloudformation", region_name="us-west-2")
    replica = {
        o["OutputKey"]: o["OutputValue"]
        for o in west.describe_stacks(StackName="lifeboat-dev-replica")["Stacks"][0]["Outputs"]
    }
    assert replica["BucketName"].startswith("lifeboat-dev-replica-") and replica["BucketName"].endswith("-us-west-2")
    assert "TableName" not in replica  # the catalog lives in the primary region only

    east = boto3.client("cloudformation", region_name="us-east-1")
    stack = east.describe_stacks(StackName="lifeboat-dev")["Stacks"][0]
    parameters = {p["ParameterKey"]: p["ParameterValue"] for p in stack["Parameters"]}
    assert parameters["ReplicaBucketName"] == replica["BucketName"]
    assert parameters["ReplicaKeyArn"] == replica["KeyArn"]
    assert parameters["ReplicaRegion"] == "us-west-2"

    sqs = boto3.client("sqs", region_name="us-east-1")
    assert outputs["BackupJobsQueueUrl"] == sqs.get_queue_url(QueueName="lifeboat-backup-jobs")["QueueUrl"]
    assert boto3.client("dynamodb", region_name="us-east-1").describe_table(TableName=outputs["TableName"])

    body = east.get_template(StackName="lifeboat-dev")["TemplateBody"]
    deployed = body if isinstance(body, dict) else json.loads(body)
    worker = deployed["Resources"]["BackupWorker"]["Properties"]
    assert worker["Role"] == {"Fn::GetAtt": ["BackupWorkerRole", "Arn"]}
    assert worker["Environment"]["Variables"]["LIFEBOAT_BACKUP_QUEUE_URL"] == {"Ref": "BackupJobsQueue"}
    assert worker["CodeUri"]["Bucket"].startswith("lifeboat-dev-artifacts-")
    assert worker["Events"]["BackupWorkerSqsEventSource"]["Properties"]["Queue"] == {
        "Fn::GetAtt": ["BackupJobsQueue", "Arn"]
    }
    resources = {
        r["LogicalResourceId"] for r in east.list_stack_resources(StackName="lifeboat-dev")["StackResourceSummaries"]
    }
    assert {"BackupWorkerRole", "Table", "Bucket", "BackupJobsQueue", "Key"} <= resources


def test_undeploy_deletes_both_stacks_and_keeps_the_data(aws: Any, template: Path, capsys: Any) -> None:
    outputs = deploy.deploy("dev", "us-east-1", "us-west-2", template)
    deploy.undeploy("dev", "us-east-1", "us-west-2")

    printed = capsys.readouterr().out
    assert "repository buckets" in printed and "catalog table" in printed
    for region, name in (("us-east-1", "lifeboat-dev"), ("us-west-2", "lifeboat-dev-replica")):
        stacks = boto3.client("cloudformation", region_name=region).list_stacks()["StackSummaries"]
        assert {s["StackStatus"] for s in stacks if s["StackName"] == name} == {"DELETE_COMPLETE"}
    assert boto3.client("s3", region_name="us-east-1").head_bucket(Bucket=outputs["BucketName"])
    assert boto3.client("dynamodb", region_name="us-east-1").describe_table(TableName=outputs["TableName"])


def test_functions_in_a_vpc_get_the_endpoints_they_need(aws: Any, template: Path) -> None:
    ec2 = boto3.client("ec2", region_name="us-east-1")
    vpc = ec2.create_vpc(CidrBlock="10.0.0.0/16")["Vpc"]["VpcId"]
    subnet = ec2.create_subnet(VpcId=vpc, CidrBlock="10.0.1.0/24")["Subnet"]["SubnetId"]
    group = ec2.create_security_group(GroupName="lifeboat", Description="functions", VpcId=vpc)["GroupId"]
    table = ec2.describe_route_tables(Filters=[{"Name": "vpc-id", "Values": [vpc]}])["RouteTables"][0]["RouteTableId"]

    deploy.deploy(
        "dev",
        "us-east-1",
        "us-west-2",
        template,
        {
            "VpcId": vpc,
            "SubnetIds": subnet,
            "SecurityGroupIds": group,
            "VpcRouteTableIds": table,
            "VpcEndpointSubnetIds": subnet,
        },
    )

    endpoints = ec2.describe_vpc_endpoints(Filters=[{"Name": "vpc-id", "Values": [vpc]}])["VpcEndpoints"]
    services = {e["ServiceName"].rsplit(".", 1)[1]: e["VpcEndpointType"] for e in endpoints}
    assert services == {
        "s3": "Gateway",
        "dynamodb": "Interface",
        "sqs": "Interface",
        "sts": "Interface",
        "secretsmanager": "Interface",
        "events": "Interface",
        "kms": "Interface",
        "ec2": "Interface",
        "eks": "Interface",
        "lambda": "Interface",
    }
