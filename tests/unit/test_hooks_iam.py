"""The functions' role may invoke Lambda hook functions, and only those named for it."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize("stage", ["dev", "prod"])
def test_hook_functions_are_invocable_and_nothing_else(stage: str) -> None:
    policy = json.loads((ROOT / ".chalice" / f"policy-{stage}.json").read_text())
    invokes = [s for s in policy["Statement"] if "lambda:InvokeFunction" in s["Action"]]
    assert len(invokes) == 1 and invokes[0]["Action"] == ["lambda:InvokeFunction"]
    assert invokes[0]["Resource"] and all(r.endswith(":function:lifeboat-hook-*") for r in invokes[0]["Resource"])
