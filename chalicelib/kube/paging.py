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

# Object metadata only (kube-apiserver's PartialObjectMetadataList, since v1.15), else the plain list: a server or an
# aggregated API that cannot serve the metadata form answers with the second choice.
METADATA_ACCEPT = "application/json;as=PartialObjectMetadataList;g=meta.k8s.io;v=v1,application/json"
METADATA_LIST_KIND = "PartialObjectMetadataList"


@dataclass(frozen=True, slots=True)
class ListPage:
    """One page of a list; ``restarted`` says discard every earlier page of this list, it began again.

    ``continue_token`` fetches the page after this one (None on the last page): a consumer that stops between pages
    keeps it to resume the list later, from another process. ``metadata_only``: the items are
    ``PartialObjectMetadata`` (kind, apiVersion and metadata of each object, nothing else). ``requested_with``
    asks for this very page again (the same snapshot), whole.
    """

    items: list[dict[str, Any]]
    resource_version: str
    restarted: bool = False
    continue_token: str | None = None
    metadata_only: bool = False
    requested_with: str | None = None  # the continue token this page was asked for with (None: the first page)


def iter_pages(
    get: Callable[..., dict[str, Any]],
    path: str,
    *,
    limit: int = 500,
    label_selector: str | None = None,
    field_selector: str | None = None,
    max_restarts: int = MAX_LIST_RESTARTS,
    continue_token: str | None = None,
    metadata_first: Callable[[list[dict[str, Any]]], bool] | None = None,
) -> Iterator[ListPage]:
    """Pages of the collection at ``path``; items get ``apiVersion``/``kind``, which list responses leave out.

    With ``continue_token`` the list resumes where an earlier one stopped; if the server has forgotten that token
    (410), it starts again from scratch and the first page says ``restarted``.

    ``metadata_first``: pages are asked for as object metadata only (``get(path, params, METADATA_ACCEPT)``), and
    each one served so is given to ``metadata_first``, which says whether it will do. One that will not is asked for
    again whole with the same continue token, which serves the same snapshot, and so is the rest of the list. (The
    first page has no token: asked for again it starts a new snapshot, and its own token is the one followed.)
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
    partial = metadata_first is not None
    while True:
        requested_with = token
        params = dict(base, **({"continue": token} if token else {}))
        try:
            body = get(path, params, METADATA_ACCEPT) if partial else get(path, params)
            metadata_only = body.get("kind") == METADATA_LIST_KIND
            if metadata_only and not metadata_first(body.get("items") or []):  # type: ignore[misc]
                partial = metadata_only = False
                body = get(path, params)
        except Gone:
            if token is None or restarts >= max_restarts:
                raise
            restarts += 1
            logger().warning("continue token expired, listing again from the start", extra={"path": path})
            token, restarted = None, True
            continue
        items = body.get("items") or []
        if not metadata_only:
            _fill_type(items, body)
        metadata = body.get("metadata") or {}
        token = metadata.get("continue") or None
        yield ListPage(
            items=items,
            resource_version=str(metadata.get("resourceVersion") or ""),
            restarted=restarted,
            continue_token=token,
            metadata_only=metadata_only,
            requested_with=requested_with,
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
