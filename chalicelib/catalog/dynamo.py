"""Thin helpers every catalog backend shares: error translation, value encoding, timestamps."""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from decimal import Clamped, Context, Decimal, Inexact, Overflow, Rounded, Underflow
from enum import StrEnum
from typing import Any

from chalicelib.catalog.errors import CatalogError, ConditionFailed, InvalidToken, TableNotFound, Throttled

_THROTTLE_CODES = frozenset(
    {"ProvisionedThroughputExceededException", "ThrottlingException", "RequestLimitExceeded", "ThrottlingError"}
)


def error_code(exc: Exception) -> str:
    response = getattr(exc, "response", None) or {}
    return str(response.get("Error", {}).get("Code", ""))


def cancellation_codes(exc: Exception) -> list[str]:
    """Per-item reason codes of a cancelled transaction ("None" where that item was fine)."""
    response = getattr(exc, "response", None) or {}
    return [str(r.get("Code", "None")) for r in response.get("CancellationReasons", [])]


def translate_error(exc: Exception, table: str) -> CatalogError:
    """The catalog error for a botocore ClientError the caller did not expect; the caller chains it."""
    code = error_code(exc)
    if code == "ResourceNotFoundException":
        return TableNotFound(table)
    if code in _THROTTLE_CODES or any(c in _THROTTLE_CODES for c in cancellation_codes(exc)):
        return Throttled(f"DynamoDB throttled a request on {table!r} ({code})")
    message = getattr(exc, "response", {}).get("Error", {}).get("Message", str(exc))
    return CatalogError(f"DynamoDB request on {table!r} failed: {code or type(exc).__name__}: {message}")


def conditional_update(client: Any, table: str, **request: Any) -> dict[str, Any]:
    """A conditional ``update_item`` returning the new attributes (decoded).

    Raises ``ConditionFailed`` carrying the stored item (``{}`` when there is none) if the condition did not hold,
    and the translated error for any other failure; both are chained to the ClientError.
    """
    from botocore.exceptions import ClientError

    request.setdefault("ReturnValues", "ALL_NEW")
    try:
        response = client.update_item(TableName=table, ReturnValuesOnConditionCheckFailure="ALL_OLD", **request)
    except ClientError as exc:
        if error_code(exc) != "ConditionalCheckFailedException":
            raise translate_error(exc, table) from exc
        old = exc.response.get("Item")
        raise ConditionFailed(decode_item(old) if old else {}) from exc
    return decode_item(response["Attributes"])


def query_partition(call: Callable[..., dict[str, Any]], table: str, pk: str) -> Iterator[dict[str, Any]]:
    """Every item of partition ``pk`` (decoded), page by page; ``call`` is the catalog's own error-translating call."""
    query: dict[str, Any] = {
        "TableName": table,
        "KeyConditionExpression": "pk = :pk",
        "ExpressionAttributeValues": {":pk": {"S": pk}},
    }
    while True:
        page = call("query", **query)
        yield from (decode_item(item) for item in page.get("Items", []))
        if "LastEvaluatedKey" not in page:
            return
        query["ExclusiveStartKey"] = page["LastEvaluatedKey"]


def iso(value: datetime | str) -> str:
    """ISO-8601 UTC with a Z suffix, so stored timestamps compare correctly as strings."""
    if isinstance(value, str):
        return value
    if value.tzinfo is None:
        raise ValueError("timestamps must be timezone-aware")
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


def _to_dynamo_numbers(value: Any) -> Any:
    # The boto3 serializer refuses floats (precision); a JSON round trip turns them into Decimals.
    return json.loads(json.dumps(value), parse_float=Decimal)


def _from_dynamo_numbers(value: Any) -> Any:
    if isinstance(value, Decimal):
        return int(value) if value == value.to_integral_value() else float(value)
    if isinstance(value, dict):
        return {k: _from_dynamo_numbers(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_from_dynamo_numbers(v) for v in value]
    return value


def encode(value: Any) -> dict[str, Any]:
    """One attribute value in DynamoDB's wire format (dicts become maps, numbers N)."""
    return _serialize(_to_dynamo_numbers(value))


def decode_item(item: dict[str, Any]) -> dict[str, Any]:
    """A whole item from DynamoDB's wire format to plain Python values (integral numbers as int)."""
    return {k: _from_dynamo_numbers(_deserialize(v)) for k, v in item.items()}


def encode_token(item: dict[str, Any]) -> str:
    """An opaque pagination token for resuming a query after ``item`` (wire format, base-table keys)."""
    key = {"pk": item["pk"]["S"], "sk": item["sk"]["S"]}
    return base64.urlsafe_b64encode(json.dumps(key, separators=(",", ":")).encode()).decode().rstrip("=")


def decode_token(token: str, pk: str, sk_prefix: str) -> dict[str, Any]:
    """The ExclusiveStartKey a token stands for; refuses tokens of another partition or item type."""
    try:
        key = json.loads(base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)))
    except (binascii.Error, ValueError, UnicodeDecodeError) as exc:
        raise InvalidToken("malformed next_token") from exc
    if not isinstance(key, dict) or key.get("pk") != pk or not str(key.get("sk", "")).startswith(sk_prefix):
        raise InvalidToken("next_token does not belong to this listing")
    return {"pk": {"S": key["pk"]}, "sk": {"S": key["sk"]}}


class UpdateBuilder:
    """Builds an UpdateExpression with placeholder names and values."""

    def __init__(self) -> None:
        self.names: dict[str, str] = {}
        self.values: dict[str, Any] = {}
        self._set: list[str] = []
        self._remove: list[str] = []
        self._keys = 0

    def name(self, attribute: str) -> str:
        placeholder = f"#{attribute}"
        self.names[placeholder] = attribute
        return placeholder

    def value(self, value: Any) -> str:
        placeholder = f":v{len(self.values)}"
        self.values[placeholder] = encode(str(value) if isinstance(value, StrEnum) else value)
        return placeholder

    def set(self, attribute: str, value: Any) -> None:
        self._set.append(f"{self.name(attribute)} = {self.value(value)}")

    def set_if_absent(self, attribute: str, value: Any) -> None:
        name = self.name(attribute)
        self._set.append(f"{name} = if_not_exists({name}, {self.value(value)})")

    def set_nested(self, attribute: str, key: str, value: Any) -> None:
        # Map keys are caller data: numbered placeholders keep them apart from attribute-name placeholders.
        self._keys += 1
        key_placeholder = f"#key_{self._keys}"
        self.names[key_placeholder] = key
        self._set.append(f"{self.name(attribute)}.{key_placeholder} = {self.value(value)}")

    def append_nested(self, attribute: str, key: str, items: list[Any]) -> None:
        """``attribute.key += items``, a list started when absent (``attribute`` must be a map already)."""
        self._keys += 1
        key_placeholder = f"#key_{self._keys}"
        self.names[key_placeholder] = key
        path = f"{self.name(attribute)}.{key_placeholder}"
        self._set.append(f"{path} = list_append(if_not_exists({path}, {self.value([])}), {self.value(items)})")

    def increment(self, attribute: str, delta: int) -> None:
        """``attribute += delta``, counting from 0 when the attribute is absent."""
        name = self.name(attribute)
        self._set.append(f"{name} = if_not_exists({name}, {self.value(0)}) + {self.value(delta)}")

    def add_version(self) -> None:
        self._set.append(f"{self.name('version')} = {self.name('version')} + {self.value(1)}")

    def remove(self, attribute: str) -> None:
        self._remove.append(self.name(attribute))

    def expression(self) -> str:
        parts = [f"SET {', '.join(self._set)}"]
        if self._remove:
            parts.append(f"REMOVE {', '.join(self._remove)}")
        return " ".join(parts)


# DynamoDB's wire format for the values a JSON round trip gives (boto3's TypeSerializer and TypeDeserializer do the
# same, but importing boto3 loads s3transfer, a third of a cold start; the clients are plain botocore ones).
# Numbers are checked as boto3 checks them: at most 38 significant digits, no rounding.
_DYNAMODB_CONTEXT = Context(Emin=-128, Emax=126, prec=38, traps=[Clamped, Overflow, Inexact, Rounded, Underflow])


def _number(value: int | Decimal) -> str:
    return str(_DYNAMODB_CONTEXT.create_decimal(value))


def _serialize(value: Any) -> dict[str, Any]:
    if value is None:
        return {"NULL": True}
    if isinstance(value, bool):
        return {"BOOL": value}
    if isinstance(value, int | Decimal):
        return {"N": _number(value)}
    if isinstance(value, str):
        return {"S": value}
    if isinstance(value, bytes | bytearray):
        return {"B": bytes(value)}
    if isinstance(value, dict):
        return {"M": {str(k): _serialize(v) for k, v in value.items()}}
    if isinstance(value, list | tuple):
        return {"L": [_serialize(v) for v in value]}
    raise TypeError(f"unsupported type for DynamoDB: {type(value).__name__}")


def _deserialize(value: dict[str, Any]) -> Any:
    ((kind, data),) = value.items()
    if kind == "S":
        return data
    if kind == "N":
        return _DYNAMODB_CONTEXT.create_decimal(data)
    if kind == "M":
        return {k: _deserialize(v) for k, v in data.items()}
    if kind == "L":
        return [_deserialize(v) for v in data]
    if kind == "BOOL":
        return bool(data)
    if kind == "NULL":
        return None
    if kind == "B":
        return bytes(data)
    if kind == "SS":
        return set(data)
    if kind == "NS":
        return {_DYNAMODB_CONTEXT.create_decimal(v) for v in data}
    if kind == "BS":
        return {bytes(v) for v in data}
    raise TypeError(f"unsupported DynamoDB type: {kind}")
