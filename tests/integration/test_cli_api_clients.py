"""``lifeboat api-clients``: keys made once, in Secrets Manager; grants in the catalog; rotation with a grace period."""

from __future__ import annotations

import json
import time
from typing import Any

import pytest

from chalicelib.cli.main import main
from chalicelib.cli.output import EXIT_ERROR, EXIT_OK, EXIT_USAGE
from tests.conftest import TEST_BUCKET, TEST_REGION, TEST_TABLE

AWS = ["--table", TEST_TABLE, "--bucket", TEST_BUCKET, "--region", TEST_REGION]


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, Any, str]:
    capsys.readouterr()
    code = main(list(argv))
    captured = capsys.readouterr()
    try:
        return code, json.loads(captured.out), captured.err
    except json.JSONDecodeError:
        return code, captured.out, captured.err


def key_source() -> Any:
    import boto3

    from chalicelib.api.client_secrets import ClientSecretStore
    from chalicelib.api.clients import CatalogKeySource
    from chalicelib.catalog.api_clients import ApiClientCatalog

    catalog = ApiClientCatalog(boto3.client("dynamodb", region_name=TEST_REGION), TEST_TABLE)
    return CatalogKeySource(catalog, ClientSecretStore(boto3.client("secretsmanager", region_name=TEST_REGION)))


def test_add_list_rotate_revoke(capsys: Any, table: str) -> None:
    grant = ["--grant", "read=prod,dr", "--grant", "restore_from=prod", "--grant", "restore_into=dr"]
    code, added, err = run(capsys, "api-clients", "add", "deploy-bot", *grant, *AWS, "--output", "json")
    assert code == EXIT_OK, err
    key = added["key"]
    assert len(key) == 64 and added["grant"]["read"] == ["dr", "prod"] and added["grant"]["policies"] == []
    found = key_source().keys("deploy-bot", time.time())
    assert found.secrets == (key.encode(),) and found.caller.grant.allows("restore_into", "dr")

    code, listed, _ = run(capsys, "api-clients", "list", *AWS, "--output", "json")
    assert code == EXIT_OK and [c["client_id"] for c in listed] == ["deploy-bot"]
    assert key not in json.dumps(listed), "a key is shown once, when it is made"
    code, text, _ = run(capsys, "api-clients", "list", *AWS)
    assert "deploy-bot" in text and "restore_from=prod" in text and key not in text

    code, rotated, _ = run(
        capsys, "api-clients", "rotate", "deploy-bot", *AWS, "--grace-minutes", "60", "--output", "json"
    )
    assert code == EXIT_OK and rotated["key"] != key and rotated["previous_valid_until"]
    assert key_source().keys("deploy-bot", time.time()).secrets == (rotated["key"].encode(), key.encode())
    assert key_source().keys("deploy-bot", time.time() + 3601).secrets == (rotated["key"].encode(),)

    code, revoked, _ = run(capsys, "api-clients", "revoke", "deploy-bot", *AWS, "--output", "json")
    assert code == EXIT_OK and revoked["revoked_at"]
    assert key_source().keys("deploy-bot", time.time()) is None
    code, _, err = run(capsys, "api-clients", "rotate", "deploy-bot", *AWS)
    assert code == EXIT_ERROR and "revoked" in err


def test_a_taken_id_is_refused_and_no_secret_is_made(capsys: Any, table: str) -> None:
    assert run(capsys, "api-clients", "add", "ci", "--grant", "read=*", *AWS)[0] == EXIT_OK
    code, _, err = run(capsys, "api-clients", "add", "ci", "--grant", "read=*", *AWS)
    assert code == EXIT_ERROR and "already exists" in err


@pytest.mark.parametrize(
    "argv",
    [
        ["api-clients", "add", "ci", "--grant", "admin=prod"],
        ["api-clients", "add", "ci", "--grant", "read"],
        ["api-clients", "add", "Bad/Id", "--grant", "read=prod"],
    ],
)
def test_bad_grants_and_ids_are_usage_errors(capsys: Any, table: str, argv: list[str]) -> None:
    code, _, err = run(capsys, *argv, *AWS)
    assert code == EXIT_USAGE, err
