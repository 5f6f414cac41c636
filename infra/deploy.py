"""Package and deploy Lifeboat: one CloudFormation stack per region.

`python infra/deploy.py package --stage dev` runs `chalice package --merge-template infra/lifeboat.yaml` and then
rewrites the functions so nothing is typed by hand: environment variables become references to the template's own
resources and parameters, and each function runs as its own role `<ChaliceLogicalId>Role` from the template.

`deploy` creates or updates the replica stack (infra/lifeboat.yaml with Role=replica) in the replica region first,
then the primary stack (the merged template) with the replica's outputs as parameters. `undeploy` deletes both stacks;
buckets, table and keys carry DeletionPolicy Retain, so the data stays.

The AWS endpoint comes from AWS_ENDPOINT_URL when set (moto in the tests).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import boto3
import yaml

try:
    from infra import codezip
except ModuleNotFoundError:  # run as a script (python infra/deploy.py): infra/ itself is on sys.path
    import codezip  # type: ignore[no-redef]

ROOT = Path(__file__).resolve().parent.parent
INFRA_TEMPLATE = ROOT / "infra" / "lifeboat.yaml"
FUNCTION_TYPE = "AWS::Serverless::Function"
RETAINED = ("repository buckets", "catalog table", "KMS keys")


class PackagingError(Exception):
    """The merged template cannot be completed (e.g. a function has no role in infra/lifeboat.yaml)."""


class _CfnLoader(yaml.SafeLoader):
    """Loads CloudFormation YAML with its short-form intrinsics (only the section keys are needed)."""


def _intrinsic(loader: yaml.SafeLoader, _suffix: str, node: yaml.Node) -> Any:
    if isinstance(node, yaml.ScalarNode):
        return loader.construct_scalar(node)
    if isinstance(node, yaml.SequenceNode):
        return loader.construct_sequence(node, deep=True)
    return loader.construct_mapping(node, deep=True)  # type: ignore[arg-type]


_CfnLoader.add_multi_constructor("!", _intrinsic)


def stack_name(stage: str, role: str) -> str:
    return f"lifeboat-{stage}" if role == "primary" else f"lifeboat-{stage}-replica"


def environment() -> dict[str, Any]:
    """Every function's environment, by reference to the primary template's resources and parameters."""
    return {
        "LIFEBOAT_TABLE": {"Ref": "Table"},
        "LIFEBOAT_BUCKET": {"Ref": "Bucket"},
        "LIFEBOAT_REGION": {"Ref": "AWS::Region"},
        "LIFEBOAT_REPLICA_BUCKET": {"Ref": "ReplicaBucketName"},
        "LIFEBOAT_REPLICA_REGION": {"Ref": "ReplicaRegion"},
        "LIFEBOAT_KMS_KEY_ID": {"Fn::GetAtt": ["Key", "Arn"]},
        "LIFEBOAT_REPLICA_KMS_KEY_ID": {"Ref": "ReplicaKeyArn"},
        "LIFEBOAT_BACKUP_QUEUE_URL": {"Ref": "BackupJobsQueue"},
        "LIFEBOAT_RESTORE_QUEUE_URL": {"Ref": "RestoreJobsQueue"},
        "LIFEBOAT_VERIFICATION_QUEUE_URL": {"Ref": "VerificationJobsQueue"},
    }


PRIMARY_PARAMETERS: dict[str, Any] = {
    "ReplicaRegion": {"Type": "String", "Description": "Region of the replica stack (set by infra/deploy.py)."},
    "ReplicaBucketName": {"Type": "String", "Description": "Replica stack output BucketName."},
    "ReplicaKeyArn": {"Type": "String", "Description": "Replica stack output KeyArn."},
    "SubnetIds": {
        "Type": "CommaDelimitedList",
        "Default": "",
        "Description": "Optional private subnets for the functions (clusters with private API endpoints).",
    },
    "SecurityGroupIds": {
        "Type": "CommaDelimitedList",
        "Default": "",
        "Description": "Security groups for the functions when SubnetIds is set.",
    },
}


def _managed(name: str) -> dict[str, str]:
    return {"Fn::Sub": f"arn:${{AWS::Partition}}:iam::aws:policy/service-role/{name}"}


def complete(template: dict[str, Any], infra: dict[str, Any]) -> dict[str, Any]:
    """Rewrite the template `chalice package` produced: roles, environment, VPC settings.

    ``infra`` is the merge template; what Chalice added (functions, API, permissions, rules, outputs) exists only in
    the primary region, so it gets the IsPrimary condition.
    """
    resources = template["Resources"]
    for section in ("Resources", "Outputs"):
        for lid, item in template.get(section, {}).items():
            if lid not in infra.get(section, {}):
                item.setdefault("Condition", "IsPrimary")
    functions = {lid: r for lid, r in resources.items() if r.get("Type") == FUNCTION_TYPE}
    missing = sorted(f"{lid}Role" for lid in functions if f"{lid}Role" not in resources)
    if missing:
        raise PackagingError(
            "infra/lifeboat.yaml has no role for these functions (add them under '# Function roles'): "
            + ", ".join(missing)
        )
    template.setdefault("Parameters", {}).update(PRIMARY_PARAMETERS)
    template.setdefault("Conditions", {})["HasVpc"] = {
        "Fn::Not": [{"Fn::Equals": [{"Fn::Join": ["", {"Ref": "SubnetIds"}]}, ""]}]
    }
    queues = {
        r["Properties"]["QueueName"]: lid
        for lid, r in resources.items()
        if r.get("Type") == "AWS::SQS::Queue" and isinstance(r.get("Properties", {}).get("QueueName"), str)
    }
    for lid, function in functions.items():
        props = function["Properties"]
        for event in props.get("Events", {}).values():
            if event.get("Type") == "SQS":
                # Chalice builds the ARN from the queue name; a reference orders the queue before the mapping.
                name = event["Properties"]["Queue"]["Fn::Sub"].rsplit(":", 1)[1]
                if name not in queues:
                    raise PackagingError(f"{lid} reads queue {name}, which infra/lifeboat.yaml does not define")
                event["Properties"]["Queue"] = {"Fn::GetAtt": [queues[name], "Arn"]}
        props["Role"] = {"Fn::GetAtt": [f"{lid}Role", "Arn"]}
        variables = props.setdefault("Environment", {}).setdefault("Variables", {})
        variables.update(environment())
        # In a VPC, Lambda creates the function's network interfaces with its role: the VPC access policy (which
        # includes the basic one's logging) replaces the basic one.
        resources[f"{lid}Role"]["Properties"]["ManagedPolicyArns"] = [
            {"Fn::If": ["HasVpc", _managed("AWSLambdaVPCAccessExecutionRole"), _managed("AWSLambdaBasicExecutionRole")]}
        ]
        props["VpcConfig"] = {
            "Fn::If": [
                "HasVpc",
                {"SubnetIds": {"Ref": "SubnetIds"}, "SecurityGroupIds": {"Ref": "SecurityGroupIds"}},
                {"Ref": "AWS::NoValue"},
            ]
        }
    return template


def chalice_package(stage: str, out: Path, *, project: Path = ROOT, merge_template: Path | None = None) -> Path:
    """`chalice package` of ``project`` into ``out``, its zip finished by infra/codezip.py; returns the template."""
    out.mkdir(parents=True, exist_ok=True)
    chalice = Path(sys.executable).with_name("chalice")
    merge = ["--merge-template", str(merge_template)] if merge_template else []
    done = subprocess.run(
        [str(chalice), "package", "--stage", stage, *merge, str(out)],
        cwd=project,
        check=False,
        capture_output=True,
        text=True,
        env={**os.environ, "AWS_DEFAULT_REGION": os.environ.get("AWS_DEFAULT_REGION", "us-east-1")},
    )
    if done.returncode != 0:
        raise PackagingError(f"chalice package failed:\n{done.stdout}{done.stderr}")
    # A YAML merge template makes chalice write sam.yaml (long-form intrinsics, so plain YAML loads it).
    generated = out / ("sam.yaml" if merge_template else "sam.json")
    resources = yaml.safe_load(generated.read_text())["Resources"].values()
    try:
        codezip.check_runtime(r["Properties"]["Runtime"] for r in resources if r.get("Type") == FUNCTION_TYPE)
    except ValueError as error:
        raise PackagingError(str(error)) from error
    codezip.finish(out / "deployment.zip", workers=2)
    return generated


def package(stage: str, out: Path, merge_template: Path = INFRA_TEMPLATE) -> Path:
    """`chalice package` merged with infra/lifeboat.yaml, completed; returns the template path (sam.json)."""
    generated = chalice_package(stage, out, merge_template=merge_template)
    template = complete(yaml.safe_load(generated.read_text()), yaml.load(merge_template.read_text(), _CfnLoader))
    generated.unlink()
    path = out / "sam.json"
    path.write_text(json.dumps(template, indent=2))
    return path


def _client(service: str, region: str) -> Any:
    return boto3.client(service, region_name=region, endpoint_url=os.environ.get("AWS_ENDPOINT_URL"))


def _deploy_stack(region: str, name: str, source: dict[str, str], parameters: dict[str, str]) -> dict[str, str]:
    cfn = _client("cloudformation", region)
    args = {
        "StackName": name,
        **source,
        "Parameters": [{"ParameterKey": k, "ParameterValue": v} for k, v in parameters.items()],
        "Capabilities": ["CAPABILITY_IAM", "CAPABILITY_NAMED_IAM", "CAPABILITY_AUTO_EXPAND"],
    }
    try:
        cfn.describe_stacks(StackName=name)
        exists = True
    except cfn.exceptions.ClientError:
        exists = False
    if exists:
        try:
            cfn.update_stack(**args)
            cfn.get_waiter("stack_update_complete").wait(StackName=name)
        except cfn.exceptions.ClientError as error:
            if "No updates are to be performed" not in str(error):
                raise
    else:
        cfn.create_stack(**args)
        cfn.get_waiter("stack_create_complete").wait(StackName=name)
    stack = cfn.describe_stacks(StackName=name)["Stacks"][0]
    return {o["OutputKey"]: o["OutputValue"] for o in stack.get("Outputs", [])}


def upload(stage: str, region: str, template: Path) -> str:
    """Put the code and the template in the artifacts bucket (created when missing); returns the template URL.

    Like `aws cloudformation package`: the stack needs its code in S3, and a template this size only by URL.
    """
    account = _client("sts", region).get_caller_identity()["Account"]
    bucket = f"lifeboat-{stage}-artifacts-{account}-{region}"
    s3 = _client("s3", region)
    try:
        s3.head_bucket(Bucket=bucket)
    except s3.exceptions.ClientError:
        extra = {} if region == "us-east-1" else {"CreateBucketConfiguration": {"LocationConstraint": region}}
        s3.create_bucket(Bucket=bucket, **extra)
    code = template.with_name("deployment.zip")
    key = f"{stage}/deployment-{_digest(code)}.zip"
    s3.upload_file(str(code), bucket, key)
    body = json.loads(template.read_text())
    for resource in body["Resources"].values():
        if resource.get("Type") == FUNCTION_TYPE:
            resource["Properties"]["CodeUri"] = {"Bucket": bucket, "Key": key}
    s3.put_object(Bucket=bucket, Key=f"{stage}/template.json", Body=json.dumps(body).encode())
    return str(s3.generate_presigned_url("get_object", Params={"Bucket": bucket, "Key": f"{stage}/template.json"}))


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()[:16]


def deploy(
    stage: str, region: str, replica_region: str, template: Path, parameters: dict[str, str] | None = None
) -> dict[str, str]:
    """Replica stack first, then the primary stack fed with the replica's outputs; returns the primary outputs.

    ``parameters`` go to the primary stack as well (VPC settings: SubnetIds, SecurityGroupIds, VpcId, ...).
    """
    replica = _deploy_stack(
        replica_region,
        stack_name(stage, "replica"),
        {"TemplateBody": INFRA_TEMPLATE.read_text()},
        {"Role": "replica", "Stage": stage},
    )
    return _deploy_stack(
        region,
        stack_name(stage, "primary"),
        {"TemplateURL": upload(stage, region, template)},
        {
            "Role": "primary",
            "Stage": stage,
            "ReplicaRegion": replica_region,
            "ReplicaBucketName": replica["BucketName"],
            "ReplicaKeyArn": replica["KeyArn"],
            **(parameters or {}),
        },
    )


def undeploy(stage: str, region: str, replica_region: str) -> None:
    for stack_region, role in ((region, "primary"), (replica_region, "replica")):
        cfn = _client("cloudformation", stack_region)
        name = stack_name(stage, role)
        cfn.delete_stack(StackName=name)
        cfn.get_waiter("stack_delete_complete").wait(StackName=name)
        print(f"deleted stack {name} in {stack_region}")
    print("kept (DeletionPolicy Retain): " + ", ".join(RETAINED) + "; delete them by hand to drop the data")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="infra/deploy.py")
    parser.add_argument("command", choices=["package", "deploy", "undeploy"])
    parser.add_argument("--stage", default="dev")
    parser.add_argument("--region", default=os.environ.get("AWS_REGION", "us-east-1"))
    parser.add_argument("--replica-region", default=os.environ.get("LIFEBOAT_REPLICA_REGION", "us-west-2"))
    parser.add_argument("--out", type=Path, default=ROOT / "out")
    parser.add_argument(
        "--parameter", action="append", default=[], metavar="KEY=VALUE", help="primary stack parameter (repeatable)"
    )
    args = parser.parse_args(argv)
    try:
        if args.command == "undeploy":
            undeploy(args.stage, args.region, args.replica_region)
            return 0
        template = package(args.stage, args.out / args.stage)
        if args.command == "deploy":
            extra = dict(item.split("=", 1) for item in args.parameter)
            outputs = deploy(args.stage, args.region, args.replica_region, template, extra)
            for key, value in sorted(outputs.items()):
                print(f"{key}: {value}")
    except PackagingError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
