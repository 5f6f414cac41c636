"""The functions that run backups may invoke Lambda hook functions, and only those named for it."""

from __future__ import annotations

import json
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_hook_functions_are_invocable_and_nothing_else() -> None:
    from infra.iam_roles import RESOURCES

    table = json.loads((ROOT / "infra" / "iam-actions.json").read_text())
    invoking = {f for f, spec in table.items() if not f.startswith("_") and "lambda:InvokeFunction" in json.dumps(spec)}
    assert invoking == {"backup_worker", "run_backup"}
    for function in invoking:
        assert table[function]["hooks"] == ["lambda:InvokeFunction"]
        assert not any("lambda:InvokeFunction" in v for k, v in table[function].items() if k not in ("hooks", "reason"))
    (arn,) = RESOURCES["hooks"]
    assert arn.endswith(':function:lifeboat-hook-*"') and "${AWS::AccountId}" in arn
