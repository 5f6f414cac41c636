"""``/v1/backups``: a page of a cluster's backups, newest first, for a client whose grant may read that cluster."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

from chalicelib.api.auth import authenticate, require
from chalicelib.api.errors import MalformedRequest
from chalicelib.api.grants import Action
from chalicelib.api.responses import Reply, answer
from chalicelib.api.signature import SignatureVerifier, SignedRequest
from chalicelib.catalog.backups import BackupCatalog
from chalicelib.catalog.errors import InvalidToken
from chalicelib.core.models import BackupRecord

MAX_PAGE = 100
DEFAULT_PAGE = 20


class BackupApi:
    """Lists backups from the catalog."""

    def __init__(self, verifier: SignatureVerifier, backups: BackupCatalog) -> None:
        self._verifier = verifier
        self._backups = backups

    def list(self, params: Mapping[str, str] | None, headers: Mapping[str, str]) -> Reply:
        return answer(lambda: self._list(dict(params or {}), headers), refused="API request refused")

    def _list(self, params: dict[str, str], headers: Mapping[str, str]) -> Reply:
        caller = authenticate(self._verifier, headers, SignedRequest.of("GET", "/v1/backups", params, headers)).caller
        cluster = params.get("cluster")
        if not cluster:
            raise MalformedRequest("query parameter 'cluster' is required")
        require(caller, Action.READ, cluster)
        try:
            limit = int(params.get("limit") or DEFAULT_PAGE)
        except ValueError as exc:
            raise MalformedRequest("limit must be an integer") from exc
        if not 1 <= limit <= MAX_PAGE:
            raise MalformedRequest(f"limit must be between 1 and {MAX_PAGE}")
        try:
            records, next_token = self._backups.list(cluster, limit=limit, next_token=params.get("next_token") or None)
        except InvalidToken as exc:
            raise MalformedRequest(str(exc)) from exc
        return Reply(200, {"cluster": cluster, "backups": [backup_view(r) for r in records], "next_token": next_token})


# What the API shows of the daily check's damaged mark (``catalog/backups.py``: ``mark_damaged``).
DAMAGED_FIELDS = ("found_at", "checked_at", "count", "blobs")


def backup_view(record: BackupRecord) -> dict[str, Any]:
    data = dataclasses.asdict(record)
    view = {k: data[k] for k in ("cluster", "backup_id", "policy", "parent", "created_at", "started_at", "finished_at")}
    return {
        **view,
        "state": str(record.state),
        "counts": data["counts"],
        "stats": data["stats"],
        "damaged": damaged_view(record.damaged),
    }


def damaged_view(damaged: Mapping[str, Any] | None) -> dict[str, Any] | None:
    """The damaged mark as the API shows it (None: the daily check found nothing this backup needs damaged)."""
    if not damaged:
        return None
    return {k: damaged[k] for k in DAMAGED_FIELDS if k in damaged}
