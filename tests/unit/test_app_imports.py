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
