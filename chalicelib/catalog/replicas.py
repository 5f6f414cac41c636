"""Per-region replica state of backup records: conditional writes beside, never through, the backup state machine."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from chalicelib.catalog import keys
from chalicelib.catalog.dynamo import decode_item, encode, error_code, iso, translate_error
from chalicelib.catalog.errors import RecordNotFound, StaleState
from chalicelib.core.models import REPLICA_SOURCES, ReplicaState

REPLICAS = "replicas"
MAX_ERROR_TEXT = 1024


def set_replica_state(
    client: Any,
    table: str,
    cluster: str,
    backup_id: str,
    region: str,
    state: ReplicaState,
    *,
    lag_s: float | None,
    now: datetime,
    error: str | None = None,
) -> dict[str, Any]:
    """Write ``replicas.<region>`` of one backup record; returns the record's attributes (plain values).

    Replicated is final: asking for Replicated again returns the stored record unchanged (its first lag stays), and
    asking for Pending or Failed raises ``StaleState``. A record written before replica states existed has no
    ``replicas`` map yet; it gets an empty one first, because DynamoDB refuses to set a key of a missing map.
    """
    keys.check_part("region", region)
    state = ReplicaState(state)
    value: dict[str, Any] = {"state": str(state), "updated_at": iso(now)}
    if state == ReplicaState.REPLICATED:
        value["replicated_at"] = iso(now)
        if lag_s is not None:
            value["lag_s"] = round(max(0.0, float(lag_s)), 3)
    if error is not None:
        value["error"] = error[:MAX_ERROR_TEXT]
    try:
        return _write(client, table, cluster, backup_id, region, state, value)
    except _MissingMap:
        _add_map(client, table, cluster, backup_id)
        return _write(client, table, cluster, backup_id, region, state, value)


class _MissingMap(Exception):
    """Internal: the record has no ``replicas`` map to set a region in."""


def _write(
    client: Any, table: str, cluster: str, backup_id: str, region: str, state: ReplicaState, value: dict[str, Any]
) -> dict[str, Any]:
    from botocore.exceptions import ClientError

    names = {"#replicas": REPLICAS, "#region": region, "#state": "state", "#updated": "updated_at"}
    names["#version"] = "version"
    values = {":value": encode(value), ":updated": {"S": value["updated_at"]}, ":one": {"N": "1"}}
    sources = sorted(REPLICA_SOURCES[state])
    values |= {f":source{i}": {"S": str(s)} for i, s in enumerate(sources)}
    allowed = ", ".join(f":source{i}" for i in range(len(sources)))
    condition = (
        f"attribute_exists(pk) AND (attribute_not_exists(#replicas.#region) OR #replicas.#region.#state IN ({allowed}))"
    )
    try:
        response = client.update_item(
            TableName=table,
            Key=keys.backup_key(cluster, backup_id),
            UpdateExpression="SET #replicas.#region = :value, #updated = :updated, #version = #version + :one",
            ConditionExpression=condition,
            ExpressionAttributeNames=names,
            ExpressionAttributeValues=values,
            ReturnValues="ALL_NEW",
            ReturnValuesOnConditionCheckFailure="ALL_OLD",
        )
    except ClientError as exc:
        code = error_code(exc)
        if code == "ValidationException" and "document path" in str(exc).lower():
            raise _MissingMap() from exc
        if code != "ConditionalCheckFailedException":
            raise translate_error(exc, table) from exc
        old = exc.response.get("Item")
        if not old:
            raise RecordNotFound(f"backup {cluster}/{backup_id} not found") from exc
        current = decode_item(old)
        stored = (current.get(REPLICAS) or {}).get(region, {}).get("state")
        if state == ReplicaState.REPLICATED and stored == ReplicaState.REPLICATED:
            return current
        raise StaleState(cluster, backup_id, f"{stored} in {region}", f"{state} in {region}") from exc
    return decode_item(response["Attributes"])


def _add_map(client: Any, table: str, cluster: str, backup_id: str) -> None:
    from botocore.exceptions import ClientError

    try:
        client.update_item(
            TableName=table,
            Key=keys.backup_key(cluster, backup_id),
            UpdateExpression="SET #r = if_not_exists(#r, :empty)",
            ConditionExpression="attribute_exists(pk)",
            ExpressionAttributeNames={"#r": REPLICAS},
            ExpressionAttributeValues={":empty": {"M": {}}},
        )
    except ClientError as exc:
        if error_code(exc) == "ConditionalCheckFailedException":
            raise RecordNotFound(f"backup {cluster}/{backup_id} not found") from exc
        raise translate_error(exc, table) from exc
