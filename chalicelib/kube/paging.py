"""Paged listing with continue tokens, restarting from scratch when the server has forgotten a token."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

from chalicelib.kube.errors import Gone
from chalicelib.observability import logger

# An expired token means the server compacted past our snapshot; a few fresh starts are fine, endless ones mean the
# list is too slow for the compaction window and retrying will not help.
MAX_LIST_RESTARTS = 3


@dataclass(frozen=True, slots=True)
class ListPage:
    """One page of a list; ``restarted`` says discard every earlier page of this list, it began again.

    ``continue_token`` fetches the page after this one (None on the last page): a consumer that stops between pages
    keeps it to resume the list later, from another process.
    """

    items: list[dict[str, Any]]
    resource_version: str
    restarted: bool = False
    continue_token: str | None = None


def iter_pages(
    get: Callable[[str, dict[str, Any]], dict[str, Any]],
    path: str,
    *,
    limit: int = 500,
    label_selector: str | None = None,
    field_selector: str | None = None,
    max_restarts: int = MAX_LIST_RESTARTS,
    continue_token: str | None = None,
) -> Iterator[ListPage]:
    """Pages of the collection at ``path``; items get ``apiVersion``/``kind``, which list responses leave out.

    With ``continue_token`` the list resumes where an earlier one stopped; if the server has forgotten that token
    (410), it starts again from scratch and the first page says ``restarted``.
    """
    if limit <= 0:
        raise ValueError("limit must be positive")
    base: dict[str, Any] = {"limit": limit}
    if label_selector:
        base["labelSelector"] = label_selector
    if field_selector:
        base["fieldSelector"] = field_selector
    token: str | None = continue_token or None
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
            logger().warning("continue token expired, listing again from the start", extra={"path": path})
            token, restarted = None, True
            continue
        items = body.get("items") or []
        _fill_type(items, body)
        metadata = body.get("metadata") or {}
        token = metadata.get("continue") or None
        yield ListPage(
            items=items,
            resource_version=str(metadata.get("resourceVersion") or ""),
            restarted=restarted,
            continue_token=token,
        )
        restarted = False
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
