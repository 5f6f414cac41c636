"""The catalog's own DynamoDB wire format matches boto3's TypeSerializer/TypeDeserializer for every JSON value."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest
from boto3.dynamodb.types import TypeDeserializer, TypeSerializer
from hypothesis import given
from hypothesis import strategies as st

from chalicelib.catalog.dynamo import _from_dynamo_numbers, _to_dynamo_numbers, decode_item, encode

json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(10**30), max_value=10**30)
    | st.floats(allow_nan=False, allow_infinity=False, width=32)
    | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=20,
)


@given(json_values)
def test_encoding_matches_boto3(value: Any) -> None:
    assert encode(value) == TypeSerializer().serialize(_to_dynamo_numbers(value))


@given(st.dictionaries(st.text(min_size=1, max_size=8), json_values, max_size=5))
def test_decoding_matches_boto3(item: dict[str, Any]) -> None:
    wire = {k: TypeSerializer().serialize(_to_dynamo_numbers(v)) for k, v in item.items()}
    ours = decode_item(wire)
    deserializer = TypeDeserializer()
    theirs = {k: _from_dynamo_numbers(deserializer.deserialize(v)) for k, v in wire.items()}
    assert ours == theirs
    assert repr(ours) == repr(theirs)  # the same types too (int, float, str, None, bool)


def test_sets_and_binary_decode() -> None:
    item = {"ns": {"NS": ["1", "2"]}, "ss": {"SS": ["a"]}, "b": {"B": b"x"}}
    assert decode_item(item) == {"ns": {Decimal(1), Decimal(2)}, "ss": {"a"}, "b": b"x"}


def test_a_number_dynamodb_cannot_hold_is_refused() -> None:
    with pytest.raises(Exception, match="Inexact|Rounded"):
        encode(10**40 + 1)
    with pytest.raises(TypeError, match="set"):
        encode({1, 2})  # type: ignore[arg-type]
