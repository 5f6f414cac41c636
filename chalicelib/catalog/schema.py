"""The catalog table's shape: one definition shared by code, tests and the CloudFormation template."""

from __future__ import annotations

from typing import Any

from chalicelib.catalog.dynamo import translate_error
from chalicelib.catalog.errors import AlreadyExists, CatalogError

PARTITION_KEY = "pk"
SORT_KEY = "sk"
TTL_ATTRIBUTE = "expires_at"  # epoch seconds; leases and idempotency records expire on their own

# Overloaded index: backups by (cluster, state), newest first; later restore jobs by state.
GSI1 = "gsi1"
GSI1_PK = "gsi1pk"
GSI1_SK = "gsi1sk"
# Sparse index reserved for the dispatcher: only enabled policies carry these attributes (due time sort key).
GSI2 = "gsi2"
GSI2_PK = "gsi2pk"
GSI2_SK = "gsi2sk"


def _index(name: str, pk: str, sk: str) -> dict[str, Any]:
    return {
        "IndexName": name,
        "KeySchema": [{"AttributeName": pk, "KeyType": "HASH"}, {"AttributeName": sk, "KeyType": "RANGE"}],
        "Projection": {"ProjectionType": "ALL"},
    }


def table_definition(name: str) -> dict[str, Any]:
    """Keyword arguments for ``create_table`` (on-demand capacity); infra/lifeboat.yaml must match."""
    attributes = [PARTITION_KEY, SORT_KEY, GSI1_PK, GSI1_SK, GSI2_PK, GSI2_SK]
    return {
        "TableName": name,
        "AttributeDefinitions": [{"AttributeName": a, "AttributeType": "S"} for a in attributes],
        "KeySchema": [
            {"AttributeName": PARTITION_KEY, "KeyType": "HASH"},
            {"AttributeName": SORT_KEY, "KeyType": "RANGE"},
        ],
        "GlobalSecondaryIndexes": [_index(GSI1, GSI1_PK, GSI1_SK), _index(GSI2, GSI2_PK, GSI2_SK)],
        "BillingMode": "PAY_PER_REQUEST",
    }


def create_table(client: Any, name: str) -> None:
    """Create the catalog table, wait until it is active, then enable TTL (which create_table cannot set)."""
    from botocore.exceptions import ClientError, WaiterError

    try:
        client.create_table(**table_definition(name))
    except ClientError as exc:
        if exc.response.get("Error", {}).get("Code") == "ResourceInUseException":
            raise AlreadyExists(f"catalog table {name!r} already exists") from exc
        raise translate_error(exc, name) from exc
    try:
        client.get_waiter("table_exists").wait(TableName=name, WaiterConfig={"Delay": 2, "MaxAttempts": 60})
        client.update_time_to_live(
            TableName=name, TimeToLiveSpecification={"Enabled": True, "AttributeName": TTL_ATTRIBUTE}
        )
    except ClientError as exc:
        raise translate_error(exc, name) from exc
    except WaiterError as exc:
        raise CatalogError(f"catalog table {name!r} did not become active: {exc}") from exc
