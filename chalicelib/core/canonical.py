"""Canonical JSON and content addresses: the bytes a blob is named by."""

from __future__ import annotations

import hashlib
from typing import Any

import orjson

from chalicelib.core.ids import BlobId

_OPTIONS = orjson.OPT_SORT_KEYS


def canonical_json(obj: Any) -> bytes:
    """Sorted keys, no whitespace, UTF-8: identical objects give identical bytes."""
    return orjson.dumps(obj, option=_OPTIONS)


def blob_id(data: bytes) -> BlobId:
    """The content address of a blob: hex SHA-256 of its uncompressed bytes."""
    return BlobId(hashlib.sha256(data).hexdigest())


def canonical_blob(obj: Any) -> tuple[BlobId, bytes]:
    """Canonical bytes of ``obj`` and their content address."""
    data = canonical_json(obj)
    return blob_id(data), data
