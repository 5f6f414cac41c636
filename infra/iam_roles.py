"""Writes the "# Function roles" section of infra/lifeboat.yaml from infra/iam-actions.json.

The table is the record of what each function's code calls (tests/integration/test_iam_least_privilege.py checks
the calls each function's flows make against it, tests/unit/test_iam_roles.py the template); this keeps the two
from drifting:

    python infra/iam_roles.py          # rewrite the section
    python infra/iam_roles.py --check  # exit 1 when the section is not what the table says
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
TEMPLATE = HERE / "lifeboat.yaml"
TABLE = HERE / "iam-actions.json"
START = "  # Function roles:"
END = "\nOutputs:"

# A table resource key -> the ARNs it stands for (YAML, as written in the template).
RESOURCES = {
    "table": ["!GetAtt Table.Arn", '!Sub "${Table.Arn}/index/*"'],
    "bucket": ['!Sub "${Bucket.Arn}/*"'],
    "bucket-list": ["!GetAtt Bucket.Arn"],
    "replica": ['!Sub "arn:${AWS::Partition}:s3:::lifeboat-${Stage}-replica-${AWS::AccountId}-*/*"'],
    "replica-list": ['!Sub "arn:${AWS::Partition}:s3:::lifeboat-${Stage}-replica-${AWS::AccountId}-*"'],
    "key": ["!GetAtt Key.Arn"],
    "key-via-services": ["!GetAtt Key.Arn"],
    "replica-key": ["!If [HasReplicaKey, !Ref ReplicaKeyArn, !GetAtt Key.Arn]"],
    "secrets": ['!Sub "arn:${AWS::Partition}:secretsmanager:${AWS::Region}:${AWS::AccountId}:secret:lifeboat/*"'],
    "api-client-secrets": [
        '!Sub "arn:${AWS::Partition}:secretsmanager:${AWS::Region}:${AWS::AccountId}:secret:lifeboat/api-clients/*"'
    ],
    "events": ['!Sub "arn:${AWS::Partition}:events:${AWS::Region}:${AWS::AccountId}:event-bus/default"'],
    "backup-queue": ["!GetAtt BackupJobsQueue.Arn"],
    "restore-queue": ["!GetAtt RestoreJobsQueue.Arn"],
    "verification-queue": ["!GetAtt VerificationJobsQueue.Arn"],
    "replication-queue": ["!GetAtt ReplicationQueue.Arn"],
    "hooks": ['!Sub "arn:${AWS::Partition}:lambda:${AWS::Region}:${AWS::AccountId}:function:lifeboat-hook-*"'],
    "eks": ['!Sub "arn:${AWS::Partition}:eks:*:${AWS::AccountId}:cluster/*"'],
    "snapshots": ['!Sub "arn:${AWS::Partition}:ec2:*::snapshot/*"'],
    "volumes": ['!Sub "arn:${AWS::Partition}:ec2:*:${AWS::AccountId}:volume/*"'],
    "any": ['"*"'],
}

# A table resource key -> the condition of its statement (YAML lines under "Condition:").
CONDITIONS = {
    # The catalog table and the queues are encrypted with the repository key, and DynamoDB and SQS use it with the
    # caller's permissions; this statement lets a function use the key only through them (never to decrypt an S3
    # object or call KMS directly).
    "key-via-services": [
        "StringEquals:",
        "  kms:ViaService:",
        '    - !Sub "dynamodb.${AWS::Region}.amazonaws.com"',
        '    - !Sub "sqs.${AWS::Region}.amazonaws.com"',
    ],
}


def logical_id(function: str) -> str:
    """Chalice's logical id of a function, plus ``Role``: backup_worker -> BackupWorkerRole."""
    if function == "api_handler":
        return "APIHandlerRole"
    return "".join(part.capitalize() for part in function.split("_")) + "Role"


def section(table: dict[str, dict[str, object]]) -> str:
    lines = [
        "  # Function roles: one per Lambda function, actions as in infra/iam-actions.json (written by"
        " infra/iam_roles.py; tests/unit/test_iam_roles.py)."
    ]
    for function, spec in table.items():
        if function.startswith("_"):
            continue
        lines += [
            f"  {logical_id(function)}:",
            "    Type: AWS::IAM::Role",
            "    Condition: IsPrimary",
            "    Properties:",
            "      AssumeRolePolicyDocument:",
            '        Version: "2012-10-17"',
            "        Statement:",
            "          - Effect: Allow",
            "            Principal: {Service: lambda.amazonaws.com}",
            "            Action: sts:AssumeRole",
            "      ManagedPolicyArns:",
            '        - !Sub "arn:${AWS::Partition}:iam::aws:policy/service-role/AWSLambdaBasicExecutionRole"',
            "      Policies:",
            f"        - PolicyName: {function}",
            "          PolicyDocument:",
            '            Version: "2012-10-17"',
            "            Statement:",
        ]
        for key, actions in spec.items():
            if key == "reason":
                continue
            assert isinstance(actions, list), (function, key)
            lines += ["              - Effect: Allow", "                Action:"]
            lines += [f"                  - {a}" for a in actions]
            lines += ["                Resource:"] + [f"                  - {r}" for r in RESOURCES[key]]
            if key in CONDITIONS:
                lines += ["                Condition:"] + [f"                  {c}" for c in CONDITIONS[key]]
    return "\n".join(lines) + "\n"


def rewritten() -> str:
    text = TEMPLATE.read_text()
    start, end = text.index(START), text.index(END)
    table = json.loads(TABLE.read_text())
    return text[:start] + section(table) + text[end:]


def main() -> int:
    new = rewritten()
    if "--check" in sys.argv[1:]:
        return 0 if new == TEMPLATE.read_text() else 1
    TEMPLATE.write_text(new)
    return 0


if __name__ == "__main__":
    sys.exit(main())
