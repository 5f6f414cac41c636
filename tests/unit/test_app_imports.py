"""Cold start: importing app.py loads Chalice and nothing of chalicelib, AWS, HTTP or validation libraries."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
HEAVY = (
    "chalicelib", "boto3", "botocore", "pydantic", "kubernetes", "urllib3", "orjson", "yaml", "aws_lambda_powertools"
)


def test_importing_the_app_loads_only_chalice() -> None:
    # A fresh interpreter: this test process has long imported everything.
    code = "import json, sys; import app; print(json.dumps(sorted(sys.modules)))"
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True).stdout
    loaded = {name.split(".")[0] for name in json.loads(out)}
    assert "chalice" in loaded
    assert sorted(loaded.intersection(HEAVY)) == []


def test_the_dispatchers_clients_are_botocore_and_load_no_backup_pipeline() -> None:
    # Building the dispatcher builds its clients (DynamoDB, SQS) from one botocore session: no boto3 (which loads
    # s3transfer), and none of the backup, restore or verification code it does not run on a tick.
    code = (
        "import json, sys; import app; from chalicelib.services import get_services; "
        "s = get_services(); s.dispatcher(); print(json.dumps(sorted(sys.modules)))"
    )
    env = {"LIFEBOAT_TABLE": "t", "LIFEBOAT_BUCKET": "b", "AWS_DEFAULT_REGION": "us-east-1", "PATH": "/usr/bin"}
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True, check=True)
    loaded = set(json.loads(out.stdout))
    assert "botocore.client" in loaded
    unwanted = {"boto3", "s3transfer", "chalicelib.backup.service", "chalicelib.verification.worker"}
    assert sorted(loaded & unwanted) == []
    assert sorted(name for name in loaded if name.startswith("chalicelib.restore")) == []


def test_importing_the_kube_client_loads_no_http_library() -> None:
    # urllib3, http.client and the client's connections load when a client is built, not when a module using it
    # is imported (the verification modules import it at their top).
    code = "import json, sys; import chalicelib.kube.client; print(json.dumps(sorted(sys.modules)))"
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True).stdout
    loaded = set(json.loads(out))
    assert sorted(loaded & {"urllib3", "http.client", "email.parser", "kubernetes", "chalicelib.kube.wire"}) == []
