"""Paged listing with continue tokens, restarting from scratch when the server has forgotten a token."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

from chalicelib.kube.errors import Gone

logger = logging.getLogger(__name__)

# An expired token means the server compacted past our snapshot; a few fresh starts are fine, endless ones mean the
# list is too slow for the compaction window and retrying will not help.
MAX_LIST_RESTARTS = 3


@dataclass(frozen=True, slots=True)
class ListPage:
    """One page of a list; ``restarted`` says discard every earlier page of this list, it began again."""

    items: list[dict[str, Any]]
    resource_version: str
    restarted: bool = False


def iter_pages(
    get: Callable[[str, dict[str, Any]], dict[str, Any]],
    path: str,
    *,
    limit: int = 500,
    label_selector: str | None = None,
    field_selector: str | None = None,
    max_restarts: int = MAX_LIST_RESTARTS,
) -> Iterator[ListPage]:
    """Pages of the collection at ``path``; items get ``apiVersion``/``kind``, which list responses leave out."""
    if limit <= 0:
        raise ValueError("limit must be positive")
    base: dict[str, Any] = {"limit": limit}
    if label_selector:
        base["labelSelector"] = label_selector
    if field_selector:
        base["fieldSelector"] = field_selector
    token: str | None = None
    restarts = 0
    restarted = False
    while True:
        params = dict(base, **({"continue": token} if token else {}))
        try:
            body = get(path, params)
        except Gone:
            if token is None or restarts >= max_restarts:
                raise
            restarts += 1
            logger.warning("continue token expired, listing again from the start", extra={"path": path})
            token, restarted = None, True
            continue
        items = body.get("items") or []
        _fill_type(items, body)
        metadata = body.get("metadata") or {}
        yield ListPage(items=items, resource_version=str(metadata.get("resourceVersion") or ""), restarted=restarted)
        restarted = False
        token = metadata.get("continue") or None
        if token is None:
            return


def _fill_type(items: list[dict[str, Any]], body: dict[str, Any]) -> None:
    list_kind = str(body.get("kind") or "")
    api_version = body.get("apiVersion")
    if not list_kind.endswith("List") or not api_version:
        return
    kind = list_kind[: -len("List")]
    for item in items:
        item.setdefault("apiVersion", api_version)
        item.setdefault("kind", kind)
