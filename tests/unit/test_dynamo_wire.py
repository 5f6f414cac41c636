"""The catalog's own DynamoDB wire codec gives what boto3's TypeSerializer and TypeDeserializer give."""

from __future__ import annotations

from decimal import Decimal, Inexact
from typing import Any

import pytest
from boto3.dynamodb.types import TypeDeserializer, TypeSerializer

from chalicelib.catalog.dynamo import _deserialize, decode_item, encode

SAMPLES: list[Any] = [
    None,
    True,
    False,
    0,
    -7,
    12345678901234567890,
    1.5,
    "text",
    "",
    [],
    {},
    {"a": [1, "b", None, {"c": 2.25, "d": [True, False]}], "e": {"f": {}}},
]


@pytest.mark.parametrize("value", SAMPLES, ids=repr)
def test_encode_matches_boto3(value: Any) -> None:
    expected_input = Decimal(str(value)) if isinstance(value, float) else value
    if isinstance(value, dict | list):
        import json

        expected_input = json.loads(json.dumps(value), parse_float=Decimal)
    assert encode(value) == TypeSerializer().serialize(expected_input)


@pytest.mark.parametrize("value", SAMPLES, ids=repr)
def test_decode_round_trips(value: Any) -> None:
    assert decode_item({"v": encode(value)}) == {"v": value}


@pytest.mark.parametrize(
    "wire",
    [{"SS": ["a", "b"]}, {"NS": ["1", "2.5"]}, {"N": "1E+3"}, {"M": {"x": {"L": [{"N": "3"}, {"NULL": True}]}}}],
)
def test_decode_matches_boto3(wire: dict[str, Any]) -> None:
    assert _deserialize(wire) == TypeDeserializer().deserialize(wire)


def test_numbers_beyond_dynamodb_precision_are_refused_as_boto3_refuses_them() -> None:
    with pytest.raises(Inexact):
        encode(10**40 + 1)
    with pytest.raises(Inexact):
        TypeSerializer().serialize(10**40 + 1)
