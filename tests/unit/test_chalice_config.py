""".chalice/config.json: the functions' settings, no role or environment typed by hand (the stack provides both:
infra/deploy.py and the "# Function roles" of infra/lifeboat.yaml, tested in test_deploy_package.py and
test_iam_roles.py)."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]
CHALICE_DIR = ROOT / ".chalice"
STAGES = ("dev", "prod")

FUNCTIONS = {
    # name: (memory MB, timeout s, reserved concurrency)
    "backup_worker": (1024, 900, 10),
    "run_backup": (1024, 900, None),
    "api_handler": (256, 30, None),
    "restore_worker": (1024, 900, None),
    # One full vCPU: a tick that claims 1,000 due runs spends ~10 s of CPU (docs/scale.md).
    "dispatcher": (1769, 60, None),
    "maintenance": (1024, 900, None),
    "rpo_monitor": (256, 60, None),
}


@pytest.fixture(scope="module")
def config() -> dict[str, Any]:
    return dict(json.loads((CHALICE_DIR / "config.json").read_text()))


@pytest.fixture(params=STAGES)
def stage(request: pytest.FixtureRequest) -> str:
    return str(request.param)


def chalice_config(config: dict[str, Any], stage: str, function: str = "api_handler") -> Any:
    from chalice.config import Config

    return Config(chalice_stage=stage, function_name=function, config_from_disk=config)


def test_config_names_the_app_and_both_stages(config: dict[str, Any]) -> None:
    assert config["app_name"] == "lifeboat"
    assert set(config["stages"]) >= set(STAGES)


def test_chalice_manages_no_role_and_no_policy_file(config: dict[str, Any], stage: str) -> None:
    resolved = chalice_config(config, stage)
    assert resolved.manage_iam_role is False
    text = json.dumps(config)
    assert "iam_policy_file" not in text and "autogen_policy" not in text
    assert not list(CHALICE_DIR.glob("policy-*.json"))


def test_no_account_id_or_url_is_typed(config: dict[str, Any]) -> None:
    # iam_role_arn is Chalice's required placeholder, which packaging replaces with each function's own role.
    text = json.dumps(config).replace(str(config.get("iam_role_arn", "")), "")
    for stage in config["stages"].values():
        text = text.replace(str(stage.get("iam_role_arn", "")), "")
    assert not re.search(r"https?://|amazonaws\.com", text)
    assert not re.search(r"\b\d{12}\b", text)


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
def test_no_stage_logs_at_debug(config: dict[str, Any], stage: str) -> None:
    # DEBUG logs request details (boto3 and powertools log bodies at that level); no deployed stage runs with it.
    assert config["stages"][stage]["environment_variables"]["LOG_LEVEL"] in ("INFO", "WARNING", "ERROR")


def test_the_cost_model_prices_each_function_at_its_configured_memory() -> None:
    from chalicelib.core.cost.model import MEMORY_GB

    config = json.loads((CHALICE_DIR / "config.json").read_text())["lambda_functions"]
    function = {"backup": "backup_worker", "replicator": "replicator", "dispatcher": "dispatcher",
                "verification": "verification_worker", "rpo_monitor": "rpo_monitor"}  # fmt: skip
    assert set(MEMORY_GB) == set(function)
    for item, name in function.items():
        assert MEMORY_GB[item] == config[name]["lambda_memory_size"] / 1024, item
