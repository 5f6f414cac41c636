"""List requests: selectors, `limit`/`continue` paging with etcd's token format and 410 after compaction."""

from __future__ import annotations

import base64
import binascii
from bisect import bisect_left
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import orjson

from sandbox.kubeapi.catalog import ResourceType
from sandbox.kubeapi.errors import ApiError
from sandbox.kubeapi.selectors import (
    FieldTerm,
    Requirement,
    fields_match,
    labels_match,
    parse_field_selector,
    parse_label_selector,
)
from sandbox.kubeapi.store import Bucket, Store, Stored

EXPIRED_MESSAGE = (
    "The provided continue parameter is too old to display a consistent list result. You can start a new list "
    "without the continue parameter, or use the continue token in this response to retrieve the remainder of the "
    "results. Continuing with the provided token results in an inconsistent list - objects that were created, "
    "modified, or deleted between the time the first chunk was returned and now may show up in the list."
)


def encode_continue(rv: int, start: str) -> str:
    """etcd3's token: base64url(JSON{v, rv, start}) where start is the key after the last one returned."""
    raw = orjson.dumps({"v": "meta.k8s.io/v1", "rv": rv, "start": start})
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def decode_continue(token: str) -> tuple[int, str]:
    try:
        raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
        data = orjson.loads(raw)
        if data.get("v") != "meta.k8s.io/v1":
            raise ValueError("continue key is not valid: server does not recognize this encoded key")
        rv, start = int(data["rv"]), str(data["start"])
    except (binascii.Error, ValueError, TypeError, KeyError, orjson.JSONDecodeError, AttributeError) as exc:
        raise ApiError(400, f"invalid continue token: continue key is not valid: {exc}") from exc
    if start.startswith("/") or "/../" in f"/{start}/":
        raise ApiError(400, "invalid continue token: continue key is not valid: path traversal attempt detected")
    return rv, start


@dataclass(slots=True)
class ListQuery:
    namespace: str | None
    limit: int = 0
    continue_token: str = ""
    labels: list[Requirement] | None = None
    fields: list[FieldTerm] | None = None

    @classmethod
    def parse(cls, rtype: ResourceType, namespace: str | None, query: Mapping[str, str]) -> ListQuery:
        limit_text = query.get("limit", "") or "0"
        try:
            limit = max(int(limit_text), 0)
        except ValueError as exc:
            raise ApiError(400, f'strconv.ParseInt: parsing "{limit_text}": invalid syntax') from exc
        token = query.get("continue", "")
        rv = query.get("resourceVersion", "")
        if token and rv:
            raise ApiError(400, "specifying resource version is not allowed when using continue")
        if rv == "0" and not token:
            limit = 0  # served from the watch cache, which ignores limit on a v1.31 server
        labels = parse_label_selector(query["labelSelector"]) if query.get("labelSelector") else None
        field_text = query.get("fieldSelector")
        fields = parse_field_selector(field_text, rtype.field_selectors) if field_text else None
        return cls(namespace, limit, token, labels or None, fields or None)


def _field_lookup(key: str, stored: Stored, namespace: str | None) -> Any:
    parsed: dict[str, Any] | None = None

    def lookup(field: str) -> str | None:
        nonlocal parsed
        if field == "metadata.name":
            return key.rpartition("/")[2]
        if field == "metadata.namespace":
            return key.rpartition("/")[0] if "/" in key else ""
        if parsed is None:
            parsed = stored.load()
        node: Any = parsed
        for part in field.split("."):
            node = node.get(part) if isinstance(node, dict) else None
        return None if node is None else str(node)

    return lookup


@dataclass(slots=True)
class Page:
    items: list[Stored]
    rv: int
    continue_token: str = ""
    remaining: int | None = None


def list_page(store: Store, bucket: Bucket, query: ListQuery) -> Page:
    """One page of a list; the caller holds the store lock, the returned items are immutable."""
    prefix = f"{query.namespace}/" if query.namespace else ""
    keys, lo, hi = bucket.key_range(prefix)
    if query.continue_token:
        token_rv, start = decode_continue(query.continue_token)
        if 0 <= token_rv <= store.compacted_rv:
            # Like etcd after compaction: offer a token that continues without the consistency promise (rv -1).
            fresh = encode_continue(-1, start)
            raise ApiError(410, EXPIRED_MESSAGE, "Expired", metadata={"continue": fresh})
        lo = max(lo, bisect_left(keys, prefix + start, lo, hi))
    items: list[Stored] = []
    objects = bucket.objects
    index = lo
    while index < hi:
        key = keys[index]
        index += 1
        stored = objects[key]
        if query.labels and not labels_match(query.labels, stored.labels):
            continue
        if query.fields and not fields_match(query.fields, _field_lookup(key, stored, query.namespace)):
            continue
        items.append(stored)
        if query.limit and len(items) >= query.limit:
            break
    page = Page(items, store.rv)
    if query.limit and index < hi and len(items) >= query.limit:
        page.continue_token = encode_continue(store.rv, keys[index - 1][len(prefix) :] + "\x00")
        if not query.labels and not query.fields:
            page.remaining = hi - index
    return page


PARTIAL_ITEM_PREFIX = b'{"kind":"PartialObjectMetadata","apiVersion":"meta.k8s.io/v1",'


def render_partial_list(page: Page) -> bytes:
    """The list body as a ``PartialObjectMetadataList`` (``Accept: application/json;as=PartialObjectMetadataList;
    g=meta.k8s.io;v=v1``): each item is its kind, apiVersion and metadata, nothing else, as kube-apiserver serves it."""
    head = orjson.dumps(
        {"kind": "PartialObjectMetadataList", "apiVersion": "meta.k8s.io/v1", "metadata": _list_meta(page)}
    )
    items = b",".join(PARTIAL_ITEM_PREFIX + s.metadata_body()[1:] for s in page.items)
    return head[:-1] + b',"items":[' + items + b"]}"


def _list_meta(page: Page) -> dict[str, Any]:
    meta: dict[str, Any] = {"resourceVersion": str(page.rv)}
    if page.continue_token:
        meta["continue"] = page.continue_token
    if page.remaining is not None:
        meta["remainingItemCount"] = page.remaining
    return meta


def render_list(rtype: ResourceType, version: str, page: Page, item_prefix: bytes | None) -> bytes:
    """The list body; item_prefix (`{"kind":..,"apiVersion":..,`) is given only for custom resources."""
    meta = _list_meta(page)
    head = orjson.dumps({"kind": rtype.list_kind, "apiVersion": rtype.api_version(version), "metadata": meta})
    if item_prefix is None:
        items = b",".join(s.body for s in page.items)
    else:
        items = b",".join(item_prefix + s.body[1:] for s in page.items)
    return head[:-1] + b',"items":[' + items + b"]}"
