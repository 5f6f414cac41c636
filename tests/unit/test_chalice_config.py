""".chalice/config.json and the IAM policy files: complete, least-privilege, consistent with infra/lifeboat.yaml."""

from __future__ import annotations

import json
import re
from fnmatch import fnmatchcase
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
CHALICE_DIR = ROOT / ".chalice"
STAGES = ("dev", "prod")
REQUIRED_ENV = {
    "LIFEBOAT_TABLE",
    "LIFEBOAT_BUCKET",
    "LIFEBOAT_REGION",
    "LIFEBOAT_REPLICA_BUCKET",
    "LIFEBOAT_REPLICA_REGION",
    "LIFEBOAT_KMS_KEY_ID",
    "LIFEBOAT_BACKUP_QUEUE_URL",
    "LIFEBOAT_RESTORE_QUEUE_URL",
    "POWERTOOLS_SERVICE_NAME",
    "POWERTOOLS_METRICS_NAMESPACE",
    "LOG_LEVEL",
}
FUNCTIONS = {
    # name: (memory MB, timeout s, reserved concurrency)
    "backup_worker": (1024, 900, 10),
    "run_backup": (1024, 900, None),
    "api_handler": (256, 30, None),
    "restore_worker": (1024, 900, None),
    "dispatcher": (256, 60, None),
    "maintenance": (1024, 900, None),
    "rpo_monitor": (256, 60, None),
}
REQUIRED_ACTIONS = {
    "s3:GetObject",
    "s3:PutObject",
    "s3:ListBucket",
    "s3:DeleteObject",
    # garbage collection in immutability mode (maintenance/immutability.py)
    "s3:DeleteObjectVersion",
    "s3:GetObjectRetention",
    "s3:ListBucketVersions",
    "s3:GetBucketObjectLockConfiguration",
    "kms:Encrypt",
    "kms:Decrypt",
    "kms:GenerateDataKey",
    "dynamodb:GetItem",
    "dynamodb:PutItem",
    "dynamodb:BatchWriteItem",  # the shard items of a sharded backup
    "dynamodb:UpdateItem",
    "dynamodb:Query",
    "dynamodb:ConditionCheckItem",  # TransactWriteItems' condition checks
    "sqs:SendMessage",
    "sqs:ReceiveMessage",
    "sqs:DeleteMessage",
    "sqs:GetQueueAttributes",
    "sqs:ChangeMessageVisibility",
    "secretsmanager:GetSecretValue",
    "eks:DescribeCluster",
    "sts:GetCallerIdentity",
    "ec2:CreateSnapshot",
    "ec2:DescribeSnapshots",
    "ec2:CopySnapshot",
    "ec2:DeleteSnapshot",
    "ec2:CreateTags",
    "events:PutEvents",
    "cloudwatch:PutMetricData",
    "logs:CreateLogGroup",
    "logs:CreateLogStream",
    "logs:PutLogEvents",
}
# These APIs have no resource-level permissions, so "Resource": "*" is the only way to grant them.
RESOURCE_STAR_ALLOWED = {"sts:GetCallerIdentity", "ec2:DescribeSnapshots", "cloudwatch:PutMetricData"}


@pytest.fixture(scope="module")
def config() -> dict[str, Any]:
    return dict(json.loads((CHALICE_DIR / "config.json").read_text()))


def chalice_config(config: dict[str, Any], stage: str, function: str = "api_handler") -> Any:
    from chalice.config import Config

    return Config(chalice_stage=stage, function_name=function, config_from_disk=config)


def policy(config: dict[str, Any], stage: str) -> dict[str, Any]:
    return dict(json.loads((CHALICE_DIR / chalice_config(config, stage).iam_policy_file).read_text()))


def statements(config: dict[str, Any], stage: str) -> list[dict[str, Any]]:
    return list(policy(config, stage)["Statement"])


def as_list(value: str | list[str]) -> list[str]:
    return [value] if isinstance(value, str) else list(value)


def resources_for(config: dict[str, Any], stage: str, action: str) -> list[str]:
    return [r for s in statements(config, stage) if action in as_list(s["Action"]) for r in as_list(s["Resource"])]


def test_config_names_the_app_and_both_stages(config: dict[str, Any]) -> None:
    assert config["app_name"] == "lifeboat"
    assert set(STAGES) <= set(config["stages"])


@pytest.mark.parametrize("stage", STAGES)
def test_stage_uses_its_own_policy_file(config: dict[str, Any], stage: str) -> None:
    resolved = chalice_config(config, stage)
    assert resolved.autogen_policy is False
    assert resolved.iam_policy_file == f"policy-{stage}.json"
    assert (CHALICE_DIR / resolved.iam_policy_file).is_file()
    assert policy(config, stage)["Version"] == "2012-10-17"


def test_every_referenced_policy_file_exists(config: dict[str, Any]) -> None:
    referenced = {s["iam_policy_file"] for s in config["stages"].values() if "iam_policy_file" in s}
    referenced |= {f["iam_policy_file"] for f in config.get("lambda_functions", {}).values() if "iam_policy_file" in f}
    for stage in config["stages"].values():
        referenced |= {
            f["iam_policy_file"] for f in stage.get("lambda_functions", {}).values() if "iam_policy_file" in f
        }
    assert referenced >= {f"policy-{s}.json" for s in STAGES}
    missing = [name for name in referenced if not (CHALICE_DIR / name).is_file()]
    assert missing == []


@pytest.mark.parametrize("stage", STAGES)
def test_every_environment_variable_is_set(config: dict[str, Any], stage: str) -> None:
    for function in FUNCTIONS:
        env = chalice_config(config, stage, function).environment_variables
        assert set(env) >= REQUIRED_ENV, REQUIRED_ENV - set(env)
        assert all(isinstance(v, str) and v for v in env.values())
        assert env["POWERTOOLS_SERVICE_NAME"] == "lifeboat"
        assert env["POWERTOOLS_METRICS_NAMESPACE"] == "Lifeboat"
        assert env["LIFEBOAT_REGION"] != env["LIFEBOAT_REPLICA_REGION"]
        assert stage in env["LIFEBOAT_TABLE"]


@pytest.mark.parametrize("stage", STAGES)
@pytest.mark.parametrize("function", sorted(FUNCTIONS))
def test_function_settings(config: dict[str, Any], stage: str, function: str) -> None:
    memory, timeout, concurrency = FUNCTIONS[function]
    resolved = chalice_config(config, stage, function)
    assert resolved.lambda_memory_size == memory
    assert resolved.lambda_timeout == timeout
    assert resolved.reserved_concurrency == concurrency


def test_configured_functions_exist_in_the_app(config: dict[str, Any]) -> None:
    source = (ROOT / "app.py").read_text()
    handlers = set(re.findall(r"^def (\w+)\(", source, flags=re.MULTILINE)) | {"api_handler"}  # Chalice's REST API
    configured = set(config.get("lambda_functions", {}))
    for stage in config["stages"].values():
        configured |= set(stage.get("lambda_functions", {}))
    assert configured <= handlers, configured - handlers


@pytest.mark.parametrize("stage", STAGES)
def test_policy_has_no_wildcard_actions(config: dict[str, Any], stage: str) -> None:
    for statement in statements(config, stage):
        assert statement["Effect"] == "Allow"
        assert "NotAction" not in statement and "NotResource" not in statement
        for action in as_list(statement["Action"]):
            assert "*" not in action, action
            assert re.fullmatch(r"[a-z0-9-]+:[A-Z][A-Za-z]+", action), action
        if "*" in as_list(statement["Resource"]):
            assert set(as_list(statement["Action"])) <= RESOURCE_STAR_ALLOWED, statement["Sid"]


@pytest.mark.parametrize("stage", STAGES)
def test_policy_grants_what_the_functions_call(config: dict[str, Any], stage: str) -> None:
    granted = {a for s in statements(config, stage) for a in as_list(s["Action"])}
    assert granted >= REQUIRED_ACTIONS, REQUIRED_ACTIONS - granted
    (metrics,) = [s for s in statements(config, stage) if "cloudwatch:PutMetricData" in as_list(s["Action"])]
    assert metrics["Condition"] == {"StringEquals": {"cloudwatch:namespace": "Lifeboat"}}
    deletes = [s for s in statements(config, stage) if "ec2:DeleteSnapshot" in as_list(s["Action"])]
    assert all("aws:ResourceTag/lifeboat.io/managed-by" in json.dumps(s.get("Condition")) for s in deletes)


# -- the policy's resources are the ones the stage's environment and the template name ------------------------------


def _template_bucket_name(stage: str, role: str, account: str, region: str) -> str:
    template = (ROOT / "infra" / "lifeboat.yaml").read_text()
    formula = re.search(r'BucketName: !Sub "([^"]+)"', template)
    assert formula is not None
    values = {"Stage": stage, "Role": role, "AWS::AccountId": account, "AWS::Region": region}
    return re.sub(r"\$\{([^}]+)\}", lambda m: values[m.group(1)], formula.group(1))


def _template_queue_names() -> set[str]:
    class Loader(yaml.SafeLoader):
        pass

    Loader.add_multi_constructor("!", lambda loader, suffix, node: None)
    template = yaml.load((ROOT / "infra" / "lifeboat.yaml").read_text(), Loader=Loader)
    return {r["Properties"]["QueueName"] for r in template["Resources"].values() if r["Type"] == "AWS::SQS::Queue"}


@pytest.mark.parametrize("stage", STAGES)
def test_policy_covers_the_stage_resources(config: dict[str, Any], stage: str) -> None:
    env = chalice_config(config, stage).environment_variables
    account = env["LIFEBOAT_BACKUP_QUEUE_URL"].split("/")[3]
    region = env["LIFEBOAT_REGION"]

    for bucket_var, region_var, role in (
        ("LIFEBOAT_BUCKET", "LIFEBOAT_REGION", "primary"),
        ("LIFEBOAT_REPLICA_BUCKET", "LIFEBOAT_REPLICA_REGION", "replica"),
    ):
        bucket = env[bucket_var]
        assert bucket == _template_bucket_name(stage, role, account, env[region_var])
        assert any(fnmatchcase(f"arn:aws:s3:::{bucket}", r) for r in resources_for(config, stage, "s3:ListBucket"))
        assert any(
            fnmatchcase(f"arn:aws:s3:::{bucket}/lifeboat/v1/config.json", r)
            for r in resources_for(config, stage, "s3:PutObject")
        )
    other_stage = next(s for s in STAGES if s != stage)
    assert not any(other_stage in r for r in resources_for(config, stage, "s3:GetObject"))

    table_arn = f"arn:aws:dynamodb:{region}:{account}:table/{env['LIFEBOAT_TABLE']}"
    assert table_arn in resources_for(config, stage, "dynamodb:UpdateItem")
    assert f"{table_arn}/index/*" in resources_for(config, stage, "dynamodb:Query")

    queue_names = _template_queue_names()
    for url_var in ("LIFEBOAT_BACKUP_QUEUE_URL", "LIFEBOAT_RESTORE_QUEUE_URL"):
        name = env[url_var].rsplit("/", 1)[1]
        assert name in queue_names
        assert f"arn:aws:sqs:{region}:{account}:{name}" in resources_for(config, stage, "sqs:ReceiveMessage")
    # app.py's SQS event sources must name queues the template creates.
    app_queues = set(re.findall(r'on_sqs_message\(queue="([^"]+)"', (ROOT / "app.py").read_text()))
    assert app_queues and app_queues <= queue_names

    (keys,) = [s for s in statements(config, stage) if "kms:GenerateDataKey" in as_list(s["Action"])]
    assert keys["Condition"]["ForAnyValue:StringEquals"]["kms:ResourceAliases"] == [env["LIFEBOAT_KMS_KEY_ID"]]
    # Every API client's key is a secret of its own under the API client prefix (chalicelib/api/client_secrets.py).
    from chalicelib.api.client_secrets import secret_id_for

    assert any(
        fnmatchcase(f"arn:aws:secretsmanager:{region}:{account}:secret:{secret_id_for('ci')}-AbCdEf", r)
        for r in resources_for(config, stage, "secretsmanager:GetSecretValue")
    )


@pytest.mark.parametrize("stage", STAGES)
def test_policy_actions_exist(config: dict[str, Any], stage: str) -> None:
    """cfn-lint knows every IAM action; a typo would silently grant nothing."""
    from cfnlint.api import ManualArgs, lint

    document = policy(config, stage)
    wrapper = {
        "AWSTemplateFormatVersion": "2010-09-09",
        "Resources": {"Policy": {"Type": "AWS::IAM::ManagedPolicy", "Properties": {"PolicyDocument": document}}},
    }
    assert [str(m) for m in lint(json.dumps(wrapper), config=ManualArgs(regions=["us-east-1"]))] == []


@pytest.mark.parametrize("stage", STAGES)
def test_no_stage_logs_at_debug(config: dict[str, Any], stage: str) -> None:
    # DEBUG logs request details (boto3 and powertools log bodies at that level); no deployed stage runs with it.
    assert config["stages"][stage]["environment_variables"]["LOG_LEVEL"] in ("INFO", "WARNING", "ERROR")


@pytest.mark.parametrize("stage", STAGES)
def test_no_stage_names_a_secret_nothing_creates(config: dict[str, Any], stage: str) -> None:
    # A secret id in the environment must name a secret the template creates; API client keys are made by
    # `lifeboat api-clients add` under their own prefix and are never configured per stage.
    class Loader(yaml.SafeLoader):
        pass

    Loader.add_multi_constructor("!", lambda loader, suffix, node: None)
    template = yaml.load((ROOT / "infra" / "lifeboat.yaml").read_text(), Loader=Loader)
    created = {
        (r.get("Properties") or {}).get("Name")
        for r in template["Resources"].values()
        if r["Type"] == "AWS::SecretsManager::Secret"
    }
    env = config["stages"][stage]["environment_variables"]
    named = {k: v for k, v in env.items() if k.endswith("_SECRET_ID")}
    assert all(v in created for v in named.values()), named
